//! Ledger routes: the public key checkpoints are signed with (public), checkpoints,
//! proofs and verification (auditor), signing a checkpoint on demand (admin).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use cornetta_shared::{EventId, SiteKey};
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiQuery, Bearer};
use crate::error::ApiError;
use crate::ledger::checkpoint::{KEY_NAME, key_id, verifier_key};
use crate::ledger::verify::{SiteReport, verify_site};
use crate::state::AppState;
use crate::store::{Role, Site, StoreError, StoredCheckpoint};

pub(super) fn public_router() -> Router<AppState> {
    Router::new().route("/v1/ledger/public-key", get(public_key))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ledger/checkpoints", get(list_checkpoints).post(create_checkpoint))
        .route("/v1/ledger/verify", get(verify))
        .route("/v1/ledger/inclusion", get(inclusion))
        .route("/v1/ledger/consistency", get(consistency))
}

const MAX_CHECKPOINT_PAGE: u32 = 1000;

/// `GET /v1/ledger/public-key`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublicKeyView {
    pub algorithm: String,
    pub key_name: String,
    /// signed-note key id (hex), the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
    pub key_id: String,
    /// The 32 key bytes, base64.
    pub public_key: String,
    pub public_key_hex: String,
    /// `golang.org/x/mod/sumdb/note` verifier key: `name+id+base64(0x01 ‖ key)`.
    pub verifier_key: String,
}

/// A checkpoint as served.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointView {
    pub id: String,
    pub site: SiteKey,
    pub tree_size: u64,
    /// Hex.
    pub root_hash: String,
    pub signed_at: String,
    /// The C2SP signed note; what an auditor verifies.
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckpointPage {
    pub checkpoints: Vec<CheckpointView>,
    pub next_cursor: Option<String>,
}

/// An inclusion or consistency proof (hashes in hex, RFC 9162 order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProofView {
    pub site: SiteKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_size: Option<u64>,
    pub tree_size: u64,
    pub root_hash: String,
    pub proof: Vec<String>,
}

pub(crate) fn checkpoint_view(site: &Site, c: &StoredCheckpoint) -> CheckpointView {
    CheckpointView {
        id: c.id.clone(),
        site: site.key.clone(),
        tree_size: c.tree_size,
        root_hash: hex::encode(c.root_hash),
        signed_at: c.signed_at.to_string(),
        note: c.note.clone(),
    }
}

async fn public_key(State(state): State<AppState>) -> ApiJson<PublicKeyView> {
    let key = state.keys.verifying_key();
    ApiJson(PublicKeyView {
        algorithm: "ed25519".into(),
        key_name: KEY_NAME.into(),
        key_id: hex::encode(key_id(&key)),
        public_key: base64::engine::general_purpose::STANDARD.encode(key.as_bytes()),
        public_key_hex: hex::encode(key.as_bytes()),
        verifier_key: verifier_key(&key),
    })
}

/// The site a ledger request is about: `site=` or the token's own site.
pub(crate) async fn site_param(state: &AppState, bearer: &Bearer, role: Role, site: Option<&str>) -> Result<Site, ApiError> {
    bearer.require(role, None)?;
    let site = match site {
        Some(key) => {
            let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
            state.store.site_by_key(&key).await?.ok_or_else(|| ApiError::NotFound(format!("no site has the key {key}")))?
        }
        None => {
            let id = bearer.0.site_id.clone().ok_or_else(|| ApiError::invalid("missing_site", "name the site: site=pk_… (this token is valid for every site)"))?;
            state.store.site_by_id(&id).await?.ok_or_else(|| ApiError::NotFound("the token's site no longer exists".into()))?
        }
    };
    bearer.require(role, Some(&site))?;
    Ok(site)
}

fn parse_count(name: &str, value: &str) -> Result<u64, ApiError> {
    value.parse::<u64>().map_err(|_| ApiError::invalid("invalid_parameter", format!("{name} must be a whole number, not {:?}", value.chars().take(30).collect::<String>())))
}

fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Invalid(message) => ApiError::invalid("invalid_tree_size", message),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    site: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_checkpoints(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<ListQuery>) -> Result<ApiJson<CheckpointPage>, ApiError> {
    let site = site_param(&state, &bearer, Role::Auditor, q.site.as_deref()).await?;
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_CHECKPOINT_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid("invalid_parameter", format!("limit must be a whole number from 1 to {MAX_CHECKPOINT_PAGE}"))),
        },
    };
    if let Some(c) = q.cursor.as_deref()
        && (!c.starts_with("ckp_") || c.len() > 80) {
            return Err(ApiError::invalid("invalid_cursor", "cursor is not one this API gave out"));
        }
    let mut rows = state.store.checkpoints(&site.id, q.cursor.as_deref(), limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|c| c.id.clone()) } else { None };
    Ok(ApiJson(CheckpointPage { checkpoints: rows.iter().map(|c| checkpoint_view(&site, c)).collect(), next_cursor }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteQuery {
    site: Option<String>,
}

async fn create_checkpoint(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiQuery(q): ApiQuery<SiteQuery>,
) -> Result<(StatusCode, ApiJson<CheckpointView>), ApiError> {
    let site = site_param(&state, &bearer, Role::Admin, q.site.as_deref()).await?;
    let checkpoint = state.ledger.sign_checkpoint(&state.store, &state.keys, &site).await?;
    Ok((StatusCode::CREATED, ApiJson(checkpoint_view(&site, &checkpoint))))
}

async fn verify(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<SiteQuery>) -> Result<ApiJson<SiteReport>, ApiError> {
    let site = site_param(&state, &bearer, Role::Auditor, q.site.as_deref()).await?;
    let report = verify_site(&state.store, &site, &state.keys.verifying_key()).await?;
    if !report.ok {
        tracing::warn!(site = %site.key, "ledger verification found problems");
    }
    Ok(ApiJson(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    event: String,
    size: Option<String>,
}

async fn inclusion(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<InclusionQuery>) -> Result<ApiJson<ProofView>, ApiError> {
    bearer.require(Role::Auditor, None)?;
    let id = EventId::parse(&q.event).map_err(|e| ApiError::invalid("invalid_event", e.to_string()))?;
    let event = state.store.event(&id).await?.filter(|e| bearer.0.reaches_site(&e.site_id)).ok_or_else(|| ApiError::NotFound(format!("no consent event {id}")))?;
    let site = state.store.site_by_id(&event.site_id).await?.ok_or_else(|| ApiError::NotFound("the event's site no longer exists".into()))?;
    let size = match q.size.as_deref() {
        Some(s) => parse_count("size", s)?,
        None => state.store.tree_size(&site.id).await?,
    };
    let proof = state.ledger.inclusion(&state.store, &site.id, event.seq, size).await.map_err(store_error)?;
    Ok(ApiJson(ProofView {
        site: site.key,
        event: Some(event.id),
        leaf_index: Some(event.seq),
        from_size: None,
        tree_size: proof.tree_size,
        root_hash: hex::encode(proof.root),
        proof: proof.hashes.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    site: Option<String>,
    from: String,
    to: Option<String>,
}

async fn consistency(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<ConsistencyQuery>) -> Result<ApiJson<ProofView>, ApiError> {
    let site = site_param(&state, &bearer, Role::Auditor, q.site.as_deref()).await?;
    let from = parse_count("from", &q.from)?;
    let to = match q.to.as_deref() {
        Some(t) => parse_count("to", t)?,
        None => state.store.tree_size(&site.id).await?,
    };
    let proof = state.ledger.consistency(&state.store, &site.id, from, to).await.map_err(store_error)?;
    Ok(ApiJson(ProofView {
        site: site.key,
        event: None,
        leaf_index: None,
        from_size: Some(from),
        tree_size: proof.tree_size,
        root_hash: hex::encode(proof.root),
        proof: proof.hashes.iter().map(hex::encode).collect(),
    }))
}

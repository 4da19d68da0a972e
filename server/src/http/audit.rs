//! Auditor and admin routes of the ledger issue: consent receipts, a person's status at a
//! moment, exports, and erasure (GDPR Art. 17).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cornetta_shared::{Action, EventId, Method, NoticeId, Purpose, Reference, SiteKey};
use serde::{Deserialize, Serialize};

use super::consents::{ListQuery, filter_from_query, parse_time};
use super::ledger::site_param;
use super::link::parse_phone;
use super::{ApiJson, ApiPath, ApiQuery, Bearer};
use crate::error::ApiError;
use crate::export::Format;
use crate::receipt::Receipt;
use crate::state::AppState;
use crate::store::{Role, StoredEvent};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/consents/export", get(export))
        .route("/v1/consents/{id}/receipt", get(receipt))
        .route("/v1/subjects/{phone}/status", get(status))
        .route("/v1/subjects/{phone}/erase", post(erase))
}

async fn receipt(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<ApiJson<Receipt>, ApiError> {
    bearer.require(Role::Auditor, None)?;
    let id = EventId::parse(&id).map_err(|e| ApiError::invalid("invalid_id", e.to_string()))?;
    let event = state.store.event(&id).await?.filter(|e| bearer.0.reaches_site(&e.site_id)).ok_or_else(|| ApiError::NotFound(format!("no consent event {id}")))?;
    Ok(ApiJson(crate::receipt::build(&state, &event).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    site: Option<String>,
    purpose: Option<String>,
    at: Option<String>,
    region: Option<String>,
}

/// An event named in a status answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventRef {
    pub id: EventId,
    pub seq: u64,
    pub action: Action,
    pub method: Method,
    pub reference: Reference,
    pub purposes: Vec<Purpose>,
    pub notice: Option<NoticeId>,
    pub notice_sha256: Option<String>,
    pub recorded_at: String,
    pub leaf_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PurposeAnswer {
    pub purpose: Purpose,
    pub consented: bool,
    pub since: Option<String>,
    pub proof: Vec<EventRef>,
    pub ended_by: Option<EventRef>,
}

/// `GET /v1/subjects/{phone}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatusAnswer {
    pub site: SiteKey,
    pub phone: String,
    pub at: String,
    /// Whether the number has any record at this site.
    pub known: bool,
    pub purposes: Vec<PurposeAnswer>,
}

pub(crate) fn event_ref(e: &StoredEvent) -> EventRef {
    EventRef {
        id: e.id.clone(),
        seq: e.seq,
        action: e.action,
        method: e.method,
        reference: e.reference.clone(),
        purposes: e.purposes.clone(),
        notice: e.notice_id.clone(),
        notice_sha256: e.notice_sha256.clone(),
        recorded_at: e.recorded_at.to_string(),
        leaf_hash: hex::encode(e.leaf_hash),
    }
}

async fn status(State(state): State<AppState>, bearer: Bearer, ApiPath(phone): ApiPath<String>, ApiQuery(q): ApiQuery<StatusQuery>) -> Result<ApiJson<StatusAnswer>, ApiError> {
    let site = site_param(&state, &bearer, Role::Auditor, q.site.as_deref()).await?;
    let phone = parse_phone(&state.settings, Some(&phone), q.region.as_deref())?;
    let purpose = q.purpose.as_deref().map(|p| p.parse::<Purpose>().map_err(|e| ApiError::invalid("invalid_purpose", e.to_string()))).transpose()?;
    let at = match q.at.as_deref() {
        Some(at) => parse_time("at", at)?,
        None => crate::consents::now(),
    };
    let found = crate::status::of_phone(&state.store, &state.keys, &site, &phone, at).await?;
    let by_id = |id: &EventId| found.events.iter().find(|e| &e.id == id).map(event_ref);
    let purposes = found
        .purposes
        .iter()
        .filter(|s| purpose.is_none_or(|p| p == s.purpose))
        .map(|s| PurposeAnswer {
            purpose: s.purpose,
            consented: s.consented,
            since: s.since.map(|t| t.to_string()),
            proof: s.proof.iter().filter_map(by_id).collect(),
            ended_by: s.ended_by.as_ref().and_then(by_id),
        })
        .collect();
    Ok(ApiJson(StatusAnswer { site: site.key, phone: phone.to_string(), at: at.to_string(), known: !found.subjects.is_empty(), purposes }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseQuery {
    site: Option<String>,
    region: Option<String>,
}

/// `POST /v1/subjects/{phone}/erase`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErasureAnswer {
    pub subjects_erased: usize,
    /// The `erased` events appended.
    pub events: Vec<EventId>,
    pub erased_at: String,
}

async fn erase(State(state): State<AppState>, bearer: Bearer, ApiPath(phone): ApiPath<String>, ApiQuery(q): ApiQuery<EraseQuery>) -> Result<ApiJson<ErasureAnswer>, ApiError> {
    bearer.require(Role::Admin, None)?;
    let site = match q.site.as_deref() {
        Some(key) => Some(site_param(&state, &bearer, Role::Admin, Some(key)).await?),
        None => match &bearer.0.site_id {
            // A site's admin erases at their site only.
            Some(id) => state.store.site_by_id(id).await?,
            None => None,
        },
    };
    let phone = parse_phone(&state.settings, Some(&phone), q.region.as_deref())?;
    let erasure = crate::erasure::erase_phone(&state.store, &state.keys, &phone, site.as_ref(), &format!("token:{}", bearer.0.id)).await?;
    if erasure.subjects_erased.is_empty() && erasure.events.is_empty() {
        return Err(ApiError::NotFound("no records of this number to erase".into()));
    }
    Ok(ApiJson(ErasureAnswer {
        subjects_erased: erasure.subjects_erased.len(),
        events: crate::erasure::event_ids(&erasure),
        erased_at: crate::consents::now().to_string(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
    site: Option<String>,
    phone: Option<String>,
    region: Option<String>,
    reference: Option<String>,
    purpose: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn export(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<ExportQuery>) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None => Format::Csv,
        Some(f) => Format::parse(f).ok_or_else(|| ApiError::invalid("invalid_format", "format must be csv or jsonl"))?,
    };
    let list = ListQuery {
        site: q.site,
        phone: q.phone,
        region: q.region,
        reference: q.reference,
        purpose: q.purpose,
        action: q.action,
        from: q.from,
        to: q.to,
        cursor: None,
        limit: None,
    };
    let filter = filter_from_query(&state, &bearer, &list).await?;
    tracing::info!(token = %bearer.0.id, format = format.extension(), "export started");
    let body = Body::from_stream(crate::export::stream(state.store.clone(), state.keys.clone(), filter, format));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let disposition = format!("attachment; filename=\"consents.{}\"", format.extension());
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

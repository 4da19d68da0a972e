//! WhatsApp routes: Meta's webhook (`/v1/webhooks/whatsapp`, authenticated by the verify
//! token and the app secret's signature), the admin API for Meta apps, numbers and opt-out
//! settings, and the auditor's view of a person's 24-hour customer-service window.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use cornetta_shared::{Action, EventId, SiteKey};
use serde::{Deserialize, Serialize};

use super::audit::{PurposeAnswer, event_ref};
use super::ledger::site_param;
use super::link::parse_phone;
use super::{ApiJson, ApiPath, ApiQuery, Bearer, ClientIp};
use crate::consents::now;
use crate::error::ApiError;
use crate::limits::Bucket;
use crate::state::AppState;
use crate::store::whatsapp::{MetaApp, OptOutSettings, PhoneNumberId, WaNumber};
use crate::store::{Role, Site};
use crate::whatsapp::inbound::{self, Delivery};
use crate::whatsapp::{WEBHOOK_BODY_LIMIT, apps, notification, optout, signature, window};

pub(super) fn router() -> Router<AppState> {
    // Meta's notifications can be up to 3 MB, more than the API's JSON limit.
    let webhook = Router::new()
        .route("/v1/webhooks/whatsapp", get(handshake).post(receive))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT));
    Router::new()
        .merge(webhook)
        .route("/v1/whatsapp/apps", post(create_app).get(list_apps))
        .route("/v1/whatsapp/apps/{id}", delete(remove_app))
        .route("/v1/whatsapp/numbers", post(create_number).get(list_numbers))
        .route("/v1/whatsapp/numbers/{phone_number_id}", delete(remove_number))
        .route("/v1/sites/{key}/whatsapp/opt-out", get(show_opt_out).put(set_opt_out))
        .route("/v1/subjects/{phone}/window", get(window))
}

/// Longest `hub.challenge` echoed (Meta sends an integer).
const MAX_CHALLENGE_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's verification request: `hub.mode=subscribe` and a `hub.verify_token` of a
/// configured app → 200 with `hub.challenge` as plain text; anything else → 403.
async fn handshake(State(state): State<AppState>, ClientIp(ip): ClientIp, ApiQuery(q): ApiQuery<Handshake>) -> Result<Response, ApiError> {
    // Guessing verify tokens costs a request each, like any public read.
    state.limits.check(Bucket::PublicRead, ip)?;
    let wa = apps::tables(&state.store)?;
    let refused = || ApiError::forbidden("verification_refused", "hub.mode must be subscribe and hub.verify_token the verify token of a configured Meta app");
    let (Some("subscribe"), Some(token)) = (q.mode.as_deref(), q.verify_token.as_deref()) else {
        return Err(refused());
    };
    if !apps::verify_token_matches(wa, token).await? {
        tracing::warn!("WhatsApp webhook verification refused: unknown verify token");
        return Err(refused());
    }
    let challenge = q.challenge.unwrap_or_default();
    if challenge.is_empty() || challenge.chars().count() > MAX_CHALLENGE_CHARS || !challenge.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::bad_request("invalid_challenge", format!("hub.challenge must be 1 to {MAX_CHALLENGE_CHARS} visible ASCII characters")));
    }
    tracing::info!("WhatsApp webhook verified");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge).into_response())
}

/// A notification: the signature is checked over the raw body before anything reads it;
/// the answer (200) comes only after everything it records is committed.
async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<ApiJson<serde_json::Value>, ApiError> {
    let wa = apps::tables(&state.store)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the notification is larger than the {WEBHOOK_BODY_LIMIT} byte limit"))
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })?;
    let received_at = now();
    let header = headers.get(signature::HEADER).map(|v| v.as_bytes());
    let app = match apps::signing_app(wa, &state.keys, header, &body).await {
        Ok(app) => app,
        Err(err) => {
            tracing::warn!(bytes = body.len(), reason = %err, "WhatsApp notification refused; nothing recorded");
            return Err(err);
        }
    };
    let parsed = notification::parse(&body).map_err(|err| {
        tracing::warn!(app = %app.id, bytes = body.len(), reason = %err, "a signed WhatsApp notification is malformed; nothing recorded");
        ApiError::bad_request("malformed_notification", err.to_string())
    })?;
    let report = inbound::process(&state.store, &state.keys, Delivery { app: &app, body: &body, received_at }, parsed).await?;
    tracing::info!(
        app = %app.id,
        messages = report.messages,
        recorded = report.recorded,
        duplicates = report.duplicates,
        ignored = report.ignored,
        statuses = report.statuses,
        skipped = report.skipped,
        events = report.events.len(),
        replies = report.replies.len(),
        "WhatsApp notification processed"
    );
    Ok(ApiJson(inbound::summary(&report)))
}

async fn site_for(state: &AppState, key: &str) -> Result<Site, ApiError> {
    let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
    state.store.site_by_key(&key).await?.ok_or_else(|| ApiError::NotFound(format!("no site has the key {key}")))
}

fn global_admin(bearer: &Bearer) -> Result<(), ApiError> {
    bearer.require(Role::Admin, None)?;
    if bearer.0.site_id.is_some() {
        return Err(ApiError::forbidden("wrong_site", "Meta apps serve several sites: this needs a global admin token"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    #[serde(default)]
    name: Option<String>,
    verify_token: String,
    app_secret: String,
}

/// A Meta app as shown: never its secrets.
#[derive(Debug, Serialize)]
struct AppView {
    id: String,
    name: String,
    created_at: String,
}

fn app_view(app: &MetaApp) -> AppView {
    AppView { id: app.id.clone(), name: app.name.clone(), created_at: app.created_at.to_string() }
}

async fn create_app(State(state): State<AppState>, bearer: Bearer, ApiJson(body): ApiJson<NewApp>) -> Result<(StatusCode, ApiJson<AppView>), ApiError> {
    global_admin(&bearer)?;
    let verify_token = apps::parse_verify_token(&body.verify_token).map_err(|e| ApiError::invalid("invalid_verify_token", e))?;
    let app_secret = apps::parse_app_secret(&body.app_secret).map_err(|e| ApiError::invalid("invalid_app_secret", e))?;
    let name = apps::parse_app_name(body.name.as_deref()).map_err(|e| ApiError::invalid("invalid_name", e))?;
    let wa = apps::tables(&state.store)?;
    let app = apps::add_app(wa, &state.keys, name, &verify_token, &app_secret).await?;
    tracing::info!(app = %app.id, "Meta app added");
    Ok((StatusCode::CREATED, ApiJson(app_view(&app))))
}

async fn list_apps(State(state): State<AppState>, bearer: Bearer) -> Result<ApiJson<Vec<AppView>>, ApiError> {
    global_admin(&bearer)?;
    let wa = apps::tables(&state.store)?;
    Ok(ApiJson(wa.list_apps().await?.iter().map(app_view).collect()))
}

async fn remove_app(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    global_admin(&bearer)?;
    let wa = apps::tables(&state.store)?;
    if !wa.remove_app(&id).await? {
        return Err(ApiError::NotFound(format!("no Meta app has the id {}", id.chars().take(80).collect::<String>())));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNumber {
    site: String,
    phone_number_id: String,
    phone: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    app: Option<String>,
}

#[derive(Debug, Serialize)]
struct NumberView {
    phone_number_id: String,
    site: SiteKey,
    phone: String,
    app: String,
    created_at: String,
}

fn number_view(number: &WaNumber, site: &SiteKey) -> NumberView {
    NumberView {
        phone_number_id: number.phone_number_id.to_string(),
        site: site.clone(),
        phone: number.phone.to_string(),
        app: number.app_id.clone(),
        created_at: number.created_at.to_string(),
    }
}

async fn create_number(State(state): State<AppState>, bearer: Bearer, ApiJson(body): ApiJson<NewNumber>) -> Result<(StatusCode, ApiJson<NumberView>), ApiError> {
    bearer.require(Role::Admin, None)?;
    let site = site_for(&state, &body.site).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let id = PhoneNumberId::parse(body.phone_number_id.trim()).map_err(|e| ApiError::invalid("invalid_phone_number_id", e.to_string()))?;
    let phone = parse_phone(&state.settings, Some(&body.phone), body.region.as_deref())?;
    let wa = apps::tables(&state.store)?;
    let number = apps::add_number(wa, &site, id, phone, body.app.as_deref()).await?;
    tracing::info!(site = %site.key, phone_number_id = %number.phone_number_id, "WhatsApp number mapped");
    Ok((StatusCode::CREATED, ApiJson(number_view(&number, &site.key))))
}

async fn list_numbers(State(state): State<AppState>, bearer: Bearer) -> Result<ApiJson<Vec<NumberView>>, ApiError> {
    bearer.require(Role::Admin, None)?;
    let wa = apps::tables(&state.store)?;
    let sites = state.store.list_sites().await?;
    let views = wa
        .list_numbers()
        .await?
        .iter()
        .filter(|n| bearer.0.reaches_site(&n.site_id))
        .filter_map(|n| sites.iter().find(|s| s.id == n.site_id).map(|s| number_view(n, &s.key)))
        .collect();
    Ok(ApiJson(views))
}

async fn remove_number(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    bearer.require(Role::Admin, None)?;
    let id = PhoneNumberId::parse(&id).map_err(|e| ApiError::invalid("invalid_phone_number_id", e.to_string()))?;
    let wa = apps::tables(&state.store)?;
    let number = wa.number(&id).await?.filter(|n| bearer.0.reaches_site(&n.site_id));
    if number.is_none() || !wa.remove_number(&id).await? {
        return Err(ApiError::NotFound(format!("no number has the phone number id {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct OptOutView {
    site: SiteKey,
    /// The keywords in force, normalised (upper case, no accents).
    keywords: Vec<String>,
    /// Whether they are the built-in list.
    built_in: bool,
    reply: Option<String>,
}

fn opt_out_view(site: &Site, settings: &OptOutSettings) -> OptOutView {
    OptOutView {
        site: site.key.clone(),
        keywords: apps::keywords_in_force(settings),
        built_in: settings.keywords.is_none(),
        reply: settings.reply.clone(),
    }
}

/// `PUT` replaces both: `keywords: null` (or absent) means the built-in list, `reply: null`
/// (or absent) no reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetOptOut {
    #[serde(default)]
    keywords: Option<Vec<String>>,
    #[serde(default)]
    reply: Option<String>,
}

async fn show_opt_out(State(state): State<AppState>, bearer: Bearer, ApiPath(key): ApiPath<String>) -> Result<ApiJson<OptOutView>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let wa = apps::tables(&state.store)?;
    Ok(ApiJson(opt_out_view(&site, &wa.opt_out_settings(&site.id).await?)))
}

async fn set_opt_out(State(state): State<AppState>, bearer: Bearer, ApiPath(key): ApiPath<String>, ApiJson(body): ApiJson<SetOptOut>) -> Result<ApiJson<OptOutView>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let keywords = match body.keywords {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ApiError::invalid("no_keywords", "keywords is empty; people must be able to opt out on WhatsApp (null means the built-in list)"));
        }
        Some(list) => Some(optout::parse_keywords(&list).map_err(|e| ApiError::invalid("invalid_keyword", e))?),
    };
    let reply = body.reply.as_deref().map(optout::parse_reply).transpose().map_err(|e| ApiError::invalid("invalid_reply", e))?;
    let settings = OptOutSettings { keywords, reply };
    let wa = apps::tables(&state.store)?;
    wa.set_opt_out_settings(&site.id, settings.clone()).await?;
    Ok(ApiJson(opt_out_view(&site, &settings)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowQuery {
    site: Option<String>,
    region: Option<String>,
}

/// `GET /v1/subjects/{phone}/window`: the window, next to the person's consent per purpose
/// exactly as `GET /v1/subjects/{phone}/status` derives it (now).
#[derive(Debug, Serialize)]
struct WindowAnswer {
    site: SiteKey,
    phone: String,
    checked_at: String,
    /// Whether the number has any record at this site.
    known: bool,
    window: WindowPart,
    purposes: Vec<PurposeLine>,
}

/// Whether free-form messages may be sent now (Meta's customer-service window).
#[derive(Debug, Serialize)]
struct WindowPart {
    open: bool,
    last_message_at: Option<String>,
    open_until: Option<String>,
}

#[derive(Debug, Serialize)]
struct PurposeLine {
    #[serde(flatten)]
    status: PurposeAnswer,
    /// The consent that holds was bound to this number by the person's own WhatsApp message
    /// (a `confirmed` event among its proof), not only typed in by someone.
    confirmed: bool,
}

/// Has the person written to the site in the last 24 hours (and until when may the
/// business answer freely), next to their consent per purpose. Auditors and admins.
async fn window(State(state): State<AppState>, bearer: Bearer, ApiPath(phone): ApiPath<String>, ApiQuery(q): ApiQuery<WindowQuery>) -> Result<ApiJson<WindowAnswer>, ApiError> {
    let site = site_param(&state, &bearer, Role::Auditor, q.site.as_deref()).await?;
    let phone = parse_phone(&state.settings, Some(&phone), q.region.as_deref())?;
    let wa = apps::tables(&state.store)?;
    let checked_at = now();
    let last = inbound::last_message_at(wa, &state.keys, &site.id, &phone).await?;
    let w = window::window(last, checked_at);
    let found = crate::status::of_phone(&state.store, &state.keys, &site, &phone, checked_at).await?;
    let event = |id: &EventId| found.events.iter().find(|e| &e.id == id);
    let purposes = found
        .purposes
        .iter()
        .map(|s| PurposeLine {
            confirmed: s.proof.iter().filter_map(event).any(|e| e.action == Action::Confirmed),
            status: PurposeAnswer {
                purpose: s.purpose,
                consented: s.consented,
                since: s.since.map(|t| t.to_string()),
                proof: s.proof.iter().filter_map(event).map(event_ref).collect(),
                ended_by: s.ended_by.as_ref().and_then(event).map(event_ref),
            },
        })
        .collect();
    Ok(ApiJson(WindowAnswer {
        site: site.key.clone(),
        phone: phone.to_string(),
        checked_at: checked_at.to_string(),
        known: !found.subjects.is_empty(),
        window: WindowPart {
            open: w.open,
            last_message_at: w.last_message_at.map(|t| t.to_string()),
            open_until: w.open_until.map(|t| t.to_string()),
        },
        purposes,
    }))
}

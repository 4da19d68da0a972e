//! Consent routes: the widget's grant and withdrawal (public: site key + Origin), and the
//! auditor's queries (bearer token).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cornetta_shared::api::{ConsentCreated, ConsentEventView, ConsentPage, NewConsent, WithdrawConsent};
use cornetta_shared::{Action, EventId, Method, Purpose, Reference, SiteKey};
use serde::Deserialize;

use super::link::{make_link, parse_phone};
use super::{ApiJson, ApiPath, ApiQuery, Bearer, ClientIp, RequestOrigin, UserAgent};
use crate::consents::{self, Evidence, Grant, Viewer, clip, truncate_ip};
use crate::error::ApiError;
use crate::limits::Bucket;
use crate::store::{EventFilter, LogPosition, Role, Site};
use crate::state::AppState;

/// Routes the widget calls from merchants' pages (CORS applies).
pub(super) fn public_router() -> Router<AppState> {
    Router::new()
        .route("/v1/consents", post(create))
        .route("/v1/consents/{reference}/withdraw", post(withdraw))
        .route("/v1/receipts/{reference}", get(visitor_receipt))
}

/// Routes for auditors and admins.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/consents", get(list)).route("/v1/consents/{id}", get(one))
}

pub(crate) const MAX_PAGE: u32 = 1000;
const DEFAULT_PAGE: u32 = 100;

async fn site_for_key(state: &AppState, key: &SiteKey) -> Result<Site, ApiError> {
    state.store.site_by_key(key).await?.ok_or_else(|| ApiError::NotFound(format!("no site has the key {key}")))
}

fn check_page_url(url: Option<String>) -> Result<Option<String>, ApiError> {
    match url {
        None => Ok(None),
        Some(url) if url.chars().count() > consents::MAX_PAGE_URL_CHARS => Err(ApiError::invalid(
            "page_url_too_long",
            format!("page_url is longer than {} characters", consents::MAX_PAGE_URL_CHARS),
        )),
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(Some(url)),
        Some(_) => Err(ApiError::invalid("invalid_page_url", "page_url must be an http(s) URL")),
    }
}

/// The prefilled message with the reference in it: `{ref}` is replaced, or the reference
/// is appended when the template has no place for it.
pub(crate) fn text_with_reference(template: Option<&str>, reference: &Reference) -> String {
    match template.filter(|t| !t.trim().is_empty()) {
        Some(t) if t.contains("{ref}") => t.replace("{ref}", &reference.to_string()),
        Some(t) => format!("{t} (ref {reference})"),
        None => format!("Hi! (ref {reference})"),
    }
}

async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    origin: RequestOrigin,
    UserAgent(user_agent): UserAgent,
    ApiJson(body): ApiJson<NewConsent>,
) -> Result<(StatusCode, ApiJson<ConsentCreated>), ApiError> {
    state.limits.check(Bucket::PublicWrite, ip)?;
    let site = site_for_key(&state, &body.site).await?;
    origin.check(&site)?;
    let notice = state
        .store
        .notice(&body.notice)
        .await?
        .filter(|n| n.site_id == site.id)
        .ok_or_else(|| ApiError::invalid("unknown_notice", format!("notice {} is not a published notice of site {}", body.notice, site.key)))?;
    let page_url = check_page_url(body.page_url)?;
    let phone = match body.phone.as_deref() {
        Some(p) => Some(parse_phone(&state.settings, Some(p), None)?),
        None => None,
    };
    if let Some(text) = &body.text {
        // The same limit the link has, checked before anything is stored.
        make_link(site.phones[0].clone(), Some(text))?;
    }
    let event = consents::grant(
        &state.store,
        &state.keys,
        Grant {
            site: &site,
            notice: &notice,
            purposes: body.purposes,
            reference: body.reference,
            phone,
            method: Method::Widget,
            actor: "widget".into(),
            evidence: Evidence { page_url, ip: Some(truncate_ip(ip)), user_agent, ..Evidence::default() },
        },
    )
    .await?;
    let text = text_with_reference(body.text.as_deref(), &event.reference);
    let link = make_link(site.phones[0].clone(), Some(&text))?;
    tracing::info!(site = %site.key, event = %event.id, seq = event.seq, "consent granted");
    Ok((
        StatusCode::CREATED,
        ApiJson(ConsentCreated {
            id: event.id,
            reference: event.reference,
            link: link.url().to_owned(),
            recorded_at: event.recorded_at.to_string(),
            notice_sha256: notice.sha256,
        }),
    ))
}

async fn withdraw(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    origin: RequestOrigin,
    UserAgent(user_agent): UserAgent,
    bearer: Option<Bearer>,
    ApiPath(reference): ApiPath<String>,
    ApiJson(body): ApiJson<WithdrawConsent>,
) -> Result<ApiJson<ConsentEventView>, ApiError> {
    let reference = Reference::parse(&reference).map_err(|e| ApiError::invalid("invalid_reference", e.to_string()))?;
    if body.reason.as_ref().is_some_and(|r| r.chars().count() > consents::MAX_REASON_CHARS) {
        return Err(ApiError::invalid("reason_too_long", format!("reason is longer than {} characters", consents::MAX_REASON_CHARS)));
    }
    let (site, method, actor) = match (&bearer, &body.site) {
        (Some(bearer), site_key) => {
            let site = match site_key {
                Some(key) => site_for_key(&state, key).await?,
                None => {
                    let id = bearer.0.site_id.clone().ok_or_else(|| {
                        ApiError::invalid("missing_site", "name the site: {\"site\": \"pk_…\"} (this token is valid for every site)")
                    })?;
                    state.store.site_by_id(&id).await?.ok_or_else(|| ApiError::NotFound("the token's site no longer exists".into()))?
                }
            };
            if !(bearer.0.has_role(Role::Auditor)) {
                return Err(ApiError::forbidden("wrong_role", "withdrawing on a person's behalf needs an auditor or admin token"));
            }
            bearer.require(Role::Auditor, Some(&site))?;
            (site, Method::Admin, format!("token:{}", bearer.0.id))
        }
        (None, Some(key)) => {
            state.limits.check(Bucket::PublicWrite, ip)?;
            let site = site_for_key(&state, key).await?;
            origin.check(&site)?;
            (site, Method::Widget, "widget".to_owned())
        }
        (None, None) => {
            return Err(ApiError::invalid("missing_site", "name the site the consent was given on: {\"site\": \"pk_…\"}"));
        }
    };
    let grant = state
        .store
        .grant_by_reference(&site.id, &reference)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no consent with reference {reference} at site {}", site.key)))?;
    let evidence = Evidence {
        ip: (method == Method::Widget).then(|| truncate_ip(ip)),
        user_agent: if method == Method::Widget { user_agent } else { None },
        reason: body.reason.map(|r| clip(&r, consents::MAX_REASON_CHARS)),
        ..Evidence::default()
    };
    let event = match consents::withdraw(&state.store, &state.keys, &grant, body.purposes, method, actor, evidence).await? {
        consents::Withdrawal::Recorded(event) => {
            tracing::info!(site = %site.key, event = %event.id, "consent withdrawn");
            event
        }
        consents::Withdrawal::Already(event) => event,
    };
    let view = Viewer::default().view(&state.store, &state.keys, &event).await?;
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    pub(crate) site: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<String>,
}

pub(crate) fn parse_time(name: &str, value: &str) -> Result<jiff::Timestamp, ApiError> {
    value.parse::<jiff::Timestamp>().map_err(|_| {
        ApiError::invalid(
            "invalid_time",
            format!("{name} must be an RFC 3339 time such as 2026-03-03T10:00:00Z, not {:?}", value.chars().take(40).collect::<String>()),
        )
    })
}

/// Builds an event filter from the auditor's query, within the token's reach.
pub(crate) async fn filter_from_query(state: &AppState, bearer: &Bearer, q: &ListQuery) -> Result<EventFilter, ApiError> {
    bearer.require(Role::Auditor, None)?;
    let mut filter = EventFilter::default();
    match q.site.as_deref() {
        Some(key) => {
            let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
            let site = site_for_key(state, &key).await?;
            bearer.require(Role::Auditor, Some(&site))?;
            filter.site_id = Some(site.id);
        }
        None => filter.site_id = bearer.0.site_id.clone(),
    }
    if let Some(phone) = q.phone.as_deref() {
        let phone = parse_phone(&state.settings, Some(phone), q.region.as_deref())?;
        consents::person_filter(&state.store, &state.keys, &phone, &mut filter).await?;
    }
    if let Some(reference) = q.reference.as_deref() {
        let reference = Reference::parse(reference).map_err(|e| ApiError::invalid("invalid_reference", e.to_string()))?;
        match &mut filter.references {
            // Both phone and reference: the reference must be one of the person's.
            Some(refs) => {
                let theirs = refs.contains(&reference);
                filter.subjects = Some(Vec::new());
                filter.references = Some(if theirs { vec![reference] } else { Vec::new() });
            }
            None => filter.references = Some(vec![reference]),
        }
    }
    if let Some(purpose) = q.purpose.as_deref() {
        filter.purpose = Some(purpose.parse::<Purpose>().map_err(|e| ApiError::invalid("invalid_purpose", e.to_string()))?);
    }
    if let Some(action) = q.action.as_deref() {
        filter.action = Some(action.parse::<Action>().map_err(|e| ApiError::invalid("invalid_action", e.to_string()))?);
    }
    if let Some(from) = q.from.as_deref() {
        filter.from = Some(parse_time("from", from)?);
    }
    if let Some(to) = q.to.as_deref() {
        filter.to = Some(parse_time("to", to)?);
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(ApiError::invalid("invalid_time", "from must be earlier than to"));
    }
    if let Some(cursor) = q.cursor.as_deref() {
        filter.after = Some(LogPosition::parse_cursor(cursor).ok_or_else(|| ApiError::invalid("invalid_cursor", "cursor is not one this API gave out"))?);
    }
    Ok(filter)
}

async fn list(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<ListQuery>) -> Result<ApiJson<ConsentPage>, ApiError> {
    let filter = filter_from_query(&state, &bearer, &q).await?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid("invalid_parameter", format!("limit must be a whole number from 1 to {MAX_PAGE}"))),
        },
    };
    // One more than asked tells whether there is a next page.
    let mut events = state.store.events(&filter, limit + 1).await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let mut viewer = Viewer::default();
    let mut views = Vec::with_capacity(events.len());
    for event in &events {
        views.push(viewer.view(&state.store, &state.keys, event).await?);
    }
    let next_cursor = if more { events.last().map(|e| LogPosition::of(e).to_cursor()) } else { None };
    Ok(ApiJson(ConsentPage { events: views, next_cursor }))
}

async fn one(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<ApiJson<ConsentEventView>, ApiError> {
    bearer.require(Role::Auditor, None)?;
    let id = EventId::parse(&id).map_err(|e| ApiError::invalid("invalid_id", e.to_string()))?;
    let event = state.store.event(&id).await?.ok_or_else(|| ApiError::NotFound(format!("no consent event {id}")))?;
    if !bearer.0.reaches_site(&event.site_id) {
        return Err(ApiError::NotFound(format!("no consent event {id}")));
    }
    Ok(ApiJson(Viewer::default().view(&state.store, &state.keys, &event).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitorReceiptQuery {
    site: Option<String>,
}

/// `GET /v1/receipts/{reference}?site=pk_…` (public): the consent receipt of the grant with
/// that reference, for the person who was given the reference (the widget's "Download your
/// receipt"; a Kantara consent receipt is the person's own copy). The reference is the
/// credential, as for withdrawal: 49 random bits, guessed at the public read limit never.
/// The person's number is left out (a reference can travel in a WhatsApp message); the proof
/// does not cover it, so the receipt still verifies offline.
async fn visitor_receipt(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(reference): ApiPath<String>,
    ApiQuery(q): ApiQuery<VisitorReceiptQuery>,
) -> Result<Response, ApiError> {
    state.limits.check(Bucket::PublicRead, ip)?;
    let reference = Reference::parse(&reference).map_err(|e| ApiError::invalid("invalid_reference", e.to_string()))?;
    let key = q.site.as_deref().ok_or_else(|| ApiError::invalid("missing_site", "name the site the consent was given on: ?site=pk_…"))?;
    let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
    let site = site_for_key(&state, &key).await?;
    let grant = state
        .store
        .grant_by_reference(&site.id, &reference)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no consent with reference {reference} at site {}", site.key)))?;
    let mut receipt = crate::receipt::build(&state, &grant).await?;
    receipt.pii_principal_id = None;
    let mut response = ApiJson(receipt).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"consent-receipt-{reference}.json\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

//! QR studio routes: campaigns (`/v1/campaigns…`, marketer token), their stats and codes,
//! the short-link redirect `GET /q/{code}` (public, counts the scan), and batch codes
//! `POST /v1/qr/batch`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use cornetta_shared::{Reference, Region, SiteKey};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::link::{RenderQuery, parse_phone, qr_response};
use super::{ApiJson, ApiPath, ApiQuery, Bearer, ClientIp, UserAgent};
use crate::campaigns::stats::Stats;
use crate::campaigns::{Campaign, CampaignChange, CampaignInput, DeviceClass, NewCampaign, ShortCode, short_url, utc_day};
use crate::error::ApiError;
use crate::limits::Bucket;
use crate::qr::batch::{self, BatchError};
use crate::qr::options::RenderOptions;
use crate::qr::Format;
use crate::state::AppState;
use crate::store::studio::{CampaignFilter, StudioStore};
use crate::store::{Role, Site, StoreError, TokenInfo};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create).get(list))
        .route("/v1/campaigns/{id}", get(show).patch(edit))
        .route("/v1/campaigns/{id}/end", post(end))
        .route("/v1/campaigns/{id}/stats", get(stats))
        .route("/v1/campaigns/{id}/qr", get(campaign_qr))
        .route("/q/{code}", get(redirect))
        .route(
            "/v1/qr/batch",
            post(qr_batch).layer(axum::extract::DefaultBodyLimit::max(batch::MAX_CSV_BYTES + 1)),
        )
}

pub(crate) fn studio(state: &AppState) -> Result<&dyn StudioStore, ApiError> {
    state.store.studio().ok_or_else(|| ApiError::Unavailable {
        code: "studio_unavailable",
        message: format!("campaigns are not available with the {} store yet", state.store.backend()),
    })
}

/// The JSON body of `POST /v1/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCampaign {
    /// The site's public key; default: the token's site, or the only site.
    pub(crate) site: Option<String>,
    pub(crate) name: String,
    /// Default: the site's first number.
    pub(crate) phone: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) medium: Option<String>,
    /// Default true: a `/q/` short link that counts scans.
    pub(crate) tracked: Option<bool>,
    /// RFC 3339, e.g. 2027-01-31T23:59:59Z.
    pub(crate) expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct QrUrls {
    svg: String,
    png: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct CampaignView {
    id: String,
    site: SiteKey,
    name: String,
    phone: String,
    text: Option<String>,
    source: Option<String>,
    medium: Option<String>,
    tracked: bool,
    code: Option<String>,
    /// The link to print: the short link (tracked) or the wa.me link (static).
    link: String,
    short_url: Option<String>,
    /// Where a scan lands; a `{ref}` in it is replaced at every scan.
    target_url: String,
    qr: QrUrls,
    expires_at: Option<String>,
    expired: bool,
    created_at: String,
    /// When it was last edited (`PATCH /v1/campaigns/{id}`).
    updated_at: Option<String>,
}

pub(crate) fn view(state: &AppState, site: &Site, c: &Campaign) -> Result<CampaignView, ApiError> {
    let base = &state.settings.public_url;
    let target = c.link_for(None).map_err(|e| ApiError::internal(anyhow::anyhow!("stored campaign has a bad link: {e}")))?;
    let link = c.qr_payload(base).map_err(|e| ApiError::internal(anyhow::anyhow!("stored campaign has a bad link: {e}")))?;
    Ok(CampaignView {
        id: c.id.clone(),
        site: site.key.clone(),
        name: c.name.clone(),
        phone: c.phone.to_string(),
        text: c.text.clone(),
        source: c.source.as_ref().map(|t| t.as_str().to_owned()),
        medium: c.medium.as_ref().map(|t| t.as_str().to_owned()),
        tracked: c.tracked(),
        code: c.code.as_ref().map(|c| c.as_str().to_owned()),
        link,
        short_url: c.code.as_ref().map(|code| short_url(base, code)),
        target_url: target.url().to_owned(),
        qr: QrUrls {
            svg: format!("{base}/v1/campaigns/{}/qr?format=svg", c.id),
            png: format!("{base}/v1/campaigns/{}/qr?format=png&size=3cm&dpi=300", c.id),
        },
        expires_at: c.expires_at.map(|t| t.to_string()),
        expired: c.is_expired(Timestamp::now()),
        created_at: c.created_at.to_string(),
        updated_at: c.updated_at.map(|t| t.to_string()),
    })
}

/// The site a marketer acts on: the one named (which the token must reach), else the
/// token's own, else the only site there is.
pub(crate) async fn site_for_token(state: &AppState, token: &TokenInfo, named: Option<&str>) -> Result<Site, ApiError> {
    if let Some(key) = named.map(str::trim).filter(|k| !k.is_empty()) {
        let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
        let site = state.store.site_by_key(&key).await?.ok_or_else(|| ApiError::NotFound(format!("no site has the key {key}")))?;
        if !token.reaches_site(&site.id) {
            return Err(ApiError::forbidden("wrong_site", format!("this token is not valid for site {}", site.key)));
        }
        return Ok(site);
    }
    if let Some(id) = &token.site_id {
        return state.store.site_by_id(id).await?.ok_or_else(|| ApiError::NotFound("the token's site no longer exists".into()));
    }
    let mut sites = state.store.list_sites().await?;
    match sites.len() {
        1 => Ok(sites.remove(0)),
        0 => Err(ApiError::invalid("no_site", "there is no site yet; create one with `cornetta site create`")),
        _ => Err(ApiError::invalid("missing_site", "this server has several sites: name one with \"site\": \"pk_…\"")),
    }
}

/// Creates a campaign, drawing another code in the (unlikely, 49-bit) event of a clash.
pub(crate) async fn create_campaign(state: &AppState, token: &TokenInfo, body: CreateCampaign) -> Result<(Site, Campaign), ApiError> {
    let site = site_for_token(state, token, body.site.as_deref()).await?;
    let phone = match body.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => parse_phone(&state.settings, Some(p), body.region.as_deref())?,
        None => site.phones.first().cloned().ok_or_else(|| ApiError::invalid("missing_phone", "the site has no number: give \"phone\""))?,
    };
    let expires_at = body
        .expires_at
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse_expiry)
        .transpose()?;
    let studio = studio(state)?;
    for _ in 0..5 {
        let input = CampaignInput {
            name: &body.name,
            phone: phone.clone(),
            text: body.text.as_deref(),
            source: body.source.as_deref(),
            medium: body.medium.as_deref(),
            tracked: body.tracked.unwrap_or(true),
            expires_at,
        };
        let new = NewCampaign::build(&site.id, input, format!("token:{}", token.id), Timestamp::now())
            .map_err(|e| ApiError::invalid("invalid_campaign", format!("{}: {}", e.field, e.message)))?;
        match studio.create_campaign(new).await {
            Ok(c) => return Ok((site, c)),
            Err(crate::store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(anyhow::anyhow!("five short codes in a row were taken")))
}

/// An RFC 3339 timestamp, or a date meaning the end of that UTC day.
pub(crate) fn parse_expiry(input: &str) -> Result<Timestamp, ApiError> {
    if let Ok(ts) = input.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(date) = input.parse::<Date>() {
        let next = date.tomorrow().map_err(|_| ApiError::invalid("invalid_campaign", "expires_at: that date is out of range"))?;
        return next
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|_| ApiError::invalid("invalid_campaign", "expires_at: that date is out of range"));
    }
    Err(ApiError::invalid(
        "invalid_campaign",
        format!("expires_at: {:?} is not a date (2027-01-31) or an RFC 3339 time (2027-01-31T23:59:59Z)", input.chars().take(40).collect::<String>()),
    ))
}

async fn create(State(state): State<AppState>, bearer: Bearer, ApiJson(body): ApiJson<CreateCampaign>) -> Result<(StatusCode, ApiJson<CampaignView>), ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (site, campaign) = create_campaign(&state, &bearer.0, body).await?;
    tracing::info!(campaign = %campaign.id, tracked = campaign.tracked(), "campaign created");
    Ok((StatusCode::CREATED, ApiJson(view(&state, &site, &campaign)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    site: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct CampaignPage {
    campaigns: Vec<CampaignView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    next_cursor: Option<String>,
}

async fn list(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<ListQuery>) -> Result<ApiJson<CampaignPage>, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("invalid_parameter", format!("limit must be 1 to 200, not {limit}")));
    }
    let site_id = match (&q.site, &bearer.0.site_id) {
        (Some(_), _) => Some(site_for_token(&state, &bearer.0, q.site.as_deref()).await?.id),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    };
    let filter = CampaignFilter { site_id, before: q.cursor.clone() };
    let found = studio(&state)?.campaigns(&filter, limit + 1).await?;
    let more = found.len() > limit as usize;
    let sites = state.store.list_sites().await?;
    let mut campaigns = Vec::new();
    for c in found.iter().take(limit as usize) {
        if let Some(site) = sites.iter().find(|s| s.id == c.site_id) {
            campaigns.push(view(&state, site, c)?);
        }
    }
    let next_cursor = if more { campaigns.last().map(|c| c.id.clone()) } else { None };
    Ok(ApiJson(CampaignPage { campaigns, next_cursor }))
}

/// A campaign the token may see; 404 for others' too (no probing of ids).
pub(crate) async fn campaign_for(state: &AppState, token: &TokenInfo, id: &str) -> Result<(Site, Campaign), ApiError> {
    let not_found = || ApiError::NotFound(format!("no campaign {}", id.chars().take(60).collect::<String>()));
    let campaign = studio(state)?.campaign(id).await?.ok_or_else(not_found)?;
    if !token.reaches_site(&campaign.site_id) {
        return Err(not_found());
    }
    let site = state.store.site_by_id(&campaign.site_id).await?.ok_or_else(not_found)?;
    Ok((site, campaign))
}

/// A campaign's JSON with its version in `ETag`, for an `If-Match` on the next change.
fn versioned(state: &AppState, site: &Site, campaign: &Campaign) -> Result<Response, ApiError> {
    let mut response = ApiJson(view(state, site, campaign)?).into_response();
    if let Ok(etag) = HeaderValue::from_str(&campaign.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

async fn show(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (site, campaign) = campaign_for(&state, &bearer.0, &id).await?;
    versioned(&state, &site, &campaign)
}

/// The `If-Match` header's value, when the request has one it can be read from.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_request("invalid_if_match", "If-Match must be an ETag such as \"1764680000000000\", or *")))
        .transpose()
}

/// Whether `if_match` (a list of entity tags, or `*`) names `etag`. Strong comparison
/// (RFC 9110 §13.1.1): a weak tag never matches.
fn names_version(if_match: &str, etag: &str) -> bool {
    if_match.split(',').map(str::trim).any(|tag| tag == "*" || tag == etag)
}

fn stale(campaign: &Campaign, wanted: &str) -> ApiError {
    ApiError::PreconditionFailed(format!(
        "campaign {} changed since the version you read (If-Match: {}); it is now at ETag {}: GET it again and make your change on that",
        campaign.id,
        wanted.chars().take(60).collect::<String>(),
        campaign.etag()
    ))
}

/// How often a change without `If-Match` is made again on the latest version when another
/// change landed between its read and its write.
const CHANGE_ATTEMPTS: usize = 5;

/// Stores `change` applied to a campaign the token may see (API or console). With
/// `if_match`, only to the version it names (412 otherwise, nothing stored); without, to
/// the latest version: the store writes only over the version read (compare and set), so
/// two concurrent edits of different fields both land instead of the later undoing the
/// earlier, as they did when each wrote back the whole campaign it had read.
async fn change_campaign(
    state: &AppState,
    token: &TokenInfo,
    id: &str,
    if_match: Option<&str>,
    change: impl Fn(&Campaign) -> Result<Campaign, ApiError>,
) -> Result<(Site, Campaign), ApiError> {
    for _ in 0..CHANGE_ATTEMPTS {
        let (site, campaign) = campaign_for(state, token, id).await?;
        if let Some(wanted) = if_match
            && !names_version(wanted, &campaign.etag())
        {
            return Err(stale(&campaign, wanted));
        }
        let changed = change(&campaign)?;
        match studio(state)?.update_campaign(&changed, campaign.updated_at).await {
            Ok(stored) => return Ok((site, stored)),
            Err(StoreError::Conflict(_)) => match if_match {
                Some(wanted) => {
                    let (_, now) = campaign_for(state, token, id).await?;
                    return Err(stale(&now, wanted));
                }
                None => continue,
            },
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict("edit_conflict", format!("campaign {id} kept changing while this change was made; make it again")))
}

/// `Some(None)` for an explicit `null`, so that it clears the field; an absent field stays
/// `None` (through `#[serde(default)]`) and leaves it as it is.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The JSON body of `PATCH /v1/campaigns/{id}`: only the fields given change; `null` or
/// `""` clears the text, a tag or the expiry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditCampaign {
    pub(crate) name: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) region: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) text: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) source: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) medium: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) expires_at: Option<Option<String>>,
}

/// `PATCH /v1/campaigns/{id}` (marketer): a printed tracked code sends its next scan to the
/// new number or message; static campaigns keep what their code holds.
/// `If-Match` makes it conditional (412 when the campaign changed since).
async fn edit(State(state): State<AppState>, headers: HeaderMap, bearer: Bearer, ApiPath(id): ApiPath<String>, ApiJson(body): ApiJson<EditCampaign>) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (site, edited) = edit_campaign(&state, &bearer.0, &id, if_match(&headers)?, &body).await?;
    versioned(&state, &site, &edited)
}

/// `POST /v1/campaigns/{id}/end` (marketer): ends a tracked campaign now; its printed codes
/// then show "this campaign has ended". Ending an ended campaign keeps its first end.
async fn end(State(state): State<AppState>, headers: HeaderMap, bearer: Bearer, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (site, ended) = end_campaign(&state, &bearer.0, &id, if_match(&headers)?).await?;
    versioned(&state, &site, &ended)
}

/// Ends a campaign the token may see (API or console), and stores it.
pub(crate) async fn end_campaign(state: &AppState, token: &TokenInfo, id: &str, if_match: Option<&str>) -> Result<(Site, Campaign), ApiError> {
    let ended = |campaign: &Campaign| campaign.ended(Timestamp::now()).map_err(|e| ApiError::invalid("static_campaign", e.message));
    let (site, stored) = change_campaign(state, token, id, if_match, ended).await?;
    tracing::info!(campaign = %stored.id, "campaign ended");
    Ok((site, stored))
}

/// Applies an edit (API or console) to a campaign the token may see, and stores it.
pub(crate) async fn edit_campaign(state: &AppState, token: &TokenInfo, id: &str, if_match: Option<&str>, body: &EditCampaign) -> Result<(Site, Campaign), ApiError> {
    let phone = body.phone.as_deref().map(|p| parse_phone(&state.settings, Some(p), body.region.as_deref())).transpose()?;
    let expires_at = match body.expires_at.as_ref().map(|e| e.as_deref().map(str::trim).filter(|e| !e.is_empty())) {
        Some(Some(e)) => Some(Some(parse_expiry(e)?)),
        Some(None) => Some(None),
        None => None,
    };
    // An empty text or tag clears it, as when a campaign is made.
    let change = CampaignChange {
        name: body.name.as_deref(),
        phone,
        text: body.text.as_ref().map(Option::as_deref),
        source: body.source.as_ref().map(Option::as_deref),
        medium: body.medium.as_ref().map(Option::as_deref),
        expires_at,
    };
    let edited = |campaign: &Campaign| campaign.edited(&change, Timestamp::now()).map_err(|e| ApiError::invalid("invalid_campaign", format!("{}: {}", e.field, e.message)));
    let (site, stored) = change_campaign(state, token, id, if_match, edited).await?;
    tracing::info!(campaign = %stored.id, "campaign edited");
    Ok((site, stored))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsQuery {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) format: Option<String>,
}

/// A campaign's stats: stored counters plus those not yet written.
pub(crate) async fn stats_for(state: &AppState, campaign: &Campaign, q: &StatsQuery) -> Result<Stats, ApiError> {
    let day = |name: &str, v: Option<&str>| -> Result<Option<Date>, ApiError> {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<Date>().map_err(|_| ApiError::invalid("invalid_parameter", format!("{name} must be a date like 2027-01-31, not {:?}", v.chars().take(20).collect::<String>()))))
            .transpose()
    };
    let from = day("from", q.from.as_deref())?;
    let to = day("to", q.to.as_deref())?;
    let mut counts = studio(state)?.scans(&campaign.id).await?;
    let pending = state.studio.scans.pending_for(&campaign.id);
    let unsaved = pending.iter().map(|c| c.scans).sum();
    counts.extend(pending);
    let mut stats = Stats::build(&counts, utc_day(Timestamp::now()), from, to).map_err(|m| ApiError::invalid("invalid_parameter", m))?;
    stats.unsaved = unsaved;
    Ok(stats)
}

async fn stats(State(state): State<AppState>, bearer: Bearer, ApiPath(id): ApiPath<String>, ApiQuery(q): ApiQuery<StatsQuery>) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (_, campaign) = campaign_for(&state, &bearer.0, &id).await?;
    let stats = stats_for(&state, &campaign, &q).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(ApiJson(stats.to_json(&campaign)).into_response()),
        "csv" => Ok(csv_response(&campaign, &stats)),
        other => Err(ApiError::invalid("invalid_parameter", format!("format must be json or csv, not {:?}", other.chars().take(20).collect::<String>()))),
    }
}

pub(crate) fn csv_response(campaign: &Campaign, stats: &Stats) -> Response {
    let disposition = format!("attachment; filename=\"{}-scans.csv\"", crate::qr::batch::slug(&campaign.name));
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"))], stats.to_csv()).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn campaign_qr(
    State(state): State<AppState>,
    bearer: Bearer,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RenderQuery>,
) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let (_, campaign) = campaign_for(&state, &bearer.0, &id).await?;
    let options = q.options()?;
    campaign_qr_response(&state, &headers, &campaign, &options)
}

pub(crate) fn campaign_qr_response(state: &AppState, headers: &HeaderMap, campaign: &Campaign, options: &RenderOptions) -> Result<Response, ApiError> {
    let payload = campaign.qr_payload(&state.settings.public_url).map_err(|e| ApiError::invalid("link_too_long", e.to_string()))?;
    let name = format!("{}-{}", crate::qr::batch::slug(&campaign.name), options.size.describe());
    qr_response(headers, &payload, options, Some(&name))
}

/// A friendly page for a scan that cannot be followed; people see it, not programs.
fn scan_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = crate::console::pages::notice_page(title, message);
    let mut response = (status, Html(page)).into_response();
    crate::console::set_page_headers(response.headers_mut());
    response
}

async fn redirect(State(state): State<AppState>, ClientIp(ip): ClientIp, UserAgent(ua): UserAgent, ApiPath(code): ApiPath<String>) -> Response {
    match follow(&state, ip, ua.as_deref(), &code).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn follow(state: &AppState, ip: std::net::IpAddr, ua: Option<&str>, code: &str) -> Result<Response, Response> {
    let too_many = || {
        scan_page(StatusCode::TOO_MANY_REQUESTS, "Too many tries", "This device has opened too many links in a short time. Wait a minute and scan the code again.")
    };
    if state.limits.check(Bucket::PublicRead, ip).is_err() {
        return Err(too_many());
    }
    let unknown = || {
        scan_page(
            StatusCode::NOT_FOUND,
            "This code does not lead anywhere",
            "We could not find this link. Check that the whole code was scanned, or ask the business for a new one.",
        )
    };
    let Some(code) = ShortCode::parse(code) else {
        return Err(if state.studio.misses.allow(ip) { unknown() } else { too_many() });
    };
    let studio = studio(state).map_err(IntoResponse::into_response)?;
    let campaign = match studio.campaign_by_code(&code).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(if state.studio.misses.allow(ip) { unknown() } else { too_many() }),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let now = Timestamp::now();
    if campaign.is_expired(now) {
        return Err(scan_page(
            StatusCode::GONE,
            "This campaign has ended",
            "The offer behind this code is over. The business may have a newer one: check their shop or website.",
        ));
    }
    let reference = campaign.wants_ref().then(|| Reference::from_random(random_reference_bytes()));
    let link = campaign.link_for(reference.as_ref()).map_err(|e| ApiError::internal(anyhow::anyhow!("stored campaign has a bad link: {e}")).into_response())?;
    state.studio.scans.record(&campaign.id, utc_day(now), DeviceClass::classify(ua));
    let location = HeaderValue::from_str(link.url()).map_err(|e| ApiError::internal(e).into_response())?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // Every scan must reach us to be counted (and gets its own reference).
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
    )
        .into_response())
}

/// Uniform symbols for a reference: bytes at or above 240 (8 × 30) are redrawn.
fn random_reference_bytes() -> [u8; 10] {
    let mut out = [0u8; 10];
    let mut n = 0;
    while n < out.len() {
        let bytes: [u8; 16] = rand::random();
        for b in bytes {
            if b < 240 && n < out.len() {
                out[n] = b;
                n += 1;
            }
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchQuery {
    region: Option<String>,
    /// svg, png or both (default).
    format: Option<String>,
    size: Option<String>,
    dpi: Option<String>,
    margin: Option<String>,
    ecc: Option<String>,
    fg: Option<String>,
    bg: Option<String>,
    label: Option<String>,
}

async fn qr_batch(State(state): State<AppState>, bearer: Bearer, ApiQuery(q): ApiQuery<BatchQuery>, body: Bytes) -> Result<Response, ApiError> {
    bearer.require(Role::Marketer, None)?;
    let formats = match q.format.as_deref().unwrap_or("both").to_ascii_lowercase().as_str() {
        "both" => vec![Format::Png, Format::Svg],
        "png" => vec![Format::Png],
        "svg" => vec![Format::Svg],
        other => return Err(ApiError::invalid("invalid_parameter", format!("format must be svg, png or both, not {:?}", other.chars().take(20).collect::<String>()))),
    };
    let render = RenderQuery { format: Some(formats[0].extension().to_owned()), size: q.size, dpi: q.dpi, margin: q.margin, ecc: q.ecc, fg: q.fg, bg: q.bg, label: q.label };
    let options = render.options()?;
    let region = match q.region.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(Region::parse(r).map_err(|e| ApiError::invalid("invalid_region", e.to_string()))?),
        None => state.settings.default_region,
    };
    let out = tokio::task::spawn_blocking(move || batch::run(&body, region, &options, &formats)).await.map_err(ApiError::internal)?;
    let out = out.map_err(|e| match e {
        BatchError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
        BatchError::Zip(_) => ApiError::internal(anyhow::anyhow!(e.to_string())),
        other => ApiError::invalid("invalid_batch", other.to_string()),
    })?;
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/zip")),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"qr-codes.zip\"")),
        ],
        out.zip,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("x-cornetta-codes", HeaderValue::from(out.produced as u64));
    headers.insert("x-cornetta-bad-rows", HeaderValue::from(out.errors.len() as u64));
    if !out.errors.is_empty() {
        let lines: Vec<String> = out.errors.iter().take(50).map(|e| e.line.to_string()).collect();
        if let Ok(v) = HeaderValue::from_str(&lines.join(",")) {
            headers.insert("x-cornetta-bad-lines", v);
        }
    }
    Ok(response)
}


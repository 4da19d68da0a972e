//! Site routes: the widget's configuration (public) and the admin API for sites and notices.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use cornetta_shared::api::{NoticePurpose, NoticeView, WidgetConfig};
use cornetta_shared::widget::WidgetSettings;
use cornetta_shared::{Lang, NoticeId, PhoneNumber, SiteKey};
use serde::{Deserialize, Serialize};

use super::link::parse_phone;
use super::{ApiJson, ApiPath, ApiQuery, Bearer, ClientIp, RequestOrigin};
use crate::error::ApiError;
use crate::limits::Bucket;
use crate::notice;
use crate::state::AppState;
use crate::store::{Notice, Role, Site};

pub(super) fn public_router() -> Router<AppState> {
    Router::new().route("/v1/sites/{key}/widget", get(widget_config))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sites", post(create).get(list))
        .route("/v1/sites/{key}", get(show))
        .route("/v1/sites/{key}/origins", put(set_origins))
        .route("/v1/sites/{key}/widget/settings", get(widget_settings).put(set_widget_settings))
        .route("/v1/sites/{key}/notices", post(publish_notice).get(notice_history))
        .route("/v1/sites/{key}/notices/{id}", get(one_notice))
}

async fn site_for(state: &AppState, key: &str) -> Result<Site, ApiError> {
    let key = SiteKey::parse(key).map_err(|e| ApiError::invalid("invalid_site", e.to_string()))?;
    state.store.site_by_key(&key).await?.ok_or_else(|| ApiError::NotFound(format!("no site has the key {key}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigQuery {
    /// Preferred languages, best first: `lang=it,en`.
    lang: Option<String>,
}

/// Picks the notice in the first of the visitor's languages the site has, else the site's
/// default language.
async fn notice_for(state: &AppState, site: &Site, wanted: Option<&str>) -> Result<Option<NoticeView>, ApiError> {
    let mut langs: Vec<Lang> = wanted.unwrap_or("").split(',').take(10).filter_map(|l| Lang::parse(l).ok()).collect();
    langs.push(site.default_lang);
    for lang in langs {
        if let Some(n) = state.store.current_notice(&site.id, lang).await? {
            return Ok(Some(notice::view(&n)));
        }
    }
    Ok(None)
}

async fn widget_config(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    origin: RequestOrigin,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<ApiJson<WidgetConfig>, ApiError> {
    state.limits.check(Bucket::PublicRead, ip)?;
    let site = site_for(&state, &key).await?;
    origin.check(&site)?;
    let notice = notice_for(&state, &site, q.lang.as_deref()).await?;
    let langs: Vec<Lang> = q.lang.as_deref().unwrap_or("").split(',').take(10).filter_map(|l| Lang::parse(l).ok()).collect();
    Ok(ApiJson(crate::widget_settings::config(&site, notice, &langs, crate::consents::now())))
}

/// `GET /v1/sites/{key}/widget/settings` (admin): the stored settings.
async fn widget_settings(State(state): State<AppState>, bearer: Bearer, ApiPath(key): ApiPath<String>) -> Result<ApiJson<WidgetSettings>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    Ok(ApiJson(crate::widget_settings::stored(&site)))
}

/// `PUT /v1/sites/{key}/widget/settings` (admin): replaces the settings after checking
/// them; answers with what was stored (numbers in E.164).
async fn set_widget_settings(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<WidgetSettings>,
) -> Result<ApiJson<WidgetSettings>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let settings = crate::widget_settings::check(body, state.settings.default_region).map_err(|e| ApiError::invalid("invalid_widget_settings", e))?;
    let json = serde_json::to_value(&settings).map_err(|e| ApiError::Internal(e.into()))?;
    state.store.update_site_widget(&site.id, json).await?;
    tracing::info!(site = %site.key, "widget settings updated");
    Ok(ApiJson(settings))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSite {
    business: String,
    phones: Vec<String>,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default)]
    default_lang: Option<Lang>,
    #[serde(default)]
    region: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SiteView {
    key: SiteKey,
    business: String,
    phones: Vec<String>,
    origins: Vec<String>,
    default_lang: Lang,
    created_at: String,
}

pub(crate) fn site_view(site: &Site) -> SiteView {
    SiteView {
        key: site.key.clone(),
        business: site.business_name.clone(),
        phones: site.phones.iter().map(PhoneNumber::to_string).collect(),
        origins: site.allowed_origins.clone(),
        default_lang: site.default_lang,
        created_at: site.created_at.to_string(),
    }
}

async fn create(State(state): State<AppState>, bearer: Bearer, ApiJson(body): ApiJson<CreateSite>) -> Result<(StatusCode, ApiJson<SiteView>), ApiError> {
    bearer.require(Role::Admin, None)?;
    if bearer.0.site_id.is_some() {
        return Err(ApiError::forbidden("wrong_site", "creating sites needs a global admin token"));
    }
    let phones = body
        .phones
        .iter()
        .map(|p| parse_phone(&state.settings, Some(p), body.region.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let origins = body
        .origins
        .iter()
        .map(|o| crate::sites::parse_origin(o).map_err(|e| ApiError::invalid("invalid_origin", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let (site, _) = crate::sites::create(&state.store, &body.business, phones, origins, body.default_lang.unwrap_or(Lang::EN)).await?;
    Ok((StatusCode::CREATED, ApiJson(site_view(&site))))
}

async fn list(State(state): State<AppState>, bearer: Bearer) -> Result<ApiJson<Vec<SiteView>>, ApiError> {
    bearer.require(Role::Admin, None)?;
    let sites = state.store.list_sites().await?;
    Ok(ApiJson(sites.iter().filter(|s| bearer.0.reaches_site(&s.id)).map(site_view).collect()))
}

/// The body of `POST /v1/sites/{key}/notices`, and the file of `cornetta site notices --publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishNotice {
    pub(crate) lang: Lang,
    pub(crate) intro: String,
    pub(crate) purposes: Vec<NoticePurpose>,
    #[serde(default)]
    pub(crate) privacy_url: Option<String>,
}

async fn publish_notice(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<PublishNotice>,
) -> Result<(StatusCode, ApiJson<NoticeView>), ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let new = notice::prepare(&site.id, body.lang, &body.intro, body.purposes, body.privacy_url)
        .map_err(|e| ApiError::invalid("invalid_notice", e))?;
    let published = state.store.publish_notice(new).await?;
    Ok((StatusCode::CREATED, ApiJson(notice::view(&published))))
}

/// `GET /v1/sites/{key}` (admin).
async fn show(State(state): State<AppState>, bearer: Bearer, ApiPath(key): ApiPath<String>) -> Result<ApiJson<SiteView>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    Ok(ApiJson(site_view(&site)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetOrigins {
    origins: Vec<String>,
}

/// `PUT /v1/sites/{key}/origins` (admin): replaces the origins allowed to embed the widget
/// and record consent; applies to the next request, on every server of a shared database.
async fn set_origins(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<SetOrigins>,
) -> Result<ApiJson<SiteView>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Admin, Some(&site))?;
    let origins = body
        .origins
        .iter()
        .enumerate()
        .map(|(i, o)| crate::sites::parse_origin(o).map_err(|e| ApiError::invalid("invalid_origin", format!("origins[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let origins = crate::sites::set_origins(&state.store, &site.id, origins).await?;
    tracing::info!(site = %site.key, origins = origins.len(), "allowed origins replaced");
    Ok(ApiJson(site_view(&Site { allowed_origins: origins, ..site })))
}

/// A published notice as an auditor reads it: what the visitor was shown, the canonical
/// text its hash covers (so the hash can be recomputed), and whether it is the version
/// visitors are shown now.
#[derive(Debug, Serialize)]
pub(crate) struct NoticeRecord {
    #[serde(flatten)]
    notice: NoticeView,
    canonical_text: String,
    current: bool,
}

#[derive(Debug, Serialize)]
struct NoticeHistory {
    site: SiteKey,
    notices: Vec<NoticeRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    lang: Option<String>,
}

fn notice_record(n: &Notice, all: &[Notice]) -> NoticeRecord {
    NoticeRecord { notice: notice::view(n), canonical_text: n.canonical_text.clone(), current: notice::is_current(n, all) }
}

/// `GET /v1/sites/{key}/notices?lang=` (auditor): every version ever published, by
/// language, then oldest first (EDPB 05/2020 ¶108: "a copy of the information presented
/// at that time").
async fn notice_history(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<ApiJson<NoticeHistory>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Auditor, Some(&site))?;
    let lang = q.lang.as_deref().map(Lang::parse).transpose().map_err(|e| ApiError::invalid("invalid_lang", e.to_string()))?;
    let all = state.store.notices(&site.id).await?;
    let notices = all.iter().filter(|n| lang.is_none_or(|l| n.lang == l)).map(|n| notice_record(n, &all)).collect();
    Ok(ApiJson(NoticeHistory { site: site.key, notices }))
}

/// `GET /v1/sites/{key}/notices/{id}` (auditor): one version, as a consent names it.
async fn one_notice(State(state): State<AppState>, bearer: Bearer, ApiPath((key, id)): ApiPath<(String, String)>) -> Result<ApiJson<NoticeRecord>, ApiError> {
    let site = site_for(&state, &key).await?;
    bearer.require(Role::Auditor, Some(&site))?;
    let id = NoticeId::parse(&id).map_err(|e| ApiError::invalid("invalid_notice", e.to_string()))?;
    let missing = || ApiError::NotFound(format!("site {} has no notice {id}", site.key));
    let notice = state.store.notice(&id).await?.filter(|n| n.site_id == site.id).ok_or_else(missing)?;
    let newest = state.store.current_notice(&site.id, notice.lang).await?;
    Ok(ApiJson(notice_record(&notice, newest.as_slice())))
}

//! The marketers' console (`/console/…`): server-rendered pages (askama templates in
//! `server/templates/`) to sign in with a marketer token, make campaigns, watch the code
//! change as you type, download print-ready codes and see each campaign's scans.
//!
//! Security: the session cookie is `HttpOnly; SameSite=Strict` (and `Secure` when the
//! public URL is https); the server keeps only its SHA-256 and checks the token it was
//! opened with, unrevoked, on every request. Every form carries a CSRF token (the
//! session's, or for sign-in a double-submit cookie), and POSTs with a foreign `Origin`
//! are refused (OWASP CSRF cheat sheet). Pages are sent with a strict Content Security
//! Policy: scripts and styles only from our own files, never inline. The pages work
//! without JavaScript; `console.js` only enhances (live preview, copy button).
// The checks return the page to answer with (`Result<_, Response>`), as axum handlers do;
// a refusal is rare and answered at once, so its size on the stack does not matter.
#![expect(clippy::result_large_err, reason = "refusals are answered as responses, axum style")]

pub mod pages;
mod i18n;
mod withdraw;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::http::campaigns::{CreateCampaign, EditCampaign, campaign_for, campaign_qr_response, create_campaign, csv_response, edit_campaign, end_campaign, stats_for, studio, StatsQuery};
use crate::http::link::{RenderQuery, parse_phone, qr_response};
use crate::state::AppState;
use crate::store::studio::{CampaignFilter, ConsoleSession};
use crate::store::{Role, Site, TokenInfo};

/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;
const SESSION_COOKIE: &str = "cornetta_console";
const SIGNIN_COOKIE: &str = "cornetta_signin";

/// Content Security Policy of every page we render: nothing inline, nothing foreign.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("../../console-assets/console.css");
const JS: &str = include_str!("../../console-assets/console.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/campaigns") }))
        .route("/console/", get(|| async { Redirect::to("/console/campaigns") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/campaigns", get(campaigns_page).post(create))
        .route("/console/campaigns/{id}", get(campaign_page).post(edit))
        .route("/console/campaigns/{id}/end", post(end))
        .route("/console/campaigns/{id}/qr", get(campaign_qr))
        .route("/console/campaigns/{id}/stats.csv", get(campaign_csv))
        .route("/console/preview", get(preview))
        .route("/withdraw", get(withdraw::show).post(withdraw::withdraw))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"))],
        body,
    )
        .into_response()
}

/// Headers of every HTML page: the CSP, no framing, no caching (pages hold CSRF tokens).
pub fn set_page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    set_page_headers(response.headers_mut());
    response
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn secure(state: &AppState) -> bool {
    state.settings.public_url.starts_with("https://")
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A POST from another origin is refused (browsers send `Origin` on every POST).
fn check_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let authority = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).unwrap_or("");
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(page(StatusCode::FORBIDDEN, pages::notice_page("Refused", "This form was sent from another site. Open the console and try again.")))
    }
}

/// A signed-in marketer.
#[derive(Debug, Clone)]
pub struct Marketer {
    pub token: TokenInfo,
    pub session: ConsoleSession,
}

impl FromRequestParts<AppState> for Marketer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_sign_in()) };
        let Ok(studio) = studio(state) else { return Err(to_sign_in()) };
        let session = match studio.console_session(&sha256_hex(secret), Timestamp::now()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_sign_in()),
            Err(e) => return Err(ApiError::from(e).into_response()),
        };
        let token = match state.store.token_by_hash(&session.token_hash).await {
            Ok(Some(t)) if t.revoked_at.is_none() && t.has_role(Role::Marketer) => t,
            Ok(_) => return Err(to_sign_in()),
            Err(e) => return Err(ApiError::from(e).into_response()),
        };
        Ok(Self { token, session })
    }
}

impl Marketer {
    fn check_csrf(&self, given: &str) -> Result<(), Response> {
        if same(given, &self.session.csrf) {
            Ok(())
        } else {
            Err(page(StatusCode::FORBIDDEN, pages::notice_page("Form expired", "This form is out of date. Go back, reload the page and send it again.")))
        }
    }
}

async fn sign_in_page(State(state): State<AppState>) -> Response {
    let csrf = random_hex();
    let mut response = page(StatusCode::OK, pages::sign_in(&csrf, None));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SIGNIN_COOKIE, &csrf, 3600));
    response
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
    csrf: String,
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, form: Result<Form<SignInForm>, FormRejection>) -> Response {
    if let Err(r) = check_origin(&headers) {
        return r;
    }
    let Ok(Form(form)) = form else {
        return page(StatusCode::BAD_REQUEST, pages::notice_page("Form not readable", "The sign-in form could not be read. Reload the page and try again."));
    };
    let retry = |status: StatusCode, message: &str| {
        let csrf = random_hex();
        let mut response = page(status, pages::sign_in(&csrf, Some(message)));
        response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SIGNIN_COOKIE, &csrf, 3600));
        response
    };
    if !cookie(&headers, SIGNIN_COOKIE).is_some_and(|c| same(c, &form.csrf)) {
        return retry(StatusCode::FORBIDDEN, "The sign-in form was out of date; please sign in again.");
    }
    let token = match crate::tokens::authenticate(&state.store, form.token.trim()).await {
        Ok(Some(t)) => t,
        Ok(None) => return retry(StatusCode::UNAUTHORIZED, "That token is unknown or revoked. Tokens start with crn_; `cornetta token create --role marketer` makes one."),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !token.has_role(Role::Marketer) {
        return retry(StatusCode::FORBIDDEN, &format!("This is a {} token; the console needs a marketer token.", token.role));
    }
    let Ok(studio) = studio(&state) else { return retry(StatusCode::SERVICE_UNAVAILABLE, "The console is not available with this store.") };
    let now = Timestamp::now();
    let _ = studio.delete_expired_console_sessions(now).await;
    let secret = random_hex();
    let session = ConsoleSession {
        id_hash: sha256_hex(&secret),
        token_hash: crate::tokens::hash_secret(form.token.trim()),
        csrf: random_hex(),
        created_at: now,
        expires_at: now + SignedDuration::from_hours(SESSION_HOURS),
    };
    if let Err(e) = studio.create_console_session(session).await {
        return ApiError::from(e).into_response();
    }
    tracing::info!(token = %token.id, "console sign-in");
    let mut response = Redirect::to("/console/campaigns").into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &secret, SESSION_HOURS * 3600));
    headers.append(header::SET_COOKIE, set_cookie(&state, SIGNIN_COOKIE, "", 0));
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap, marketer: Marketer, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    if let Err(r) = check_origin(&headers) {
        return r;
    }
    let given = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(r) = marketer.check_csrf(&given) {
        return r;
    }
    if let Ok(studio) = studio(&state) {
        let _ = studio.delete_console_session(&marketer.session.id_hash).await;
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    response
}

/// The fields of the new-campaign form (also read from the query string for the no-JS
/// preview, which submits the form with GET).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CampaignForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub medium: String,
    /// A checkbox: present ("on") when ticked. The GET preview sends `mode` instead, so an
    /// unticked box there is still known.
    pub tracked: Option<String>,
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub fg: String,
    #[serde(default)]
    pub bg: String,
    #[serde(default)]
    pub ecc: String,
    pub label: Option<String>,
    /// Set by the Preview button of the no-JS form.
    pub preview: Option<String>,
}

impl CampaignForm {
    fn is_tracked(&self) -> bool {
        self.tracked.is_some()
    }

    /// The preview image's URL for these fields.
    pub fn preview_url(&self) -> String {
        let mut q = url_query(&[
            ("site", &self.site),
            ("phone", &self.phone),
            ("text", &self.text),
            ("fg", &self.fg),
            ("bg", &self.bg),
            ("ecc", &self.ecc),
        ]);
        if self.is_tracked() {
            q.push_str("&tracked=on");
        }
        if self.label.is_some() {
            q.push_str("&label=on");
        }
        format!("/console/preview?{q}")
    }
}

fn url_query(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", cornetta_shared::link::encode_text(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn sites_of(state: &AppState, token: &TokenInfo) -> Result<Vec<Site>, ApiError> {
    Ok(state.store.list_sites().await?.into_iter().filter(|s| token.reaches_site(&s.id)).collect())
}

async fn campaigns_page(State(state): State<AppState>, marketer: Marketer, Query(form): Query<CampaignForm>) -> Response {
    let fresh = form.name.is_empty() && form.phone.is_empty() && form.text.is_empty() && form.preview.is_none();
    let form = if fresh { CampaignForm { tracked: Some("on".into()), ..form } } else { form };
    render_campaigns(&state, &marketer, &form, None, StatusCode::OK).await
}

async fn render_campaigns(state: &AppState, marketer: &Marketer, form: &CampaignForm, error: Option<&str>, status: StatusCode) -> Response {
    let result: Result<Response, ApiError> = async {
        let sites = sites_of(state, &marketer.token).await?;
        let filter = CampaignFilter { site_id: marketer.token.site_id.clone(), before: None };
        let campaigns = studio(state)?.campaigns(&filter, 100).await?;
        let html = pages::campaigns(state, &marketer.session.csrf, &sites, &campaigns, form, error);
        Ok(page(status, html))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn form_to_body(form: &CampaignForm) -> CreateCampaign {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    CreateCampaign {
        site: opt(&form.site),
        name: form.name.clone(),
        phone: opt(&form.phone),
        region: None,
        text: opt(&form.text),
        source: opt(&form.source),
        medium: opt(&form.medium),
        tracked: Some(form.is_tracked()),
        expires_at: opt(&form.expires),
    }
}

/// A form posted from one of this server's pages: from this origin and readable; otherwise
/// the page that refuses it.
fn read_form<T>(headers: &HeaderMap, form: Result<Form<T>, FormRejection>) -> Result<T, Response> {
    check_origin(headers)?;
    let Ok(Form(form)) = form else {
        return Err(page(StatusCode::BAD_REQUEST, pages::notice_page("Form not readable", "The form could not be read. Go back and try again.")));
    };
    Ok(form)
}

/// A campaign form posted to the console: [`read_form`], and carrying the session's CSRF token.
fn posted<T>(headers: &HeaderMap, marketer: &Marketer, form: Result<Form<T>, FormRejection>, csrf: impl FnOnce(&T) -> &str) -> Result<T, Response> {
    let form = read_form(headers, form)?;
    marketer.check_csrf(csrf(&form))?;
    Ok(form)
}

async fn create(State(state): State<AppState>, headers: HeaderMap, marketer: Marketer, form: Result<Form<CampaignForm>, FormRejection>) -> Response {
    let form = match posted(&headers, &marketer, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    match create_campaign(&state, &marketer.token, form_to_body(&form)).await {
        Ok((_, campaign)) => {
            tracing::info!(campaign = %campaign.id, "campaign created in the console");
            Redirect::to(&format!("/console/campaigns/{}", campaign.id)).into_response()
        }
        Err(err) if err.status().is_client_error() => {
            render_campaigns(&state, &marketer, &form, Some(&err.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(err) => err.into_response(),
    }
}

async fn campaign_page(State(state): State<AppState>, marketer: Marketer, Path(id): Path<String>) -> Response {
    render_campaign(&state, &marketer, &id, None, None, StatusCode::OK).await
}

/// A campaign's page; `sent`: the edit form as it was refused, shown again as typed.
async fn render_campaign(state: &AppState, marketer: &Marketer, id: &str, error: Option<&str>, sent: Option<&EditForm>, status: StatusCode) -> Response {
    let result: Result<Response, ApiError> = async {
        let (site, campaign) = campaign_for(state, &marketer.token, id).await?;
        let stats = stats_for(state, &campaign, &StatsQuery { from: None, to: None, format: None }).await?;
        Ok(page(status, pages::campaign(state, &marketer.session.csrf, &site, &campaign, &stats, error, sent)))
    }
    .await;
    result.unwrap_or_else(|e| match e {
        ApiError::NotFound(_) => page(StatusCode::NOT_FOUND, pages::notice_page("No such campaign", "This campaign does not exist, or your token cannot see it.")),
        other => other.into_response(),
    })
}

/// The campaign page's edit form. A field the form does not send is left as it is (a
/// static campaign's form has no number or text); an empty one clears it.
#[derive(Debug, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    pub csrf: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub text: Option<String>,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub expires: Option<String>,
    /// The date the form was shown with: the same date sent back is no change (an expiry
    /// set to the second through the API stays as it was).
    pub expires_was: Option<String>,
    /// The version the form was shown with (its ETag): saving over a later one is refused,
    /// so a form left open does not undo a change made since in another tab or by a colleague.
    pub version: Option<String>,
}

async fn edit(State(state): State<AppState>, headers: HeaderMap, marketer: Marketer, Path(id): Path<String>, form: Result<Form<EditForm>, FormRejection>) -> Response {
    let form = match posted(&headers, &marketer, form, |f| &f.csrf) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    // Copied, not moved: a refused form is shown again as it was sent.
    let expires = form.expires.clone().filter(|e| Some(e) != form.expires_was.as_ref());
    let body = EditCampaign {
        name: form.name.clone(),
        phone: form.phone.clone(),
        region: None,
        text: form.text.clone().map(Some),
        source: form.source.clone().map(Some),
        medium: form.medium.clone().map(Some),
        expires_at: expires.map(Some),
    };
    match edit_campaign(&state, &marketer.token, &id, form.version.as_deref().filter(|v| !v.is_empty()), &body).await {
        Ok((_, campaign)) => Redirect::to(&format!("/console/campaigns/{}", campaign.id)).into_response(),
        Err(ApiError::PreconditionFailed(_)) => {
            let message = "This campaign was changed (in another tab, or by someone else) after this page was opened, so nothing was saved. \
                           The page shows the latest version; the form still holds what you typed: check it against the latest, then save again.";
            render_campaign(&state, &marketer, &id, Some(message), Some(&form), StatusCode::PRECONDITION_FAILED).await
        }
        // An unknown campaign renders as the page's own 404.
        Err(err) if err.status().is_client_error() => render_campaign(&state, &marketer, &id, Some(&err.to_string()), Some(&form), err.status()).await,
        Err(err) => err.into_response(),
    }
}

async fn end(State(state): State<AppState>, headers: HeaderMap, marketer: Marketer, Path(id): Path<String>, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    if let Err(refused) = posted(&headers, &marketer, form, |f| &f.csrf) {
        return refused;
    }
    match end_campaign(&state, &marketer.token, &id, None).await {
        Ok((_, campaign)) => Redirect::to(&format!("/console/campaigns/{}", campaign.id)).into_response(),
        Err(err) if err.status().is_client_error() => render_campaign(&state, &marketer, &id, Some(&err.to_string()), None, err.status()).await,
        Err(err) => err.into_response(),
    }
}

async fn campaign_qr(State(state): State<AppState>, marketer: Marketer, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<RenderQuery>) -> Response {
    let result: Result<Response, ApiError> = async {
        let (_, campaign) = campaign_for(&state, &marketer.token, &id).await?;
        let options = q.options()?;
        let mut response = campaign_qr_response(&state, &headers, &campaign, &options)?;
        // Downloaded with the session: not for shared caches.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
        response.headers_mut().remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        if q.format.is_none() {
            response.headers_mut().remove(header::CONTENT_DISPOSITION);
        }
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn campaign_csv(State(state): State<AppState>, marketer: Marketer, Path(id): Path<String>) -> Response {
    let result: Result<Response, ApiError> = async {
        let (_, campaign) = campaign_for(&state, &marketer.token, &id).await?;
        let stats = stats_for(&state, &campaign, &StatsQuery { from: None, to: None, format: None }).await?;
        Ok(csv_response(&campaign, &stats))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A placeholder code of the real length, so the preview of a tracked campaign has the
/// density of the final code.
pub const PREVIEW_CODE: &str = "k7qxm2pa9r";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    site: Option<String>,
    phone: Option<String>,
    text: Option<String>,
    tracked: Option<String>,
    fg: Option<String>,
    bg: Option<String>,
    ecc: Option<String>,
    label: Option<String>,
}

/// The live preview: the code the form would make, as SVG.
async fn preview(State(state): State<AppState>, marketer: Marketer, headers: HeaderMap, Query(q): Query<PreviewQuery>) -> Response {
    let result: Result<Response, ApiError> = async {
        let render = RenderQuery {
            format: Some("svg".into()),
            size: Some("256".into()),
            fg: q.fg.clone(),
            bg: q.bg.clone(),
            ecc: q.ecc.clone(),
            label: q.label.as_ref().map(|_| "true".to_owned()),
            ..RenderQuery::default()
        };
        let options = render.options()?;
        let payload = if q.tracked.is_some() {
            format!("{}/q/{PREVIEW_CODE}", state.settings.public_url)
        } else {
            let phone = match q.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                Some(p) => parse_phone(&state.settings, Some(p), None)?,
                None => {
                    let site = crate::http::campaigns::site_for_token(&state, &marketer.token, q.site.as_deref()).await?;
                    site.phones.first().cloned().ok_or_else(|| ApiError::invalid("missing_phone", "give a phone number"))?
                }
            };
            let text = q.text.as_deref().filter(|t| !t.is_empty());
            if text.is_some_and(|t| t.contains(crate::campaigns::REF_PLACEHOLDER)) {
                return Err(ApiError::invalid("invalid_campaign", "{ref} needs a tracked campaign"));
            }
            crate::http::link::make_link(phone, text)?.url().to_owned()
        };
        let mut response = qr_response(&headers, &payload, &options, None)?;
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=60"));
        response.headers_mut().remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        Ok(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

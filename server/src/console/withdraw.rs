//! The visitor's withdrawal page, `GET|POST /withdraw?site=pk_…`: for a person who comes back
//! after the page view in which they agreed (the widget keeps no state), with the reference
//! from their chat message or receipt. GDPR Art. 7(3): withdrawing is as easy as giving.
//! The reference is the credential, as for the widget's withdraw; the page is plain HTML on
//! Cornetta's origin (no script), its form posted only from there. In the widget's seven
//! languages (`i18n.rs`): `?lang=`, else the browser's `Accept-Language`.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cornetta_shared::{Method, Reference, SiteKey};
use serde::Deserialize;

use super::i18n::{Texts, fill, texts};
use super::{page, read_form};
use crate::consents::{self, Evidence, truncate_ip};
use crate::error::ApiError;
use crate::http::{ClientIp, UserAgent};
use crate::limits::Bucket;
use crate::state::AppState;
use crate::store::Site;

#[derive(Template)]
#[template(path = "withdraw.html")]
struct WithdrawTpl<'a> {
    t: &'a Texts,
    heading: &'a str,
    intro: &'a str,
    business: &'a str,
    site: &'a str,
    reference: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct WithdrawForm {
    #[serde(default)]
    site: String,
    #[serde(default, alias = "ref")]
    reference: String,
    /// The page's language (the form carries it on, so the answer stays in it).
    lang: Option<String>,
}

/// The page for `site` (`None`: the link names no site) in `t`'s language.
fn render(t: &Texts, site: Option<&Site>, reference: &str, error: Option<&str>, done: Option<&str>, status: StatusCode) -> Response {
    let (business, key) = site.map_or(("", ""), |s| (s.business_name.as_str(), s.key.as_str()));
    let (heading, intro) = (fill(t.heading, business, "", ""), fill(t.intro, business, "", ""));
    let tpl = WithdrawTpl { t, heading: &heading, intro: &intro, business, site: key, reference, error, done };
    let mut response = page(status, super::pages::render(&tpl));
    // The language follows Accept-Language: caches must keep one copy per language.
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-language"));
    response.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(t.lang));
    response
}

fn texts_for(headers: &HeaderMap, form: &WithdrawForm) -> &'static Texts {
    texts(form.lang.as_deref(), headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

async fn site_of(state: &AppState, t: &Texts, key: &str) -> Result<Site, Response> {
    let unknown = || render(t, None, "", None, None, StatusCode::NOT_FOUND);
    let Ok(key) = SiteKey::parse(key.trim()) else { return Err(unknown()) };
    match state.store.site_by_key(&key).await {
        Ok(Some(site)) => Ok(site),
        Ok(None) => Err(unknown()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

pub(super) async fn show(State(state): State<AppState>, headers: HeaderMap, ClientIp(ip): ClientIp, Query(q): Query<WithdrawForm>) -> Response {
    if let Err(e) = state.limits.check(Bucket::PublicRead, ip) {
        return e.into_response();
    }
    let t = texts_for(&headers, &q);
    match site_of(&state, t, &q.site).await {
        Ok(site) => render(t, Some(&site), q.reference.trim(), None, None, StatusCode::OK),
        Err(refused) => refused,
    }
}

pub(super) async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    UserAgent(user_agent): UserAgent,
    form: Result<Form<WithdrawForm>, FormRejection>,
) -> Response {
    let form = match read_form(&headers, form) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    if let Err(e) = state.limits.check(Bucket::PublicWrite, ip) {
        return e.into_response();
    }
    let t = texts_for(&headers, &form);
    let site = match site_of(&state, t, &form.site).await {
        Ok(site) => site,
        Err(refused) => return refused,
    };
    let typed = form.reference.trim();
    let Ok(reference) = Reference::parse(typed) else {
        return render(t, Some(&site), typed, Some(t.malformed), None, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let grant = match state.store.grant_by_reference(&site.id, &reference).await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            let message = fill(t.unknown, &site.business_name, &reference.to_string(), "");
            return render(t, Some(&site), typed, Some(&message), None, StatusCode::NOT_FOUND);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let evidence = Evidence { ip: Some(truncate_ip(ip)), user_agent, ..Evidence::default() };
    match consents::withdraw(&state.store, &state.keys, &grant, None, Method::Form, "withdrawal page".to_owned(), evidence).await {
        Ok(withdrawal) => {
            if let consents::Withdrawal::Recorded(event) = &withdrawal {
                tracing::info!(site = %site.key, event = %event.id, "consent withdrawn on the withdrawal page");
            }
            let event = withdrawal.event();
            let time = event.recorded_at.strftime("%Y-%m-%d %H:%M").to_string();
            let done = fill(t.done, &site.business_name, &reference.to_string(), &time);
            render(t, Some(&site), typed, None, Some(&done), StatusCode::OK)
        }
        Err(e) if e.status().is_client_error() => render(t, Some(&site), typed, Some(&e.to_string()), None, e.status()),
        Err(e) => e.into_response(),
    }
}

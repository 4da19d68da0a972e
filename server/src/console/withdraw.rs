//! The visitor's withdrawal page, `GET|POST /withdraw?site=pk_…`: for a person who comes back
//! after the page view in which they agreed (the widget keeps no state), with the reference
//! from their chat message or receipt. GDPR Art. 7(3): withdrawing is as easy as giving.
//! The reference is the credential, as for the widget's withdraw; the page is plain HTML on
//! Cornetta's origin (no script), its form posted only from there.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cornetta_shared::{Method, Reference, SiteKey};
use serde::Deserialize;

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
}

fn render(site: &Site, reference: &str, error: Option<&str>, done: Option<&str>, status: StatusCode) -> Response {
    page(status, super::pages::render(&WithdrawTpl { business: &site.business_name, site: site.key.as_str(), reference, error, done }))
}

async fn site_of(state: &AppState, key: &str) -> Result<Site, Response> {
    let unknown = || page(StatusCode::NOT_FOUND, super::pages::notice_page("Unknown site", "This link names no site. Use the link the business gave you."));
    let Ok(key) = SiteKey::parse(key.trim()) else { return Err(unknown()) };
    match state.store.site_by_key(&key).await {
        Ok(Some(site)) => Ok(site),
        Ok(None) => Err(unknown()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

pub(super) async fn show(State(state): State<AppState>, ClientIp(ip): ClientIp, Query(q): Query<WithdrawForm>) -> Response {
    if let Err(e) = state.limits.check(Bucket::PublicRead, ip) {
        return e.into_response();
    }
    match site_of(&state, &q.site).await {
        Ok(site) => render(&site, q.reference.trim(), None, None, StatusCode::OK),
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
    let site = match site_of(&state, &form.site).await {
        Ok(site) => site,
        Err(refused) => return refused,
    };
    let typed = form.reference.trim();
    let Ok(reference) = Reference::parse(typed) else {
        let message = "That is not a reference: it has ten letters and digits, like K7QXM-2PA9R.";
        return render(&site, typed, Some(message), None, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let grant = match state.store.grant_by_reference(&site.id, &reference).await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            let message = format!("{} has no consent with the reference {reference}. Check it against your chat message or receipt.", site.business_name);
            return render(&site, typed, Some(&message), None, StatusCode::NOT_FOUND);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let evidence = Evidence { ip: Some(truncate_ip(ip)), user_agent, ..Evidence::default() };
    match consents::withdraw(&state.store, &state.keys, &grant, None, Method::Form, "withdrawal page".to_owned(), evidence).await {
        Ok(event) => {
            tracing::info!(site = %site.key, event = %event.id, "consent withdrawn on the withdrawal page");
            let done = format!(
                "Your consent with the reference {reference} was withdrawn on {} (UTC). {} has a record of it and will no longer message you on WhatsApp under it.",
                event.recorded_at.strftime("%Y-%m-%d %H:%M"),
                site.business_name
            );
            render(&site, typed, None, Some(&done), StatusCode::OK)
        }
        Err(e) if e.status().is_client_error() => render(&site, typed, Some(&e.to_string()), None, e.status()),
        Err(e) => e.into_response(),
    }
}

//! Meta apps and business numbers: configuring them (CLI and admin API share this), keeping
//! their secrets, and checking a delivery against them.
//!
//! Meta signs notifications with the *app's* secret and one app can serve several numbers,
//! so the verify token and app secret belong to an app. The verify token is only ever
//! compared, so only its SHA-256 is kept. The app secret must be usable to check
//! signatures, so it is encrypted at rest: a random data key wrapped with the master key
//! (bound to the app id, the same envelope as subject keys) seals it. A number belongs to one
//! app, and a message to it counts only when that app's secret signed the delivery.

use cornetta_shared::PhoneNumber;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::signature::{Signature, SignatureError};
use crate::error::ApiError;
use crate::keys::Keyring;
use crate::store::whatsapp::{MetaApp, OptOutSettings, PhoneNumberId, WaNumber, WhatsappStore};
use crate::store::{DynStore, Site};

/// Longest verify token, app secret and app name accepted.
pub const MAX_VERIFY_TOKEN_CHARS: usize = 200;
pub const MAX_APP_SECRET_CHARS: usize = 256;
pub const MAX_APP_NAME_CHARS: usize = 200;
pub const DEFAULT_APP_NAME: &str = "Meta app";

/// The WhatsApp tables of the running store, or 503 when this backend has none yet.
pub fn tables(store: &DynStore) -> Result<&dyn WhatsappStore, ApiError> {
    store.whatsapp().ok_or_else(|| ApiError::Unavailable {
        code: "whatsapp_unavailable",
        message: format!("the WhatsApp webhook is not available on the {} store yet", store.backend()),
    })
}

/// A verify token: what you type into the App Dashboard's "Verify token" field.
pub fn parse_verify_token(input: &str) -> Result<SecretString, String> {
    let token = input.trim();
    if token.is_empty() {
        return Err("the verify token is empty; choose a random string and enter the same in Meta's App Dashboard".into());
    }
    if token.chars().count() > MAX_VERIFY_TOKEN_CHARS || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the verify token must be at most {MAX_VERIFY_TOKEN_CHARS} characters without spaces"));
    }
    Ok(token.to_owned().into())
}

/// An app secret, as the App Dashboard shows it (Settings → Basic → App secret).
pub fn parse_app_secret(input: &str) -> Result<SecretString, String> {
    let secret = input.trim();
    if secret.is_empty() {
        return Err("the app secret is empty; copy it from Meta's App Dashboard (App settings → Basic → App secret)".into());
    }
    if secret.chars().count() > MAX_APP_SECRET_CHARS || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the app secret must be at most {MAX_APP_SECRET_CHARS} characters without spaces"));
    }
    Ok(secret.to_owned().into())
}

pub fn parse_app_name(input: Option<&str>) -> Result<String, String> {
    let name = input.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(DEFAULT_APP_NAME);
    if name.chars().count() > MAX_APP_NAME_CHARS {
        return Err(format!("the app name must be at most {MAX_APP_NAME_CHARS} characters"));
    }
    Ok(name.to_owned())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The name the app's data key is wrapped under; cannot collide with a subject id (`sub_…`).
fn key_binding(app_id: &str) -> String {
    format!("whatsapp-app/{app_id}")
}

/// Stores a new Meta app with its verify token (hashed) and app secret (encrypted).
pub async fn add_app(wa: &dyn WhatsappStore, keys: &Keyring, name: String, verify_token: &SecretString, app_secret: &SecretString) -> Result<MetaApp, ApiError> {
    let id = format!("waa_{}", uuid::Uuid::now_v7().simple());
    let (data_key, wrapped) = keys.new_subject_key(&key_binding(&id));
    let sealed = data_key.seal(app_secret.expose_secret().as_bytes(), id.as_bytes());
    let app = MetaApp {
        id,
        name,
        verify_token_sha256: token_hash(verify_token.expose_secret()),
        secret_key_wrapped: wrapped,
        secret_sealed: sealed,
        created_at: crate::consents::now(),
    };
    Ok(wa.create_app(app).await?)
}

/// The app's secret, decrypted; `None` when it does not open with this master key.
pub fn open_secret(keys: &Keyring, app: &MetaApp) -> Option<SecretSlice<u8>> {
    let data_key = keys.unwrap_subject_key(&key_binding(&app.id), &app.secret_key_wrapped)?;
    data_key.open(&app.secret_sealed, app.id.as_bytes()).map(SecretSlice::from)
}

/// Whether some configured app has this verify token. Every app is compared, each in
/// constant time, so timing tells nothing about which one (or how much of one) matched.
pub async fn verify_token_matches(wa: &dyn WhatsappStore, token: &str) -> Result<bool, ApiError> {
    let presented = Sha256::digest(token.as_bytes());
    let mut matched = subtle::Choice::from(0);
    for app in wa.list_apps().await? {
        let stored = hex::decode(&app.verify_token_sha256).unwrap_or_default();
        matched |= presented.as_slice().ct_eq(&stored);
    }
    Ok(bool::from(matched))
}

/// The app whose secret signed `body`, checked against every configured app (Meta's
/// `X-Hub-Signature-256`). Missing, malformed or matching no app: 401.
pub async fn signing_app(wa: &dyn WhatsappStore, keys: &Keyring, header: Option<&[u8]>, body: &[u8]) -> Result<MetaApp, ApiError> {
    let signature = Signature::parse(header).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let apps = wa.list_apps().await?;
    if apps.is_empty() {
        tracing::warn!("a WhatsApp notification arrived but no Meta app is configured; add one with `cornetta whatsapp app add`");
    }
    let mut signer = None;
    for app in apps {
        let Some(secret) = open_secret(keys, &app) else {
            tracing::error!(app = %app.id, "the app secret of this Meta app does not open with this master key");
            continue;
        };
        // No early exit: every app is checked, whichever matches.
        if signature.verifies(secret.expose_secret(), body) && signer.is_none() {
            signer = Some(app);
        }
    }
    signer.ok_or_else(|| ApiError::Unauthorized(SignatureError::Mismatch.to_string()))
}

/// Maps Meta's phone number id to one of the site's numbers, served by `app` (or the only
/// configured app when `None`).
pub async fn add_number(
    wa: &dyn WhatsappStore,
    site: &Site,
    phone_number_id: PhoneNumberId,
    phone: PhoneNumber,
    app: Option<&str>,
) -> Result<WaNumber, ApiError> {
    if !site.phones.contains(&phone) {
        let theirs: Vec<String> = site.phones.iter().map(PhoneNumber::to_string).collect();
        return Err(ApiError::invalid(
            "phone_not_of_site",
            format!("{phone} is not a number of site {} (its numbers: {})", site.key, theirs.join(", ")),
        ));
    }
    let apps = wa.list_apps().await?;
    let app = match app {
        Some(id) => apps.into_iter().find(|a| a.id == id).ok_or_else(|| {
            ApiError::NotFound(format!("no Meta app has the id {id}; `cornetta whatsapp app list` shows them"))
        })?,
        None => {
            let mut apps = apps;
            match apps.len() {
                0 => {
                    return Err(ApiError::invalid(
                        "no_meta_app",
                        "no Meta app is configured; add one first with `cornetta whatsapp app add --verify-token … --app-secret-file …`",
                    ));
                }
                1 => apps.remove(0),
                n => {
                    return Err(ApiError::invalid(
                        "which_meta_app",
                        format!("{n} Meta apps are configured; name the one serving this number (--app / \"app\")"),
                    ));
                }
            }
        }
    };
    let number = WaNumber { phone_number_id, site_id: site.id.clone(), phone, app_id: app.id, created_at: crate::consents::now() };
    Ok(wa.add_number(number).await?)
}

/// A site's opt-out keywords in force: its own list, or the built-in one.
pub fn keywords_in_force(settings: &OptOutSettings) -> Vec<String> {
    settings.keywords.clone().unwrap_or_else(super::optout::default_keywords)
}

//! Sites (tenants): creating one with its first notices, and the default site a fresh
//! database gets so that the first `cornetta serve` already shows the whole flow.

use cornetta_shared::{Lang, PhoneNumber, SiteKey};

use crate::notice;
use crate::store::{DynStore, NewSite, Notice, Site, StoreError, StoreResult};

/// The business and number of the default site, shown on the example shop page.
pub const DEMO_BUSINESS: &str = "Acme Shop";
pub const DEMO_PHONE: &str = "+393331234567";

pub const MAX_BUSINESS_CHARS: usize = 200;
pub const MAX_ORIGINS: usize = 50;

/// A fresh public site key: `pk_` and 24 random base-36 characters.
pub fn new_site_key() -> SiteKey {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes: [u8; 24] = rand::random();
    let key: String = bytes.iter().map(|b| ALPHABET[usize::from(*b) % 36] as char).collect();
    SiteKey::parse(&format!("pk_{key}")).expect("generated keys are well-formed")
}

/// Checks an origin: `scheme://host[:port]`, no path, no trailing slash.
pub fn parse_origin(input: &str) -> Result<String, String> {
    let trimmed = input.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| format!("origin {input:?} must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) || trimmed.len() > 300 {
        return Err(format!("origin {input:?} must be scheme://host[:port] only, e.g. https://shop.example"));
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// Creates a site and publishes a notice for each built-in language.
pub async fn create(
    store: &DynStore,
    business: &str,
    phones: Vec<PhoneNumber>,
    origins: Vec<String>,
    default_lang: Lang,
) -> StoreResult<(Site, Vec<Notice>)> {
    let business = business.trim();
    if business.is_empty() || business.chars().count() > MAX_BUSINESS_CHARS {
        return Err(StoreError::Invalid(format!("business name must be 1 to {MAX_BUSINESS_CHARS} characters")));
    }
    if phones.is_empty() {
        return Err(StoreError::Invalid("a site needs at least one WhatsApp number".into()));
    }
    if origins.len() > MAX_ORIGINS {
        return Err(StoreError::Invalid(format!("a site may list at most {MAX_ORIGINS} origins")));
    }
    let site = store
        .create_site(NewSite {
            key: new_site_key(),
            business_name: business.to_owned(),
            phones,
            allowed_origins: origins,
            default_lang,
            widget: serde_json::json!({}),
        })
        .await?;
    let mut notices = Vec::new();
    for lang in notice::TEMPLATE_LANGS {
        let lang = Lang::parse(lang).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if let Some((intro, purposes)) = notice::template(lang, &site.business_name) {
            let new = notice::prepare(&site.id, lang, &intro, purposes, None).map_err(StoreError::Invalid)?;
            notices.push(store.publish_notice(new).await?);
        }
    }
    Ok((site, notices))
}

/// Replaces a site's allowed origins (already parsed by [`parse_origin`]); a repeated origin
/// is kept once, in its first place. Returns what was stored.
pub async fn set_origins(store: &DynStore, site_id: &str, mut origins: Vec<String>) -> StoreResult<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    origins.retain(|o| seen.insert(o.clone()));
    if origins.len() > MAX_ORIGINS {
        return Err(StoreError::Invalid(format!("a site may list at most {MAX_ORIGINS} origins")));
    }
    store.update_site_origins(site_id, origins.clone()).await?;
    Ok(origins)
}

/// On an empty database, creates the demo site allowing `origins`; returns it when created.
pub async fn ensure_default(store: &DynStore, origins: Vec<String>) -> StoreResult<Option<Site>> {
    if !store.list_sites().await?.is_empty() {
        return Ok(None);
    }
    let phone = PhoneNumber::from_e164(DEMO_PHONE).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let (mut site, _) = create(store, DEMO_BUSINESS, vec![phone], origins, Lang::EN).await?;
    // Two agents and business hours, so that the example shop shows the whole panel.
    let widget = serde_json::to_value(crate::widget_settings::demo()).map_err(|e| StoreError::Invalid(e.to_string()))?;
    store.update_site_widget(&site.id, widget.clone()).await?;
    site.widget = widget;
    Ok(Some(site))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(parse_origin("https://Shop.Example/").unwrap(), "https://shop.example");
        assert_eq!(parse_origin("http://127.0.0.1:8081").unwrap(), "http://127.0.0.1:8081");
        for bad in ["shop.example", "https://shop.example/page", "ftp://x", "https://", "https://a b"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn site_keys_are_well_formed_and_distinct() {
        assert_ne!(new_site_key(), new_site_key());
    }
}

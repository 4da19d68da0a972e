//! Bearer tokens: random secrets shown once, stored only as their SHA-256, with a role and
//! an optional site scope; revocable.

use cornetta_shared::SiteKey;
use sha2::{Digest, Sha256};

use crate::store::{DynStore, NewToken, Role, StoreResult, TokenInfo};

/// Every token starts with this, so secret scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "crn_";

/// A freshly issued token: the secret is shown once and never stored.
#[derive(Debug)]
pub struct Issued {
    pub secret: secrecy::SecretString,
    pub info: TokenInfo,
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes in lower-case base32 (no padding).
fn random_secret() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; 32] = rand::random();
    let mut out = String::from(TOKEN_PREFIX);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub async fn issue(store: &DynStore, name: &str, role: Role, site_id: Option<String>) -> StoreResult<Issued> {
    let secret = random_secret();
    let info = store
        .create_token(NewToken {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            name: name.to_owned(),
            role,
            site_id,
            hash: hash_secret(&secret),
        })
        .await?;
    Ok(Issued { secret: secret.into(), info })
}

/// The token for a presented secret, if it exists and is not revoked.
pub async fn authenticate(store: &DynStore, secret: &str) -> StoreResult<Option<TokenInfo>> {
    if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    let token = store.token_by_hash(&hash_secret(secret)).await?;
    Ok(token.filter(|t| t.revoked_at.is_none()))
}

impl TokenInfo {
    /// Whether this token may act as `role` (admins may do everything).
    pub fn has_role(&self, role: Role) -> bool {
        self.role == role || self.role == Role::Admin
    }

    /// Whether this token reaches that site.
    pub fn reaches_site(&self, site_id: &str) -> bool {
        self.site_id.as_deref().is_none_or(|s| s == site_id)
    }
}

/// Shown in lists: never the secret.
pub fn describe(info: &TokenInfo, site: Option<&SiteKey>) -> String {
    format!(
        "{}  {:<8}  {:<24}  site={}  created={}{}",
        info.id,
        info.role,
        info.name,
        site.map_or("all".to_owned(), |s| s.to_string()),
        info.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        info.revoked_at.map(|r| format!("  REVOKED {}", r.strftime("%Y-%m-%dT%H:%M:%SZ"))).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_prefixed_and_distinct() {
        let a = random_secret();
        let b = random_secret();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 52);
        assert_ne!(a, b);
    }
}

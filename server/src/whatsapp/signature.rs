//! `X-Hub-Signature-256`: Meta signs every notification with the app secret,
//! `sha256=<lower-case hex HMAC-SHA256 of the payload>` (Graph API Webhooks, "Validating
//! Payloads"). The payload is the raw request body, as sent: Meta escapes non-ASCII
//! characters (`äöå` → `\u00e4\u00f6\u00e5`) before signing, so a body that was parsed and
//! re-serialised, or unescaped, no longer verifies. Nothing here looks inside the body.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header's name (HTTP header names are case-insensitive; `http` stores them lower case).
pub const HEADER: &str = "x-hub-signature-256";
const PREFIX: &str = "sha256=";

/// A parsed signature header.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature([u8; 32]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signature(…)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Hub-Signature-256 header; Meta signs every notification")]
    Missing,
    #[error("the X-Hub-Signature-256 header must be sha256= followed by 64 hex digits")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body for any configured Meta app")]
    Mismatch,
}

impl Signature {
    pub fn parse(header: Option<&[u8]>) -> Result<Self, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?.trim();
        let hex_digits = header.strip_prefix(PREFIX).ok_or(SignatureError::Malformed)?;
        let bytes = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
        bytes.try_into().map(Self).map_err(|_| SignatureError::Malformed)
    }

    /// Whether this is the signature of `body` under `secret`, compared in constant time.
    pub fn verifies(&self, secret: &[u8], body: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length is fine for HMAC");
        mac.update(body);
        // `verify_slice` compares the tags in constant time.
        mac.verify_slice(&self.0).is_ok()
    }
}

/// `sha256=<hex>` for `body` under `secret`: what Meta sends (used by tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length is fine for HMAC");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_body_and_secret() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"app-secret", body);
        let sig = Signature::parse(Some(header.as_bytes())).unwrap();
        assert!(sig.verifies(b"app-secret", body));
        assert!(!sig.verifies(b"other-secret", body));
        assert!(!sig.verifies(b"app-secret", br#"{"object":"whatsapp_business_account","entry":[ ]}"#));
    }

    #[test]
    fn escaped_and_unescaped_json_have_different_signatures() {
        // Meta signs the escaped form; the same JSON value, unescaped, is other bytes.
        let escaped = br#"{"text":"\u00e4\u00f6\u00e5"}"#;
        let unescaped = r#"{"text":"äöå"}"#.as_bytes();
        let sig = Signature::parse(Some(sign(b"s", escaped).as_bytes())).unwrap();
        assert!(sig.verifies(b"s", escaped));
        assert!(!sig.verifies(b"s", unescaped));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(Signature::parse(None), Err(SignatureError::Missing));
        let sixty_four = "a".repeat(64);
        for bad in [
            String::new(),
            "sha1=".to_owned() + &"a".repeat(40),
            sixty_four.clone(),
            format!("sha256={}", &sixty_four[..62]),
            format!("sha256={}zz", &sixty_four[..62]),
            format!("sha256={sixty_four}00"),
        ] {
            assert_eq!(Signature::parse(Some(bad.as_bytes())), Err(SignatureError::Malformed), "{bad}");
        }
        assert!(Signature::parse(Some(format!("sha256={}", sixty_four.to_uppercase()).as_bytes())).is_ok());
    }
}

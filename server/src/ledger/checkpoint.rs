//! Signed checkpoints: a site's tree size and root at a moment, signed with the ledger's
//! Ed25519 key, in the C2SP formats used by Go's sumdb and the transparency-dev tools.
//!
//! The body is a C2SP `tlog-checkpoint` (<https://c2sp.org/tlog-checkpoint>):
//!
//! ```text
//! cornetta/pk_…              origin: names the log (one per site)
//! 1234                       tree size, decimal
//! 5dc9da79…= (base64)        RFC 6962 root hash, standard base64
//! time 2026-03-03T10:00:00Z  extension line: when it was signed (RFC 3339, UTC)
//! ```
//!
//! wrapped in a C2SP `signed-note` (<https://c2sp.org/signed-note>): the body, a blank
//! line, and `— <key name> <base64(key id ‖ Ed25519 signature)>`, where the key id is the
//! first 4 bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)`. The verifier key is
//! published as `<key name>+<key id hex>+<base64(0x01 ‖ public key)>`, the form
//! `golang.org/x/mod/sumdb/note` reads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The name the ledger key signs under.
pub const KEY_NAME: &str = "cornetta-ledger";
/// signed-note's algorithm byte for Ed25519.
const ALG_ED25519: u8 = 0x01;
/// The line that starts every signature (U+2014 EM DASH, space).
const SIG_PREFIX: &str = "\u{2014} ";

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `cornetta/<site key>`.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub time: Timestamp,
}

/// Why a note did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    #[error("the checkpoint has no signature by key {KEY_NAME} with id {0}")]
    NoSignature(String),
    #[error("the checkpoint's signature does not verify with this public key")]
    BadSignature,
    #[error("the public key is malformed: {0}")]
    BadKey(String),
}

/// The origin line of a site's log.
pub fn origin_for(site_key: &str) -> String {
    format!("cornetta/{site_key}")
}

/// signed-note key id: the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
pub fn key_id(key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(KEY_NAME.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key string: `cornetta-ledger+<id hex>+<base64(0x01 ‖ key)>`.
pub fn verifier_key(key: &VerifyingKey) -> String {
    let mut raw = vec![ALG_ED25519];
    raw.extend_from_slice(key.as_bytes());
    format!("{KEY_NAME}+{}+{}", hex::encode(key_id(key)), B64.encode(raw))
}

/// Reads a public key given as a verifier key string, 64 hex digits or base64 of the 32
/// key bytes.
pub fn parse_public_key(input: &str) -> Result<VerifyingKey, NoteError> {
    let input = input.trim();
    let bytes: Vec<u8> = if let Some((name, rest)) = input.split_once('+') {
        let (id, key) = rest.split_once('+').ok_or_else(|| NoteError::BadKey("a verifier key is NAME+ID+KEY".into()))?;
        if name != KEY_NAME {
            return Err(NoteError::BadKey(format!("the key is named {name:?}; Cornetta's ledger key is named {KEY_NAME:?}")));
        }
        let raw = B64.decode(key).map_err(|_| NoteError::BadKey("the key part is not base64".into()))?;
        let (alg, key_bytes) = raw.split_first().ok_or_else(|| NoteError::BadKey("the key part is empty".into()))?;
        if *alg != ALG_ED25519 {
            return Err(NoteError::BadKey(format!("algorithm {alg} is not Ed25519 (1)")));
        }
        let parsed = to_key(key_bytes)?;
        if hex::encode(key_id(&parsed)) != id.to_ascii_lowercase() {
            return Err(NoteError::BadKey("the key id does not match the key".into()));
        }
        return Ok(parsed);
    } else if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(input).map_err(|e| NoteError::BadKey(e.to_string()))?
    } else {
        B64.decode(input).map_err(|_| NoteError::BadKey("expected cornetta-ledger+ID+KEY, 64 hex digits or base64 of 32 bytes".into()))?
    };
    to_key(&bytes)
}

fn to_key(bytes: &[u8]) -> Result<VerifyingKey, NoteError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| NoteError::BadKey(format!("an Ed25519 public key has 32 bytes, not {}", bytes.len())))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| NoteError::BadKey("not a valid Ed25519 point".into()))
}

impl Checkpoint {
    pub fn new(site_key: &str, size: u64, root: Hash, time: Timestamp) -> Self {
        Self { origin: origin_for(site_key), size, root, time }
    }

    /// The signed text: origin, size, root and the time extension, each line ending in `\n`.
    pub fn body(&self) -> String {
        // Microseconds: the precision every other time here is stored with.
        let time = Timestamp::from_microsecond(self.time.as_microsecond()).unwrap_or(self.time);
        format!("{}\n{}\n{}\ntime {}\n", self.origin, self.size, B64.encode(self.root), time)
    }

    /// The whole signed note.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let signature = key.sign(body.as_bytes());
        let mut blob = key_id(&key.verifying_key()).to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{SIG_PREFIX}{KEY_NAME} {}\n", B64.encode(blob))
    }

    /// Parses a checkpoint body (no signature check).
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let bad = |m: &str| NoteError::Malformed(m.to_owned());
        let body = body.strip_suffix('\n').ok_or_else(|| bad("the body must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| bad("the origin line is empty"))?.to_owned();
        let size_line = lines.next().ok_or_else(|| bad("the tree size line is missing"))?;
        if size_line.is_empty() || !size_line.bytes().all(|b| b.is_ascii_digit()) || (size_line.len() > 1 && size_line.starts_with('0')) {
            return Err(bad("the tree size must be a decimal number without leading zeros"));
        }
        let size = size_line.parse().map_err(|_| bad("the tree size is too large"))?;
        let root = B64.decode(lines.next().ok_or_else(|| bad("the root hash line is missing"))?).map_err(|_| bad("the root hash is not base64"))?;
        let root: Hash = root.try_into().map_err(|_| bad("the root hash must be 32 bytes"))?;
        let mut time = None;
        for line in lines {
            if line.is_empty() {
                return Err(bad("extension lines must not be empty"));
            }
            if let Some(t) = line.strip_prefix("time ") {
                time = Some(t.parse::<Timestamp>().map_err(|_| bad("the time line is not RFC 3339"))?);
            }
        }
        Ok(Self { origin, size, root, time: time.ok_or_else(|| bad("the time line is missing"))? })
    }

    /// Checks a signed note's signature by `key` and parses its body.
    pub fn open(note: &str, key: &VerifyingKey) -> Result<Self, NoteError> {
        let (body, signatures) = note.rsplit_once("\n\n").ok_or_else(|| NoteError::Malformed("there is no blank line before the signatures".into()))?;
        let body = format!("{body}\n");
        let want_id = key_id(key);
        let mut found = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
                return Err(NoteError::Malformed("a signature line must start with an em dash and a space".into()));
            };
            let Some((name, blob)) = rest.split_once(' ') else { continue };
            let Ok(blob) = B64.decode(blob) else { continue };
            if name != KEY_NAME || blob.len() != 4 + 64 || blob[..4] != want_id {
                continue;
            }
            found = true;
            let signature = ed25519_dalek::Signature::from_slice(&blob[4..]).map_err(|_| NoteError::BadSignature)?;
            if key.verify(body.as_bytes(), &signature).is_ok() {
                return Self::parse_body(&body);
            }
        }
        if found { Err(NoteError::BadSignature) } else { Err(NoteError::NoSignature(hex::encode(want_id))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint::new("pk_0123456789abcdef", 8, [7; 32], "2026-03-03T10:00:00.123456Z".parse().unwrap())
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_reads_back() {
        let note = checkpoint().sign(&key());
        assert!(note.starts_with("cornetta/pk_0123456789abcdef\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 2026-03-03T10:00:00.123456Z\n\n— cornetta-ledger "));
        assert_eq!(Checkpoint::open(&note, &key().verifying_key()).unwrap(), checkpoint());
    }

    #[test]
    fn a_changed_checkpoint_does_not_open() {
        let note = checkpoint().sign(&key());
        let other = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_eq!(Checkpoint::open(&note, &other), Err(NoteError::NoSignature(hex::encode(key_id(&other)))));
        let cases = [note.replacen("\n8\n", "\n9\n", 1), note.replacen("10:00:00", "11:00:00", 1), note.replacen("BwcH", "CAcH", 1)];
        for tampered in cases {
            assert_eq!(Checkpoint::open(&tampered, &key().verifying_key()), Err(NoteError::BadSignature), "{tampered}");
        }
    }

    #[test]
    fn public_keys_are_read_in_every_published_form() {
        let vk = key().verifying_key();
        for form in [verifier_key(&vk), hex::encode(vk.as_bytes()), B64.encode(vk.as_bytes())] {
            assert_eq!(parse_public_key(&form).unwrap(), vk, "{form}");
        }
        let wrong_id = verifier_key(&vk).replace(&hex::encode(key_id(&vk)), "00000000");
        assert!(parse_public_key(&wrong_id).is_err());
        assert!(parse_public_key("nonsense").is_err());
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let cases = [
            ("cornetta/x\n08\nAA==\ntime 2026-03-03T10:00:00Z\n", "leading zeros"),
            ("cornetta/x\n8\nAA==\ntime 2026-03-03T10:00:00Z\n", "32 bytes"),
            ("cornetta/x\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", "time line is missing"),
            ("cornetta/x\n8\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 2026-03-03T10:00:00Z", "end with a newline"),
        ];
        for (body, why) in cases {
            let err = Checkpoint::parse_body(body).unwrap_err().to_string();
            assert!(err.contains(why), "{body:?}: {err}");
        }
    }
}

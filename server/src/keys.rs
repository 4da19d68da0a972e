//! The server's secrets, kept as files in the data directory and created on first start:
//! the master key (wraps subject keys, keys the phone lookup hash) and the ledger's
//! Ed25519 signing key. Also the per-subject encryption of personal data.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chacha20poly1305::aead::{Aead, AeadInOut};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use cornetta_shared::PhoneNumber;

/// File names inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
pub const SIGNING_KEY_FILE: &str = "ledger-signing.key";

const NONCE_LEN: usize = 24;

/// The keys the server runs with.
pub struct Keyring {
    lookup: SecretBox<[u8; 32]>,
    wrap: SecretBox<[u8; 32]>,
    signing: ed25519_dalek::SigningKey,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("signing_public", &hex::encode(self.verifying_key().as_bytes())).finish_non_exhaustive()
    }
}

/// A subject's data key, unwrapped.
pub struct SubjectKey(SecretBox<[u8; 32]>);

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(…)")
    }
}

impl Keyring {
    /// Loads the keys, creating missing files (owner-only permissions).
    pub fn load_or_create(master_path: &Path, signing_path: &Path) -> anyhow::Result<Self> {
        let master = load_or_create_secret(master_path, "master key")?;
        let signing = load_or_create_secret(signing_path, "ledger signing key")?;
        Ok(Self::from_secrets(master, signing))
    }

    /// Keys from raw secrets (tests, tools).
    pub fn from_secrets(master: [u8; 32], signing: [u8; 32]) -> Self {
        Self {
            lookup: SecretBox::new(Box::new(derive(&master, b"cornetta/lookup/v1"))),
            wrap: SecretBox::new(Box::new(derive(&master, b"cornetta/wrap/v1"))),
            signing: ed25519_dalek::SigningKey::from_bytes(&signing),
        }
    }

    /// The keyed hash a number is looked up by: HMAC-SHA256(lookup key, E.164), hex.
    pub fn phone_lookup(&self, phone: &PhoneNumber) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.lookup.expose_secret()).expect("any key length is fine for HMAC");
        mac.update(phone.as_str().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A keyed hash (HMAC-SHA256 with the lookup key, hex) of an identifier that must not be
    /// stored in the clear, e.g. a WhatsApp message id (a wamid encodes the sender's number).
    /// `domain` keeps each use apart from the others and from `phone_lookup`.
    pub fn keyed_hash(&self, domain: &str, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.lookup.expose_secret()).expect("any key length is fine for HMAC");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh subject key and its wrapped form, bound to the subject id.
    pub fn new_subject_key(&self, subject_id: &str) -> (SubjectKey, Vec<u8>) {
        let key: [u8; 32] = rand::random();
        let wrapped = seal(self.wrap.expose_secret(), &key, subject_id.as_bytes());
        (SubjectKey(SecretBox::new(Box::new(key))), wrapped)
    }

    /// Unwraps a subject key; `None` when it does not open (wrong master key or tampered).
    pub fn unwrap_subject_key(&self, subject_id: &str, wrapped: &[u8]) -> Option<SubjectKey> {
        let key = open(self.wrap.expose_secret(), wrapped, subject_id.as_bytes())?;
        let key: [u8; 32] = key.try_into().ok()?;
        Some(SubjectKey(SecretBox::new(Box::new(key))))
    }

    pub fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.signing
    }

    pub fn verifying_key(&self) -> ed25519_dalek::VerifyingKey {
        self.signing.verifying_key()
    }
}

impl SubjectKey {
    /// Encrypts personal data for one event (`aad`: the event id), nonce first.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal(self.0.expose_secret(), plaintext, aad)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        open(self.0.expose_secret(), sealed, aad)
    }

    /// [`open`](Self::open) into `plain`, whose allocation is reused (an export opens a
    /// million): false, and `plain` empty, when it does not open.
    pub fn open_into(&self, sealed: &[u8], aad: &[u8], plain: &mut Vec<u8>) -> bool {
        open_into(self.0.expose_secret(), sealed, aad, plain)
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master).expect("any key length is fine for HMAC");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce: [u8; NONCE_LEN] = rand::random();
    let payload = chacha20poly1305::aead::Payload { msg: plaintext, aad };
    let sealed = cipher.encrypt(&XNonce::from(nonce), payload).expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let mut plain = Vec::new();
    open_into(key, sealed, aad, &mut plain).then_some(plain)
}

/// Opens `nonce || ciphertext` into `plain` (its allocation reused): false, and `plain`
/// empty, when it does not open.
fn open_into(key: &[u8; 32], sealed: &[u8], aad: &[u8], plain: &mut Vec<u8>) -> bool {
    plain.clear();
    let Some((nonce, body)) = sealed.split_first_chunk::<NONCE_LEN>() else { return false };
    plain.extend_from_slice(body);
    let opened = XChaCha20Poly1305::new(key.into()).decrypt_in_place(&XNonce::from(*nonce), aad, plain).is_ok();
    if !opened {
        plain.clear();
    }
    opened
}

/// Reads a 32-byte secret stored as hex, or creates one.
fn load_or_create_secret(path: &Path, what: &str) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).with_context(|| format!("the {what} file {} is not hex", path.display()))?;
            bytes.try_into().map_err(|_| anyhow::anyhow!("the {what} file {} must hold 32 bytes (64 hex digits)", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            write_private(path, format!("{}\n", hex::encode(secret)).as_bytes())
                .with_context(|| format!("creating the {what} file {}", path.display()))?;
            tracing::info!(path = %path.display(), "created the {what}");
            Ok(secret)
        }
        Err(err) => Err(err).with_context(|| format!("reading the {what} file {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Default key paths inside a data directory.
pub fn default_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join(MASTER_KEY_FILE), data_dir.join(SIGNING_KEY_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::from_secrets([7; 32], [9; 32])
    }

    #[test]
    fn a_wrapped_subject_key_opens_only_for_its_subject() {
        let keys = keyring();
        let (key, wrapped) = keys.new_subject_key("sub_a");
        let sealed = key.seal(b"+393331234567", b"evt_1");
        let again = keys.unwrap_subject_key("sub_a", &wrapped).unwrap();
        assert_eq!(again.open(&sealed, b"evt_1").unwrap(), b"+393331234567");
        assert!(again.open(&sealed, b"evt_2").is_none());
        assert!(keys.unwrap_subject_key("sub_b", &wrapped).is_none());
    }

    #[test]
    fn opening_into_a_reused_buffer_agrees_with_open() {
        let keys = keyring();
        let (key, _) = keys.new_subject_key("sub_a");
        let sealed = key.seal(br#"{"phone":"+393331234567"}"#, b"evt_1");
        let mut plain = b"left over from the last row".to_vec();
        assert!(key.open_into(&sealed, b"evt_1", &mut plain));
        assert_eq!(Some(plain.clone()), key.open(&sealed, b"evt_1"));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        for (sealed, aad) in [(&sealed[..], &b"evt_2"[..]), (&tampered, b"evt_1"), (&sealed[..23], b"evt_1"), (&[][..], b"evt_1")] {
            assert!(!key.open_into(sealed, aad, &mut plain));
            assert!(plain.is_empty());
            assert!(key.open(sealed, aad).is_none());
        }
    }

    #[test]
    fn lookup_hashes_are_keyed() {
        let phone = PhoneNumber::from_e164("+393331234567").unwrap();
        let other = Keyring::from_secrets([8; 32], [9; 32]);
        assert_eq!(keyring().phone_lookup(&phone), keyring().phone_lookup(&phone));
        assert_ne!(keyring().phone_lookup(&phone), other.phone_lookup(&phone));
    }

    #[test]
    fn secrets_are_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (master, signing) = default_paths(dir.path());
        let a = Keyring::load_or_create(&master, &signing).unwrap();
        let b = Keyring::load_or_create(&master, &signing).unwrap();
        assert_eq!(a.verifying_key(), b.verifying_key());
    }
}

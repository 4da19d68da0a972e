//! The consent ledger: how an event is committed to (its RFC 6962 leaf hash), so that any
//! later change to a stored row is detectable.
//!
//! RFC 6962 §2.1: a leaf's hash is `SHA-256(0x00 || leaf data)`. Our leaf data is a
//! length-prefixed encoding of every stored column of the event, personal data included
//! in its encrypted form, so erasing a subject's key leaves every leaf verifiable.

pub mod checkpoint;
pub mod cli;
pub mod log;
pub mod merkle;
pub mod verify;

pub use log::Ledger;

use sha2::{Digest, Sha256};

use crate::store::{NewEvent, RawEvent, StoredEvent};

/// The fields of an event that its leaf commits to, in their stored form.
#[derive(Debug, Clone, Copy)]
pub struct LeafFields<'a> {
    pub id: &'a str,
    pub site_id: &'a str,
    pub seq: u64,
    pub action: &'a str,
    pub method: &'a str,
    pub reference: &'a str,
    pub subject_id: &'a str,
    pub purposes: &'a str,
    pub notice_id: Option<&'a str>,
    pub notice_sha256: Option<&'a str>,
    pub personal: Option<&'a [u8]>,
    pub details: &'a str,
    pub actor: &'a str,
    pub recorded_at_micros: i64,
}

/// Domain separation for the encoding, versioned so that a future format can coexist.
const LEAF_FORMAT: &[u8] = b"cornetta/consent-event/v1";

impl LeafFields<'_> {
    /// The leaf data: each field as a presence byte, a big-endian u32 length and its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.personal.map_or(0, <[u8]>::len));
        let mut put = |value: Option<&[u8]>| match value {
            None => out.push(0),
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        };
        let seq = self.seq.to_string();
        let recorded_at = self.recorded_at_micros.to_string();
        put(Some(LEAF_FORMAT));
        put(Some(self.id.as_bytes()));
        put(Some(self.site_id.as_bytes()));
        put(Some(seq.as_bytes()));
        put(Some(self.action.as_bytes()));
        put(Some(self.method.as_bytes()));
        put(Some(self.reference.as_bytes()));
        put(Some(self.subject_id.as_bytes()));
        put(Some(self.purposes.as_bytes()));
        put(self.notice_id.map(str::as_bytes));
        put(self.notice_sha256.map(str::as_bytes));
        put(self.personal);
        put(Some(self.details.as_bytes()));
        put(Some(self.actor.as_bytes()));
        put(Some(recorded_at.as_bytes()));
        out
    }

    /// RFC 6962 leaf hash: `SHA-256(0x00 || encode())`, fed to the hasher field by field
    /// (verification hashes a million of these).
    pub fn leaf_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        let mut put = |value: Option<&[u8]>| match value {
            None => hasher.update([0u8]),
            Some(bytes) => {
                hasher.update([1u8]);
                hasher.update((bytes.len() as u32).to_be_bytes());
                hasher.update(bytes);
            }
        };
        let mut seq = itoa_buf();
        let mut recorded_at = itoa_buf();
        put(Some(LEAF_FORMAT));
        put(Some(self.id.as_bytes()));
        put(Some(self.site_id.as_bytes()));
        put(Some(decimal(self.seq as i128, &mut seq)));
        put(Some(self.action.as_bytes()));
        put(Some(self.method.as_bytes()));
        put(Some(self.reference.as_bytes()));
        put(Some(self.subject_id.as_bytes()));
        put(Some(self.purposes.as_bytes()));
        put(self.notice_id.map(str::as_bytes));
        put(self.notice_sha256.map(str::as_bytes));
        put(self.personal);
        put(Some(self.details.as_bytes()));
        put(Some(self.actor.as_bytes()));
        put(Some(decimal(i128::from(self.recorded_at_micros), &mut recorded_at)));
        hasher.finalize().into()
    }
}

fn itoa_buf() -> [u8; 40] {
    [0; 40]
}

/// Writes `value` in decimal into the end of `buf`, as `to_string` would, without allocating.
fn decimal(value: i128, buf: &mut [u8; 40]) -> &[u8] {
    let negative = value < 0;
    let mut n = value.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

impl RawEvent {
    /// The leaf fields of this row as stored, placed at position `seq`.
    pub fn leaf_fields(&self, seq: u64) -> LeafFields<'_> {
        LeafFields {
            id: &self.id,
            site_id: &self.site_id,
            seq,
            action: &self.action,
            method: &self.method,
            reference: &self.reference,
            subject_id: &self.subject_id,
            purposes: &self.purposes,
            notice_id: self.notice_id.as_deref(),
            notice_sha256: self.notice_sha256.as_deref(),
            personal: self.personal.as_deref(),
            details: &self.details,
            actor: &self.actor,
            recorded_at_micros: self.recorded_at,
        }
    }
}

/// Purposes as stored: sorted names joined by commas.
pub fn purposes_column(purposes: &[cornetta_shared::Purpose]) -> String {
    let mut names: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

/// The purposes as an event reads back once stored: in the column's order (by name), no
/// duplicates.
pub fn stored_purposes(purposes: &[cornetta_shared::Purpose]) -> Vec<cornetta_shared::Purpose> {
    let mut purposes = purposes.to_vec();
    purposes.sort_unstable_by_key(|p| p.as_str());
    purposes.dedup();
    purposes
}

/// The leaf hash an event will have at position `seq`.
pub fn leaf_hash_of_new(event: &NewEvent, seq: u64) -> [u8; 32] {
    let purposes = purposes_column(&event.purposes);
    LeafFields {
        id: event.id.as_str(),
        site_id: &event.site_id,
        seq,
        action: event.action.as_str(),
        method: event.method.as_str(),
        reference: event.reference.as_str(),
        subject_id: &event.subject_id,
        purposes: &purposes,
        notice_id: event.notice_id.as_ref().map(|n| n.as_str()),
        notice_sha256: event.notice_sha256.as_deref(),
        personal: event.personal.as_deref(),
        details: &event.details,
        actor: &event.actor,
        recorded_at_micros: event.recorded_at.as_microsecond(),
    }
    .leaf_hash()
}

/// Recomputes a stored event's leaf hash from its stored content.
pub fn recompute_leaf_hash(event: &StoredEvent) -> [u8; 32] {
    let purposes = purposes_column(&event.purposes);
    LeafFields {
        id: event.id.as_str(),
        site_id: &event.site_id,
        seq: event.seq,
        action: event.action.as_str(),
        method: event.method.as_str(),
        reference: event.reference.as_str(),
        subject_id: &event.subject_id,
        purposes: &purposes,
        notice_id: event.notice_id.as_ref().map(|n| n.as_str()),
        notice_sha256: event.notice_sha256.as_deref(),
        personal: event.personal.as_deref(),
        details: &event.details,
        actor: &event.actor,
        recorded_at_micros: event.recorded_at.as_microsecond(),
    }
    .leaf_hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> LeafFields<'static> {
        LeafFields {
            id: "evt_1",
            site_id: "site",
            seq: 0,
            action: "granted",
            method: "widget",
            reference: "K7QXM2PA9R",
            subject_id: "sub_1",
            purposes: "utility",
            notice_id: Some("ntc_1"),
            notice_sha256: None,
            personal: Some(b"\x01\x02"),
            details: "{}",
            actor: "widget",
            recorded_at_micros: 1,
        }
    }

    #[test]
    fn every_field_changes_the_leaf_hash() {
        let base = fields().leaf_hash();
        let mut changed = Vec::new();
        let mut f = fields();
        f.seq = 1;
        changed.push(f.leaf_hash());
        let mut f = fields();
        f.notice_id = None;
        changed.push(f.leaf_hash());
        let mut f = fields();
        f.notice_sha256 = Some("");
        changed.push(f.leaf_hash());
        let mut f = fields();
        f.personal = Some(b"\x01\x03");
        changed.push(f.leaf_hash());
        let mut f = fields();
        f.recorded_at_micros = 2;
        changed.push(f.leaf_hash());
        for hash in changed {
            assert_ne!(hash, base);
        }
    }

    #[test]
    fn the_streamed_leaf_hash_is_the_hash_of_the_encoding() {
        for seq in [0, 7, 1234567890, u64::MAX] {
            for at in [0, -5, 1_764_000_000_000_000, i64::MIN, i64::MAX] {
                let mut f = fields();
                f.seq = seq;
                f.recorded_at_micros = at;
                assert_eq!(f.leaf_hash(), merkle::leaf_hash(&f.encode()), "{seq} {at}");
            }
        }
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_leaf_hash() {
        let mut a = fields();
        a.id = "evt_1s";
        a.site_id = "ite";
        assert_ne!(a.leaf_hash(), fields().leaf_hash());
    }
}

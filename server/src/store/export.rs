//! An export's rows as a store hands them over: batches, and each batch's events borrowed
//! from it ([`ExportEvent`]), so that writing a million rows copies no field into a
//! `String` of its own.
//!
//! SQLite's batches carry each row's columns copied into a few buffers per batch (the
//! SQLite store's `raw.rs`): the thread stepping the statement is an export's critical path,
//! and it no longer allocates a dozen fields per row for the other thread to free.

use std::borrow::Cow;

use cornetta_shared::{Action, Method, Purpose};
use jiff::Timestamp;

use super::StoredEvent;

/// An event for an export, with its subject's wrapped key (`None` once erased) so that
/// a million rows need no per-row subject lookup.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub event: StoredEvent,
    pub wrapped_key: Option<Vec<u8>>,
}

/// One batch of an export's rows, in export order.
#[derive(Debug)]
pub struct ExportBatch(Rows);

#[derive(Debug)]
enum Rows {
    /// Parsed by the store as it read them (PostgreSQL).
    Parsed(Vec<ExportRow>),
    /// Checked and copied into a few buffers by the thread stepping SQLite; the events
    /// borrow from them.
    Sqlite(super::sqlite::RawRows),
}

impl ExportBatch {
    pub fn parsed(rows: Vec<ExportRow>) -> Self {
        Self(Rows::Parsed(rows))
    }

    pub(crate) fn sqlite(rows: super::sqlite::RawRows) -> Self {
        Self(Rows::Sqlite(rows))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Rows::Parsed(rows) => rows.len(),
            Rows::Sqlite(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch's events in order (each row was checked when the store read it).
    pub fn events(&self) -> Vec<ExportEvent<'_>> {
        match &self.0 {
            Rows::Parsed(rows) => rows.iter().map(ExportEvent::of).collect(),
            Rows::Sqlite(rows) => rows.events(),
        }
    }
}

/// An event of an export, borrowed from its batch: the fields an export writes.
#[derive(Debug, Clone)]
pub struct ExportEvent<'a> {
    /// A well-formed `EventId`.
    pub id: &'a str,
    pub site_id: &'a str,
    pub seq: u64,
    pub action: Action,
    pub method: Method,
    /// The ten symbols, as `Reference::as_str` gives them.
    pub reference: Cow<'a, str>,
    pub subject_id: &'a str,
    pub purposes: Purposes<'a>,
    /// A well-formed `NoticeId`.
    pub notice_id: Option<&'a str>,
    pub notice_sha256: Option<&'a str>,
    pub personal: Option<&'a [u8]>,
    pub actor: &'a str,
    pub recorded_at: Timestamp,
    /// The leaf hash in lower-case hex, as `hex::encode` writes it.
    pub leaf_hash: [u8; 64],
    pub wrapped_key: Option<&'a [u8]>,
}

impl<'a> ExportEvent<'a> {
    fn of(row: &'a ExportRow) -> Self {
        let e = &row.event;
        let mut leaf_hash = [0u8; 64];
        // 32 bytes always fit 64 digits.
        let _ = hex::encode_to_slice(e.leaf_hash, &mut leaf_hash);
        Self {
            id: e.id.as_str(),
            site_id: &e.site_id,
            seq: e.seq,
            action: e.action,
            method: e.method,
            reference: Cow::Borrowed(e.reference.as_str()),
            subject_id: &e.subject_id,
            purposes: Purposes::List(&e.purposes),
            notice_id: e.notice_id.as_ref().map(|n| n.as_str()),
            notice_sha256: e.notice_sha256.as_deref(),
            personal: e.personal.as_deref(),
            actor: &e.actor,
            recorded_at: e.recorded_at,
            leaf_hash,
            wrapped_key: row.wrapped_key.as_deref(),
        }
    }

    /// The leaf hash's hex digits.
    pub fn leaf_hash_hex(&self) -> &str {
        std::str::from_utf8(&self.leaf_hash).unwrap_or_default()
    }
}

/// An event's purposes, in stored order.
#[derive(Debug, Clone, Copy)]
pub enum Purposes<'a> {
    List(&'a [Purpose]),
    /// A stored comma list whose every non-empty name is a purpose (checked when read).
    Column(&'a str),
}

impl<'a> Purposes<'a> {
    pub fn to_vec(self) -> Vec<Purpose> {
        match self {
            Self::List(list) => list.to_vec(),
            Self::Column(text) => text.split(',').filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect(),
        }
    }

    /// As `ledger::purposes_column` writes them (sorted names, no duplicates, commas): a
    /// stored column already so written is given as it is.
    pub fn column(self) -> Cow<'a, str> {
        match self {
            Self::Column(text) if is_purposes_column(text) => Cow::Borrowed(text),
            _ => Cow::Owned(crate::ledger::purposes_column(&self.to_vec())),
        }
    }
}

/// Whether `text` is what `ledger::purposes_column` makes of its own names: empty, or
/// non-empty names in strictly increasing order.
fn is_purposes_column(text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let mut previous: Option<&str> = None;
    text.split(',').all(|name| {
        let ok = !name.is_empty() && previous.is_none_or(|p| p < name);
        previous = Some(name);
        ok
    })
}

#[cfg(test)]
mod tests {
    use cornetta_shared::Purpose;

    use super::Purposes;

    /// A stored list is written as `purposes_column` would write its purposes, whichever
    /// way it was stored (sorted, unsorted, repeated, with empty names).
    #[test]
    fn a_purposes_column_is_written_as_purposes_column_writes_it() {
        for text in [
            "",
            "utility",
            "marketing,utility",
            "authentication,marketing,support,utility",
            "utility,marketing",
            "utility,utility",
            ",utility",
            "utility,",
            "marketing,,utility",
        ] {
            let parsed: Vec<Purpose> = text.split(',').filter(|p| !p.is_empty()).map(|p| p.parse().unwrap()).collect();
            assert_eq!(Purposes::Column(text).to_vec(), parsed, "{text:?}");
            assert_eq!(Purposes::Column(text).column(), crate::ledger::purposes_column(&parsed), "{text:?}");
            assert_eq!(Purposes::List(&parsed).column(), crate::ledger::purposes_column(&parsed), "{text:?}");
        }
    }
}

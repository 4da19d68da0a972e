//! An export's rows as SQLite gave them: the thread stepping the statement checks each row
//! as `event_from` would and copies its columns into two buffers per batch (text, blobs),
//! and the thread writing the export reads [`ExportEvent`]s that borrow from them.
//!
//! Stepping SQLite is an export's critical path. Parsing every row into a `StoredEvent` on
//! that thread cost a dozen allocations a row, each freed on the other thread; now a row
//! costs no allocation of its own, and the buffers go back to the reader to be filled again.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, SyncSender};

use cornetta_shared::{Action, EventId, Method, NoticeId, Purpose, Reference};
use jiff::Timestamp;

use super::{Columns, corrupt, from_micros, parse_leaf_hash};
use crate::store::StoreResult;
use crate::store::export::{ExportEvent, Purposes};

/// A range of one of a batch's buffers.
type Span = (usize, usize);

/// One row's fields: numbers and names parsed, text and blobs as spans of the batch.
#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Span,
    site_id: Span,
    seq: u64,
    action: Action,
    method: Method,
    reference: Span,
    subject_id: Span,
    purposes: Span,
    notice_id: Option<Span>,
    notice_sha256: Option<Span>,
    personal: Option<Span>,
    actor: Span,
    recorded_at: Timestamp,
    /// 64 lower-case hex digits.
    leaf_hash: Span,
    wrapped_key: Option<Span>,
}

/// A batch of export rows, checked and copied, not yet parsed into events.
#[derive(Debug, Default)]
pub(crate) struct RawRows {
    /// The rows' text, each column checked (UTF-8, and as `event_from` checks it) before
    /// it was copied.
    text: String,
    /// Their blobs: sealed evidence and wrapped keys.
    blobs: Vec<u8>,
    rows: Vec<Fields>,
    /// Where the buffers go when the batch is dropped: back to the reading thread, which
    /// fills them again instead of allocating (and the consumer freeing) fresh ones.
    recycle: Option<SyncSender<RawRows>>,
}

/// Batches that can be on their way back to the reader at once.
pub(super) const RECYCLED: usize = 4;

impl RawRows {
    /// An empty batch: one the consumer gave back when there is one, else a new one.
    pub(super) fn next(recycled: &Receiver<RawRows>, recycle: &SyncSender<RawRows>, rows: usize) -> Self {
        let mut batch = recycled.try_recv().unwrap_or_else(|_| Self {
            text: String::with_capacity(rows * 384),
            blobs: Vec::with_capacity(rows * 384),
            rows: Vec::with_capacity(rows),
            recycle: None,
        });
        batch.text.clear();
        batch.blobs.clear();
        batch.rows.clear();
        batch.recycle = Some(recycle.clone());
        batch
    }

    /// Checks a row in `event_columns!` order and its subject's wrapped key, field by field
    /// in `event_from`'s order and as it does (a bad row fails the read there), and copies it.
    pub(super) fn push(&mut self, row: &rusqlite::Row<'_>) -> StoreResult<()> {
        let purposes = row.text(7)?;
        for name in purposes.split(',').filter(|p| !p.is_empty()) {
            Purpose::from_str(name).map_err(|e| corrupt("event purposes", e))?;
        }
        let id = row.text(0)?;
        EventId::parse(id).map_err(|e| corrupt("event id", e))?;
        let site_id = row.text(1)?;
        let seq = row.int(2)? as u64;
        let action = row.text(3)?.parse().map_err(|e| corrupt("event action", e))?;
        let method = row.text(4)?.parse().map_err(|e| corrupt("event method", e))?;
        let stored_reference = row.text(5)?;
        let reference = Reference::parse(stored_reference).map_err(|e| corrupt("event reference", e))?;
        let subject_id = row.text(6)?;
        let notice_id = row.opt_text(8)?;
        if let Some(notice) = notice_id {
            NoticeId::parse(notice).map_err(|e| corrupt("event notice", e))?;
        }
        let notice_sha256 = row.opt_text(9)?;
        let personal = row.opt_blob(10)?;
        // Not exported, but a row whose details are not text was refused before and still is.
        row.text(11)?;
        let actor = row.text(12)?;
        let recorded_at = from_micros(row.int(13)?)?;
        let leaf_hash = leaf_hash_hex(row.text(14)?)?;
        let wrapped_key = row.opt_blob(15)?;
        let fields = Fields {
            id: self.put_text(id),
            site_id: self.put_text(site_id),
            seq,
            action,
            method,
            reference: self.put_text(reference.as_str()),
            subject_id: self.put_text(subject_id),
            purposes: self.put_text(purposes),
            notice_id: notice_id.map(|n| self.put_text(n)),
            notice_sha256: notice_sha256.map(|n| self.put_text(n)),
            personal: personal.map(|p| self.put_blob(p)),
            actor: self.put_text(actor),
            recorded_at,
            leaf_hash: self.put_text(&leaf_hash),
            wrapped_key: wrapped_key.map(|w| self.put_blob(w)),
        };
        self.rows.push(fields);
        Ok(())
    }

    fn put_text(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }

    fn put_blob(&mut self, blob: &[u8]) -> Span {
        let start = self.blobs.len();
        self.blobs.extend_from_slice(blob);
        (start, self.blobs.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn events(&self) -> Vec<ExportEvent<'_>> {
        self.rows.iter().map(|f| self.event(f)).collect()
    }

    fn event(&self, f: &Fields) -> ExportEvent<'_> {
        // Spans are of this batch's buffers, at the bounds of the `str`s copied in.
        let text = |(start, end): Span| self.text.get(start..end).unwrap_or_default();
        let blob = |(start, end): Span| self.blobs.get(start..end).unwrap_or_default();
        let mut leaf_hash = [0u8; 64];
        if let Some(digits) = self.text.as_bytes().get(f.leaf_hash.0..f.leaf_hash.1).filter(|d| d.len() == 64) {
            leaf_hash.copy_from_slice(digits);
        }
        ExportEvent {
            id: text(f.id),
            site_id: text(f.site_id),
            seq: f.seq,
            action: f.action,
            method: f.method,
            reference: Cow::Borrowed(text(f.reference)),
            subject_id: text(f.subject_id),
            purposes: Purposes::Column(text(f.purposes)),
            notice_id: f.notice_id.map(text),
            notice_sha256: f.notice_sha256.map(text),
            personal: f.personal.map(blob),
            actor: text(f.actor),
            recorded_at: f.recorded_at,
            leaf_hash,
            wrapped_key: f.wrapped_key.map(blob),
        }
    }
}

impl Drop for RawRows {
    fn drop(&mut self) {
        if let Some(recycle) = self.recycle.take() {
            let buffers =
                Self { text: std::mem::take(&mut self.text), blobs: std::mem::take(&mut self.blobs), rows: std::mem::take(&mut self.rows), recycle: None };
            // Full, or the reader is done: the buffers are freed here instead.
            let _ = recycle.try_send(buffers);
        }
    }
}

/// A stored leaf hash as `hex::encode` writes it: as stored when it is lower-case hex
/// already (it always is), else decoded and encoded again (upper case is accepted).
fn leaf_hash_hex(text: &str) -> StoreResult<Cow<'_, str>> {
    if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(Cow::Borrowed(text))
    } else {
        Ok(Cow::Owned(hex::encode(parse_leaf_hash(text)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::leaf_hash_hex;

    #[test]
    fn leaf_hashes_are_exported_in_lower_case_hex_and_malformed_ones_are_refused() {
        let hash: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let lower = hex::encode(hash);
        assert_eq!(leaf_hash_hex(&lower).unwrap(), lower);
        assert_eq!(leaf_hash_hex(&hex::encode_upper(hash)).unwrap(), lower);
        assert!(leaf_hash_hex(&lower[..63]).is_err());
        assert!(leaf_hash_hex(&format!("g{}", &lower[1..])).is_err());
    }
}

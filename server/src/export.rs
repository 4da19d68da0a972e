//! Exports of consent events for auditors: CSV (RFC 4180, one header row, quoted by the
//! `csv` crate) or JSON Lines, streamed from the database cursor in batches so that a
//! million rows never sit in memory at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use cornetta_shared::SiteKey;
use cornetta_shared::api::ConsentEventView;
use futures::StreamExt;

use crate::consents::Evidence;
use crate::keys::Keyring;
use crate::store::{DynStore, EventFilter, ExportRow, StoreError};

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// The CSV columns, in order (the names of `ConsentEventView`'s fields; the notice text is
/// left out of exports: it is the same for every event of a notice, found by its id).
pub const CSV_COLUMNS: [&str; 17] = [
    "id",
    "site",
    "seq",
    "action",
    "method",
    "reference",
    "phone",
    "purposes",
    "notice",
    "notice_sha256",
    "page_url",
    "ip",
    "user_agent",
    "actor",
    "reason",
    "recorded_at",
    "leaf_hash",
];

/// Turns batches of rows into bytes.
struct Writer {
    format: Format,
    keys: Arc<Keyring>,
    store: DynStore,
    sites: HashMap<String, SiteKey>,
    /// Unwrapped subject keys: a person's events usually come close together, and each
    /// unwrap is an AEAD open. Cleared when full, so memory stays bounded.
    subject_keys: HashMap<String, Option<crate::keys::SubjectKey>>,
    /// A field being formatted (numbers, times, purposes).
    scratch: String,
}

/// At most this many unwrapped keys are kept during one export.
const SUBJECT_KEY_CACHE: usize = 65_536;

/// A CSV writer over a fresh buffer (one per chunk: `csv::Writer` gives its buffer back only
/// by value).
fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().from_writer(Vec::with_capacity(256 * 1024))
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Result<Bytes, StoreError> {
    writer.into_inner().map(Bytes::from).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Writer {
    fn header(&mut self) -> Result<Bytes, StoreError> {
        let mut csv = csv_writer();
        if self.format == Format::Csv {
            csv.write_record(CSV_COLUMNS).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        finish(csv)
    }

    async fn site_key(&mut self, site_id: &str) -> Result<SiteKey, StoreError> {
        if let Some(key) = self.sites.get(site_id) {
            return Ok(key.clone());
        }
        let site = self.store.site_by_id(site_id).await?.ok_or_else(|| StoreError::Corrupt(format!("site {site_id} of an event is missing")))?;
        self.sites.insert(site_id.to_owned(), site.key.clone());
        Ok(site.key)
    }

    async fn rows(&mut self, rows: Vec<ExportRow>) -> Result<Bytes, StoreError> {
        let mut csv = csv_writer();
        let mut lines: Vec<u8> = Vec::new();
        for row in rows {
            let e = &row.event;
            let site = self.site_key(&e.site_id).await?;
            if !self.subject_keys.contains_key(&e.subject_id) {
                if self.subject_keys.len() >= SUBJECT_KEY_CACHE {
                    self.subject_keys.clear();
                }
                let key = row.wrapped_key.as_ref().and_then(|w| self.keys.unwrap_subject_key(&e.subject_id, w));
                self.subject_keys.insert(e.subject_id.clone(), key);
            }
            let evidence = self
                .subject_keys
                .get(&e.subject_id)
                .and_then(Option::as_ref)
                .zip(e.personal.as_ref())
                .and_then(|(key, sealed)| key.open(sealed, e.id.as_str().as_bytes()))
                .and_then(|plain| serde_json::from_slice::<Evidence>(&plain).ok())
                .unwrap_or_default();
            match self.format {
                Format::Csv => {
                    // Field by field, numbers and times formatted into a reused buffer.
                    let scratch = &mut self.scratch;
                    let field = |csv: &mut csv::Writer<Vec<u8>>, value: &[u8]| csv.write_field(value).map_err(|err| StoreError::Corrupt(err.to_string()));
                    let mut formatted = |csv: &mut csv::Writer<Vec<u8>>, value: &dyn std::fmt::Display| {
                        scratch.clear();
                        let _ = write!(scratch, "{value}");
                        field(csv, scratch.as_bytes())
                    };
                    field(&mut csv, e.id.as_str().as_bytes())?;
                    field(&mut csv, site.as_str().as_bytes())?;
                    formatted(&mut csv, &e.seq)?;
                    field(&mut csv, e.action.as_str().as_bytes())?;
                    field(&mut csv, e.method.as_str().as_bytes())?;
                    formatted(&mut csv, &e.reference)?;
                    field(&mut csv, evidence.phone.as_deref().unwrap_or("").as_bytes())?;
                    field(&mut csv, crate::ledger::purposes_column(&e.purposes).as_bytes())?;
                    field(&mut csv, e.notice_id.as_ref().map_or("", |n| n.as_str()).as_bytes())?;
                    field(&mut csv, e.notice_sha256.as_deref().unwrap_or("").as_bytes())?;
                    field(&mut csv, evidence.page_url.as_deref().unwrap_or("").as_bytes())?;
                    field(&mut csv, evidence.ip.as_deref().unwrap_or("").as_bytes())?;
                    field(&mut csv, evidence.user_agent.as_deref().unwrap_or("").as_bytes())?;
                    field(&mut csv, e.actor.as_bytes())?;
                    field(&mut csv, evidence.reason.as_deref().unwrap_or("").as_bytes())?;
                    formatted(&mut csv, &e.recorded_at)?;
                    let mut leaf = [0u8; 64];
                    hex::encode_to_slice(e.leaf_hash, &mut leaf).map_err(|err| StoreError::Corrupt(err.to_string()))?;
                    field(&mut csv, &leaf)?;
                    // An empty record ends the one written field by field.
                    csv.write_record(None::<&[u8]>).map_err(|err| StoreError::Corrupt(err.to_string()))?;
                }
                Format::Jsonl => {
                    let view = ConsentEventView {
                        id: e.id.clone(),
                        site,
                        seq: e.seq,
                        action: e.action,
                        method: e.method,
                        reference: e.reference.clone(),
                        phone: evidence.phone,
                        purposes: e.purposes.clone(),
                        notice: e.notice_id.clone(),
                        notice_sha256: e.notice_sha256.clone(),
                        notice_text: None,
                        page_url: evidence.page_url,
                        ip: evidence.ip,
                        user_agent: evidence.user_agent,
                        actor: Some(e.actor.clone()),
                        reason: evidence.reason,
                        recorded_at: e.recorded_at.to_string(),
                        leaf_hash: hex::encode(e.leaf_hash),
                        whatsapp: evidence.whatsapp,
                    };
                    serde_json::to_writer(&mut lines, &view).map_err(|err| StoreError::Corrupt(err.to_string()))?;
                    lines.push(b'\n');
                }
            }
        }
        match self.format {
            Format::Csv => finish(csv),
            Format::Jsonl => Ok(Bytes::from(lines)),
        }
    }
}

/// The export as a stream of byte chunks: the header, then one chunk per batch of rows.
/// An error mid-way ends the stream with an error (the client sees a cut-off transfer
/// rather than a silently short file).
pub fn stream(store: DynStore, keys: Arc<Keyring>, filter: EventFilter, format: Format) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let rows = store.export_events(filter);
    let writer = Writer { format, keys, store, sites: HashMap::new(), subject_keys: HashMap::new(), scratch: String::new() };
    let state = (writer, rows, false);
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let (mut writer, mut rows, started) = state?;
        let chunk = if !started {
            writer.header()
        } else {
            match rows.next().await {
                None => return None,
                Some(Ok(batch)) => writer.rows(batch).await,
                Some(Err(err)) => Err(err),
            }
        };
        match chunk {
            Ok(bytes) => Some((Ok(bytes), Some((writer, rows, true)))),
            Err(err) => {
                tracing::error!(error = %err, "an export stopped part way");
                Some((Err(std::io::Error::other("the export stopped part way; the details were logged on the server")), None))
            }
        }
    }))
}

//! Exports of consent events for auditors: CSV (RFC 4180, one header row, quoted by the
//! `csv` crate) or JSON Lines, streamed from the database cursor in batches so that a
//! million rows never sit in memory at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use cornetta_shared::api::ConsentEventView;
use cornetta_shared::{EventId, NoticeId, Reference, SiteKey};
use futures::StreamExt;
use serde::Deserialize;

use crate::consents::Evidence;
use crate::keys::Keyring;
use crate::store::{DynStore, EventFilter, ExportBatch, ExportEvent, StoreError};

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
    /// The row's evidence, decrypted (the buffer is reused from row to row).
    plain: Vec<u8>,
}

/// At most this many unwrapped keys are kept during one export.
const SUBJECT_KEY_CACHE: usize = 65_536;

/// The evidence fields a CSV row writes, borrowed from the decrypted JSON where no escape
/// needs undoing: the same fields as [`Evidence`], in its order and with its types (so the
/// same plaintext parses, or fails to, alike), `whatsapp` included though not written.
#[derive(Debug, Default, Deserialize)]
struct CsvEvidence<'a> {
    #[serde(default, borrow)]
    phone: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    page_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    #[allow(dead_code)]
    whatsapp: Option<cornetta_shared::api::WhatsappEvidence>,
}

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

    /// Looks up a site's key once per export.
    async fn know_site(&mut self, site_id: &str) -> Result<(), StoreError> {
        if !self.sites.contains_key(site_id) {
            let site = self.store.site_by_id(site_id).await?.ok_or_else(|| StoreError::Corrupt(format!("site {site_id} of an event is missing")))?;
            self.sites.insert(site_id.to_owned(), site.key);
        }
        Ok(())
    }

    /// Decrypts an event's evidence into `plain`: false when there is none, its subject was
    /// erased, or it does not open.
    fn open_evidence(&mut self, e: &ExportEvent<'_>) -> bool {
        let key = match self.subject_keys.get(e.subject_id) {
            Some(key) => key.as_ref(),
            None => {
                if self.subject_keys.len() >= SUBJECT_KEY_CACHE {
                    self.subject_keys.clear();
                }
                let key = e.wrapped_key.and_then(|w| self.keys.unwrap_subject_key(e.subject_id, w));
                self.subject_keys.entry(e.subject_id.to_owned()).or_insert(key).as_ref()
            }
        };
        match (key, e.personal) {
            (Some(key), Some(sealed)) => key.open_into(sealed, e.id.as_bytes(), &mut self.plain),
            _ => false,
        }
    }

    async fn rows(&mut self, batch: ExportBatch) -> Result<Bytes, StoreError> {
        let events = batch.events();
        // The sites first (the only lookups that wait), then the rows without a pause.
        for e in &events {
            self.know_site(e.site_id).await?;
        }
        match self.format {
            Format::Csv => {
                let mut csv = csv_writer();
                for e in &events {
                    self.csv_row(&mut csv, e)?;
                }
                finish(csv)
            }
            Format::Jsonl => {
                let mut lines: Vec<u8> = Vec::new();
                for e in &events {
                    self.jsonl_row(&mut lines, e)?;
                }
                Ok(Bytes::from(lines))
            }
        }
    }

    fn site(&self, site_id: &str) -> Result<&SiteKey, StoreError> {
        self.sites.get(site_id).ok_or_else(|| StoreError::Corrupt(format!("site {site_id} of an event is missing")))
    }

    fn csv_row(&mut self, csv: &mut csv::Writer<Vec<u8>>, e: &ExportEvent<'_>) -> Result<(), StoreError> {
        let opened = self.open_evidence(e);
        let evidence: CsvEvidence<'_> = if opened { serde_json::from_slice(&self.plain).unwrap_or_default() } else { CsvEvidence::default() };
        let site = self.sites.get(e.site_id).ok_or_else(|| StoreError::Corrupt(format!("site {} of an event is missing", e.site_id)))?;
        // Field by field, numbers and times formatted into a reused buffer.
        let scratch = &mut self.scratch;
        let field = |csv: &mut csv::Writer<Vec<u8>>, value: &[u8]| csv.write_field(value).map_err(|err| StoreError::Corrupt(err.to_string()));
        let mut formatted = |csv: &mut csv::Writer<Vec<u8>>, value: &dyn std::fmt::Display| {
            scratch.clear();
            let _ = write!(scratch, "{value}");
            field(csv, scratch.as_bytes())
        };
        field(csv, e.id.as_bytes())?;
        field(csv, site.as_str().as_bytes())?;
        formatted(csv, &e.seq)?;
        field(csv, e.action.as_str().as_bytes())?;
        field(csv, e.method.as_str().as_bytes())?;
        // As `Reference`'s Display writes it: two groups of five.
        let (head, tail) = e.reference.split_at_checked(5).unwrap_or((&e.reference, ""));
        formatted(csv, &format_args!("{head}-{tail}"))?;
        field(csv, evidence.phone.as_deref().unwrap_or("").as_bytes())?;
        field(csv, e.purposes.column().as_bytes())?;
        field(csv, e.notice_id.unwrap_or("").as_bytes())?;
        field(csv, e.notice_sha256.unwrap_or("").as_bytes())?;
        field(csv, evidence.page_url.as_deref().unwrap_or("").as_bytes())?;
        field(csv, evidence.ip.as_deref().unwrap_or("").as_bytes())?;
        field(csv, evidence.user_agent.as_deref().unwrap_or("").as_bytes())?;
        field(csv, e.actor.as_bytes())?;
        field(csv, evidence.reason.as_deref().unwrap_or("").as_bytes())?;
        formatted(csv, &e.recorded_at)?;
        field(csv, &e.leaf_hash)?;
        // An empty record ends the one written field by field.
        csv.write_record(None::<&[u8]>).map_err(|err| StoreError::Corrupt(err.to_string()))
    }

    fn jsonl_row(&mut self, lines: &mut Vec<u8>, e: &ExportEvent<'_>) -> Result<(), StoreError> {
        let opened = self.open_evidence(e);
        let evidence: Evidence = if opened { serde_json::from_slice(&self.plain).unwrap_or_default() } else { Evidence::default() };
        let site = self.site(e.site_id)?.clone();
        let checked = |what: &str, err: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {err}"));
        let view = ConsentEventView {
            id: EventId::parse(e.id).map_err(|err| checked("event id", &err))?,
            site,
            seq: e.seq,
            action: e.action,
            method: e.method,
            reference: Reference::parse(&e.reference).map_err(|err| checked("event reference", &err))?,
            phone: evidence.phone,
            purposes: e.purposes.to_vec(),
            notice: e.notice_id.map(NoticeId::parse).transpose().map_err(|err| checked("event notice", &err))?,
            notice_sha256: e.notice_sha256.map(str::to_owned),
            notice_text: None,
            page_url: evidence.page_url,
            ip: evidence.ip,
            user_agent: evidence.user_agent,
            actor: Some(e.actor.to_owned()),
            reason: evidence.reason,
            recorded_at: e.recorded_at.to_string(),
            leaf_hash: e.leaf_hash_hex().to_owned(),
            whatsapp: evidence.whatsapp,
        };
        serde_json::to_writer(&mut *lines, &view).map_err(|err| StoreError::Corrupt(err.to_string()))?;
        lines.push(b'\n');
        Ok(())
    }
}

/// The export as a stream of byte chunks: the header, then one chunk per batch of rows.
/// An error mid-way ends the stream with an error (the client sees a cut-off transfer
/// rather than a silently short file).
pub fn stream(store: DynStore, keys: Arc<Keyring>, filter: EventFilter, format: Format) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let rows = store.export_events(filter);
    let writer = Writer { format, keys, store, sites: HashMap::new(), subject_keys: HashMap::new(), scratch: String::new(), plain: Vec::new() };
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

#[cfg(test)]
mod tests {
    use super::{CsvEvidence, Evidence};

    /// The CSV's borrowed evidence reads every plaintext as `Evidence` does: the same
    /// values (escapes undone, newlines and quotes kept) and the same refusals, which an
    /// export writes as empty fields.
    #[test]
    fn csv_evidence_reads_what_evidence_reads_and_refuses_what_it_refuses() {
        let plaintexts = [
            r#"{"phone":"+393331234567","page_url":"https://shop.example/a,b?q=\"quoted\"","ip":"203.0.113.0/24","user_agent":"Mozilla/5.0","reason":"line one\nline two"}"#,
            r#"{"reason":"caf\u00e9 — già","unknown":{"nested":[1,2]}}"#,
            r#"{"phone":null,"page_url":"plain"}"#,
            r#"["+393331234567","https://shop.example/"]"#,
            r#"{"whatsapp":{"message_id":"wamid.1","sent_at":"2026-01-01T00:00:00Z","phone_number_id":"1","body_sha256":"ab","text":"STOP"},"phone":"+393331234567"}"#,
            r#"{"whatsapp":{"message_id":"wamid.1"},"phone":"+393331234567"}"#,
            r#"{"phone":12}"#,
            r#"{"phone":"+39","phone":"+40"}"#,
            r#"null"#,
            r#"{"phone":"+39""#,
            "",
        ];
        for plain in plaintexts {
            let owned: Evidence = serde_json::from_slice(plain.as_bytes()).unwrap_or_default();
            let borrowed: CsvEvidence<'_> = serde_json::from_slice(plain.as_bytes()).unwrap_or_default();
            let fields = |e: &CsvEvidence<'_>| [&e.phone, &e.page_url, &e.ip, &e.user_agent, &e.reason].map(|f| f.as_deref().map(str::to_owned));
            assert_eq!(fields(&borrowed), [owned.phone, owned.page_url, owned.ip, owned.user_agent, owned.reason], "{plain}");
        }
    }
}

//! The embedded SQLite store (the default): one file, WAL, `synchronous=FULL`, and a single
//! writer thread that commits whatever consent events are queued in one transaction (group
//! commit) and acknowledges each only after that commit.
//!
//! Two drivers share the one bundled SQLite: sqlx for the migrations and the occasional
//! statement, rusqlite where a statement's cost is the hand-off rather than the SQL (the
//! writer thread, status lookups, exports, verification; `direct.rs`).

mod direct;
mod raw;
mod whatsapp;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cornetta_shared::api::NoticePurpose;
use cornetta_shared::{EventId, Lang, NoticeId, PhoneNumber, Reference, SiteKey};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{
    EventFilter, ExportBatch, NewEvent, PersonEvents, NewNotice, NewSite, NewToken, Notice, RawEvent, RowStream, Site, StoreError, StoreResult,
    StoredCheckpoint, StoredEvent, Subject, TokenInfo,
};
use crate::ledger;
pub(crate) use raw::RawRows;

/// Most events one group commit takes.
const MAX_BATCH: usize = 512;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How the SQLite file is opened.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    /// `FULL` by default: an acknowledged write survives power loss. `OFF` only for the bench.
    pub synchronous: SqliteSynchronous,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self { synchronous: SqliteSynchronous::Full }
    }
}

#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<Job>,
    /// Read-only rusqlite connections for the hot reads (`direct.rs`).
    readers: std::sync::Arc<direct::Readers>,
    /// Dropped with the store, which ends the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// Work for the single writer.
#[derive(Debug)]
enum Job {
    Append { event: NewEvent, reply: oneshot::Sender<StoreResult<StoredEvent>> },
    /// A WhatsApp message and the events it causes, recorded at most once (`whatsapp.rs`).
    Inbound { message: super::whatsapp::InboundMessage, events: Vec<NewEvent>, reply: oneshot::Sender<StoreResult<super::whatsapp::InboundOutcome>> },
}

/// A job's result, answered after the batch's commit.
// One per queued job and gone after the reply: boxing the larger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Done {
    Append(StoreResult<StoredEvent>),
    Inbound(StoreResult<super::whatsapp::InboundOutcome>),
}

impl Job {
    fn answer(self, done: Done) {
        match (self, done) {
            (Job::Append { reply, .. }, Done::Append(result)) => {
                let _ = reply.send(result);
            }
            (Job::Inbound { reply, .. }, Done::Inbound(result)) => {
                let _ = reply.send(result);
            }
            (job, _) => job.fail("the writer mixed up two jobs' results"),
        }
    }

    fn fail(self, message: &str) {
        let err = || StoreError::Corrupt(format!("commit failed: {message}"));
        match self {
            Job::Append { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Job::Inbound { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database file.
    pub async fn open(path: &Path, settings: SqliteSettings) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Invalid(format!("cannot create the directory {}: {e}", parent.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(settings.synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        let conn = open_writer(path, &settings)?;
        let checkpointer = open_writer(path, &settings)?;
        let (stop_checkpoints, stop) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("cornetta-sqlite-checkpointer".into())
            .spawn(move || run_checkpoints(checkpointer, stop))
            .map_err(|e| StoreError::Invalid(format!("cannot start the WAL checkpoint thread: {e}")))?;
        let (writer, jobs) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("cornetta-sqlite-writer".into())
            .spawn(move || run_writer(conn, jobs))
            .map_err(|e| StoreError::Invalid(format!("cannot start the database writer thread: {e}")))?;
        Ok(Self { pool, writer, readers: direct::Readers::new(path), _stop_checkpoints: stop_checkpoints })
    }

    /// The pool, for tools (verification, bench) that read rows directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

fn from_micros(value: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(value).map_err(|e| StoreError::Corrupt(format!("timestamp {value}: {e}")))
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

/// Every column of `sites`, in table order (the order [`site_from`] reads them in).
macro_rules! site_columns {
    () => {
        "id, key, business_name, phones, allowed_origins, default_lang, widget, created_at"
    };
}

fn site_from(row: &impl Columns) -> StoreResult<Site> {
    let phones: Vec<String> = serde_json::from_str(row.text(3)?).map_err(|e| corrupt("site phones", e))?;
    let phones = phones.iter().map(|p| PhoneNumber::from_e164(p)).collect::<Result<_, _>>().map_err(|e| corrupt("site phone", e))?;
    Ok(Site {
        id: row.text(0)?.to_owned(),
        key: SiteKey::parse(row.text(1)?).map_err(|e| corrupt("site key", e))?,
        business_name: row.text(2)?.to_owned(),
        phones,
        allowed_origins: serde_json::from_str(row.text(4)?).map_err(|e| corrupt("site origins", e))?,
        default_lang: Lang::parse(row.text(5)?).map_err(|e| corrupt("site lang", e))?,
        widget: serde_json::from_str(row.text(6)?).map_err(|e| corrupt("site widget", e))?,
        created_at: from_micros(row.int(7)?)?,
    })
}

/// The columns of `notices` [`notice_from`] reads, in its order.
macro_rules! notice_columns {
    () => {
        "id, site_id, version, lang, intro, purposes, privacy_url, canonical_text, sha256, published_at"
    };
}

fn notice_from(row: &impl Columns) -> StoreResult<Notice> {
    let purposes: Vec<NoticePurpose> = serde_json::from_str(row.text(5)?).map_err(|e| corrupt("notice purposes", e))?;
    Ok(Notice {
        id: NoticeId::parse(row.text(0)?).map_err(|e| corrupt("notice id", e))?,
        site_id: row.text(1)?.to_owned(),
        version: u32::try_from(row.int(2)?).map_err(|e| corrupt("notice version", e))?,
        lang: Lang::parse(row.text(3)?).map_err(|e| corrupt("notice lang", e))?,
        intro: row.text(4)?.to_owned(),
        purposes,
        privacy_url: row.opt_text(6)?.map(str::to_owned),
        canonical_text: row.text(7)?.to_owned(),
        sha256: row.text(8)?.to_owned(),
        published_at: from_micros(row.int(9)?)?,
    })
}

/// The columns of `tokens` [`token_from`] reads, in its order (not the secret's hash).
macro_rules! token_columns {
    () => {
        "id, name, role, site_id, created_at, revoked_at"
    };
}

fn token_from(row: &impl Columns) -> StoreResult<TokenInfo> {
    Ok(TokenInfo {
        id: row.text(0)?.to_owned(),
        name: row.text(1)?.to_owned(),
        role: row.text(2)?.parse().map_err(|e| corrupt("token role", e))?,
        site_id: row.opt_text(3)?.map(str::to_owned),
        created_at: from_micros(row.int(4)?)?,
        revoked_at: row.opt_int(5)?.map(from_micros).transpose()?,
    })
}

fn subject_from_row(row: &SqliteRow) -> StoreResult<Subject> {
    Ok(Subject {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        lookup: row.try_get("lookup")?,
        wrapped_key: row.try_get("wrapped_key")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        erased_at: row.try_get::<Option<i64>, _>("erased_at")?.map(from_micros).transpose()?,
    })
}

/// A stored leaf hash: 64 hex digits (read for every row of an export or a verification,
/// so decoded by hand: the `hex` crate's decoder was 6 % of an export's reading).
fn parse_leaf_hash(text: &str) -> StoreResult<[u8; 32]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let digits = text.as_bytes();
    let mut hash = [0u8; 32];
    let ok = digits.len() == 64
        && hash.iter_mut().zip(digits.chunks_exact(2)).all(|(byte, pair)| match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => {
                *byte = high << 4 | low;
                true
            }
            _ => false,
        });
    if ok { Ok(hash) } else { Err(corrupt("event leaf hash", text)) }
}

/// An event's columns as stored, for verification, from the first 15 columns of a row in
/// [`event_columns!`] order.
fn raw_from(row: &impl Columns) -> StoreResult<RawEvent> {
    Ok(RawEvent {
        id: row.text(0)?.to_owned(),
        site_id: row.text(1)?.to_owned(),
        seq: row.int(2)?,
        action: row.text(3)?.to_owned(),
        method: row.text(4)?.to_owned(),
        reference: row.text(5)?.to_owned(),
        subject_id: row.text(6)?.to_owned(),
        purposes: row.text(7)?.to_owned(),
        notice_id: row.opt_text(8)?.map(str::to_owned),
        notice_sha256: row.opt_text(9)?.map(str::to_owned),
        personal: row.opt_blob(10)?.map(<[u8]>::to_vec),
        details: row.text(11)?.to_owned(),
        actor: row.text(12)?.to_owned(),
        recorded_at: row.int(13)?,
        leaf_hash: row.text(14)?.to_owned(),
    })
}

fn checkpoint_from_row(row: &SqliteRow) -> StoreResult<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        tree_size: row.try_get::<i64, _>("tree_size")? as u64,
        root_hash: parse_leaf_hash(row.try_get("root_hash")?)?,
        signed_at: from_micros(row.try_get("signed_at")?)?,
        note: row.try_get("note")?,
    })
}

/// Rows per batch a stream hands over: large enough that the channel costs nothing per
/// row, small enough that memory stays constant.
const STREAM_BATCH: usize = 512;
/// The rows of one long read (a verification) parsed by `parse`, in batches ([`scan_batches`]).
fn scan_stream<T: Send + 'static>(
    readers: std::sync::Arc<direct::Readers>,
    sql: String,
    params: Vec<Param>,
    parse: fn(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> RowStream<Vec<T>> {
    scan_batches(
        readers,
        sql,
        params,
        || Vec::with_capacity(STREAM_BATCH),
        move |batch, row| {
            batch.push(parse(row)?);
            Ok(batch.len())
        },
    )
}

/// The rows of one long read (an export, a verification) in batches of `STREAM_BATCH`,
/// each started by `new` and filled by `push` (which answers the batch's length): read
/// through rusqlite on a blocking thread (`direct.rs`), the whole result from one statement
/// and so from one snapshot. Two batches in flight; when the consumer is gone the send
/// fails and the read stops.
fn scan_batches<B: Send + 'static>(
    readers: std::sync::Arc<direct::Readers>,
    sql: String,
    params: Vec<Param>,
    mut new: impl FnMut() -> B + Send + 'static,
    push: impl Fn(&mut B, &rusqlite::Row<'_>) -> StoreResult<usize> + Send + 'static,
) -> RowStream<B> {
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let result = readers.scan(|conn| {
            let mut statement = conn.prepare(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(params))?;
            let mut batch = new();
            let mut len = 0;
            while let Some(row) = rows.next()? {
                len = push(&mut batch, row)?;
                if len == STREAM_BATCH {
                    if tx.blocking_send(Ok(std::mem::replace(&mut batch, new()))).is_err() {
                        return Ok(());
                    }
                    len = 0;
                }
            }
            if len > 0 {
                let _ = tx.blocking_send(Ok(batch));
            }
            Ok(())
        });
        if let Err(err) = result {
            let _ = tx.blocking_send(Err(err));
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// A stream fed by a task: `produce` sends batches until done or until the consumer is
/// gone (the send fails, the task ends and its database cursor closes).
pub(crate) fn spawn_stream<T, F, Fut>(produce: F) -> RowStream<T>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<StoreResult<T>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // Two batches in flight: the database reads ahead while the consumer works.
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(produce(tx));
    Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// Parses rows from a cursor and sends them in batches (the last one partial); stops at the
/// first error or when the consumer is gone.
pub(crate) async fn forward_batches<R, T>(
    mut rows: futures::stream::BoxStream<'_, Result<R, sqlx::Error>>,
    parse: impl Fn(&R) -> StoreResult<T>,
    tx: mpsc::Sender<StoreResult<Vec<T>>>,
) {
    use futures::StreamExt;
    let mut batch = Vec::with_capacity(STREAM_BATCH);
    while let Some(row) = rows.next().await {
        match row.map_err(StoreError::from).and_then(|r| parse(&r)) {
            Ok(item) => {
                batch.push(item);
                if batch.len() == STREAM_BATCH && tx.send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(STREAM_BATCH)))).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
}

/// A result row read by column position, from either SQLite driver (sqlx here, rusqlite on
/// the hot read paths, `direct.rs`): one parser per row type for both.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> StoreResult<&str>;
    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>>;
    fn int(&self, i: usize) -> StoreResult<i64>;
    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>>;
    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>>;
}

impl Columns for SqliteRow {
    fn text(&self, i: usize) -> StoreResult<&str> {
        Ok(self.try_get(i)?)
    }

    fn opt_text(&self, i: usize) -> StoreResult<Option<&str>> {
        Ok(self.try_get(i)?)
    }

    fn int(&self, i: usize) -> StoreResult<i64> {
        Ok(self.try_get(i)?)
    }

    fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        Ok(self.try_get(i)?)
    }

    fn opt_blob(&self, i: usize) -> StoreResult<Option<&[u8]>> {
        Ok(self.try_get(i)?)
    }
}

/// A person's events: their own, and those of the references they confirmed on WhatsApp.
/// A UNION ALL with an index named for each half, each half limited (the caller sorts and
/// deduplicates: a UNION sorted the rows in a temporary b-tree to do both): written as one `subject OR reference`
/// condition, SQLite walks the site's whole log (300 ms at a million events). The limit is
/// part of the text, not a bound parameter: SQLite plans with a bound LIMIT's value, so it
/// would prepare the statement again at every call (on the bench's million events, 64 µs a
/// call instead of 14 in a loop of its own; in the server, about 18 µs of CPU per lookup).
static PERSON_EVENTS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT * FROM (SELECT * FROM consent_events INDEXED BY consent_events_by_subject WHERE subject_id = ?2 AND site_id = ?1 LIMIT {0})
         UNION ALL
         SELECT * FROM (SELECT * FROM consent_events INDEXED BY consent_events_by_reference WHERE site_id = ?1 AND reference IN
             (SELECT reference FROM consent_events WHERE subject_id = ?2 AND action = 'confirmed') LIMIT {0})",
        super::MAX_PERSON_EVENTS
    )
});

/// Every column of `consent_events`, in table order (so also the order of `SELECT *`), which
/// is the order [`event_from`] reads them in.
macro_rules! event_columns {
    () => {
        "id, site_id, seq, action, method, reference, subject_id, purposes, notice_id, notice_sha256, personal, details, actor, recorded_at, leaf_hash"
    };
}

/// An event from the first 15 columns of a row, in [`event_columns!`] order.
fn event_from(row: &impl Columns) -> StoreResult<StoredEvent> {
    let purposes =
        row.text(7)?.split(',').filter(|p| !p.is_empty()).map(cornetta_shared::Purpose::from_str).collect::<Result<_, _>>().map_err(|e| corrupt("event purposes", e))?;
    Ok(StoredEvent {
        id: EventId::parse(row.text(0)?).map_err(|e| corrupt("event id", e))?,
        site_id: row.text(1)?.to_owned(),
        seq: row.int(2)? as u64,
        action: row.text(3)?.parse().map_err(|e| corrupt("event action", e))?,
        method: row.text(4)?.parse().map_err(|e| corrupt("event method", e))?,
        reference: Reference::parse(row.text(5)?).map_err(|e| corrupt("event reference", e))?,
        subject_id: row.text(6)?.to_owned(),
        purposes,
        notice_id: row.opt_text(8)?.map(NoticeId::parse).transpose().map_err(|e| corrupt("event notice", e))?,
        notice_sha256: row.opt_text(9)?.map(str::to_owned),
        personal: row.opt_blob(10)?.map(<[u8]>::to_vec),
        details: row.text(11)?.to_owned(),
        actor: row.text(12)?.to_owned(),
        recorded_at: from_micros(row.int(13)?)?,
        leaf_hash: parse_leaf_hash(row.text(14)?)?,
    })
}

#[async_trait]
impl super::Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn studio(&self) -> Option<&dyn super::studio::StudioStore> {
        Some(self)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_site(&self, site: NewSite) -> StoreResult<Site> {
        let id = format!("site_{}", uuid::Uuid::now_v7().simple());
        let phones: Vec<&str> = site.phones.iter().map(PhoneNumber::as_str).collect();
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO sites (id, key, business_name, phones, allowed_origins, default_lang, widget, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(site.key.as_str())
        .bind(&site.business_name)
        .bind(serde_json::to_string(&phones).map_err(|e| corrupt("phones", e))?)
        .bind(serde_json::to_string(&site.allowed_origins).map_err(|e| corrupt("origins", e))?)
        .bind(site.default_lang.as_str())
        .bind(site.widget.to_string())
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        self.site_by_id(&id).await?.ok_or_else(|| StoreError::NotFound("site vanished after insert".into()))
    }

    async fn site_by_key(&self, key: &SiteKey) -> StoreResult<Option<Site>> {
        self.readers.now(|conn| direct::optional(conn, concat!("SELECT ", site_columns!(), " FROM sites WHERE key = ?1"), [key.as_str()], |r| site_from(r)))
    }

    async fn site_by_id(&self, id: &str) -> StoreResult<Option<Site>> {
        self.readers.now(|conn| direct::optional(conn, concat!("SELECT ", site_columns!(), " FROM sites WHERE id = ?1"), [id], |r| site_from(r)))
    }

    async fn list_sites(&self) -> StoreResult<Vec<Site>> {
        let rows = sqlx::query(concat!("SELECT ", site_columns!(), " FROM sites ORDER BY created_at, id")).fetch_all(&self.pool).await?;
        rows.iter().map(site_from).collect()
    }

    async fn update_site_origins(&self, id: &str, origins: Vec<String>) -> StoreResult<()> {
        let origins = serde_json::to_string(&origins).map_err(|e| corrupt("origins", e))?;
        let done = sqlx::query("UPDATE sites SET allowed_origins = ? WHERE id = ?").bind(origins).bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no site {id}")));
        }
        Ok(())
    }

    async fn update_site_widget(&self, id: &str, widget: serde_json::Value) -> StoreResult<()> {
        let done = sqlx::query("UPDATE sites SET widget = ? WHERE id = ?").bind(widget.to_string()).bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no site {id}")));
        }
        Ok(())
    }

    async fn publish_notice(&self, notice: NewNotice) -> StoreResult<Notice> {
        let purposes = serde_json::to_string(&notice.purposes).map_err(|e| corrupt("purposes", e))?;
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM notices WHERE site_id = ? AND lang = ?")
            .bind(&notice.site_id)
            .bind(notice.lang.as_str())
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO notices (id, site_id, version, lang, intro, purposes, privacy_url, canonical_text, sha256, published_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(notice.id.as_str())
        .bind(&notice.site_id)
        .bind(version)
        .bind(notice.lang.as_str())
        .bind(&notice.intro)
        .bind(&purposes)
        .bind(&notice.privacy_url)
        .bind(&notice.canonical_text)
        .bind(&notice.sha256)
        .bind(micros(notice.published_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.notice(&notice.id).await?.ok_or_else(|| StoreError::NotFound("notice vanished after insert".into()))
    }

    // Every consent names its notice, and every widget configuration shows one: lookups by
    // a unique key, read at once as `site_by_key` is (through sqlx each is a hand-off to its
    // worker thread and back).
    async fn notice(&self, id: &NoticeId) -> StoreResult<Option<Notice>> {
        self.readers.now(|conn| direct::optional(conn, concat!("SELECT ", notice_columns!(), " FROM notices WHERE id = ?1"), [id.as_str()], |r| notice_from(r)))
    }

    async fn current_notice(&self, site_id: &str, lang: Lang) -> StoreResult<Option<Notice>> {
        self.readers.now(|conn| {
            direct::optional(
                conn,
                concat!("SELECT ", notice_columns!(), " FROM notices WHERE site_id = ?1 AND lang = ?2 ORDER BY version DESC LIMIT 1"),
                [site_id, lang.as_str()],
                |r| notice_from(r),
            )
        })
    }

    async fn notices(&self, site_id: &str) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(concat!("SELECT ", notice_columns!(), " FROM notices WHERE site_id = ? ORDER BY lang, version"))
            .bind(site_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(notice_from).collect()
    }

    async fn create_token(&self, token: NewToken) -> StoreResult<TokenInfo> {
        sqlx::query("INSERT INTO tokens (id, name, role, site_id, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&token.id)
            .bind(&token.name)
            .bind(token.role.as_str())
            .bind(&token.site_id)
            .bind(&token.hash)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?;
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = ?")).bind(&token.id).fetch_one(&self.pool).await?;
        token_from(&row)
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        self.readers.now(|conn| direct::optional(conn, concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = ?1"), [hash], |r| token_from(r)))
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens ORDER BY created_at, id")).fetch_all(&self.pool).await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(micros(Timestamp::now()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn subject_for_lookup(&self, create: Subject) -> StoreResult<Subject> {
        let lookup = create.lookup.clone().ok_or_else(|| StoreError::Invalid("a looked-up subject needs a lookup hash".into()))?;
        sqlx::query(
            "INSERT INTO subjects (id, site_id, lookup, wrapped_key, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (site_id, lookup) DO NOTHING",
        )
        .bind(&create.id)
        .bind(&create.site_id)
        .bind(&lookup)
        .bind(&create.wrapped_key)
        .bind(micros(create.created_at))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM subjects WHERE site_id = ? AND lookup = ?")
            .bind(&create.site_id)
            .bind(&lookup)
            .fetch_one(&self.pool)
            .await?;
        subject_from_row(&row)
    }

    async fn subject(&self, id: &str) -> StoreResult<Option<Subject>> {
        let row = sqlx::query("SELECT * FROM subjects WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(subject_from_row).transpose()
    }

    async fn subjects_by_lookup(&self, lookup: &str) -> StoreResult<Vec<Subject>> {
        let rows = sqlx::query("SELECT * FROM subjects WHERE lookup = ? ORDER BY created_at").bind(lookup).fetch_all(&self.pool).await?;
        rows.iter().map(subject_from_row).collect()
    }

    async fn append(&self, event: NewEvent) -> StoreResult<StoredEvent> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(Job::Append { event, reply }).await.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn events(&self, filter: &EventFilter, limit: u32) -> StoreResult<Vec<StoredEvent>> {
        let (conditions, params) = filter_sql(filter);
        // Only constant text and `?` placeholders: every value is bound.
        let sql = format!(concat!("SELECT ", event_columns!(), " FROM consent_events WHERE 1 = 1{} ORDER BY site_id, seq LIMIT ?"), conditions);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for param in params {
            query = match param {
                Param::Text(s) => query.bind(s),
                Param::Int(i) => query.bind(i),
            };
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter().map(event_from).collect()
    }

    async fn grant_by_reference(&self, site_id: &str, reference: &Reference) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query("SELECT * FROM consent_events WHERE site_id = ? AND reference = ? AND action = 'granted'")
            .bind(site_id)
            .bind(reference.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from).transpose()
    }

    async fn event(&self, id: &EventId) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query("SELECT * FROM consent_events WHERE id = ?").bind(id.as_str()).fetch_optional(&self.pool).await?;
        row.as_ref().map(event_from).transpose()
    }

    async fn tree_size(&self, site_id: &str) -> StoreResult<u64> {
        let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM consent_events WHERE site_id = ?")
            .bind(site_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(next as u64)
    }

    async fn leaf_hashes(&self, site_id: &str, from: u64, to: u64) -> StoreResult<Vec<[u8; 32]>> {
        let rows = sqlx::query("SELECT seq, leaf_hash FROM consent_events WHERE site_id = ? AND seq >= ? AND seq < ? ORDER BY seq")
            .bind(site_id)
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let seq: i64 = row.try_get(0)?;
            if seq != (from + i as u64) as i64 {
                return Err(StoreError::Corrupt(format!(
                    "the log of site {site_id} has no event at seq {}; run `cornetta ledger verify`",
                    from + i as u64
                )));
            }
            out.push(parse_leaf_hash(row.try_get(1)?)?);
        }
        if out.len() as u64 != to - from {
            return Err(StoreError::Corrupt(format!(
                "the log of site {site_id} ends at seq {} before {to}; run `cornetta ledger verify`",
                from + out.len() as u64
            )));
        }
        Ok(out)
    }

    fn raw_events(&self, site_id: &str) -> RowStream<Vec<RawEvent>> {
        // The whole log in one statement, so from one snapshot.
        let sql = concat!("SELECT ", event_columns!(), " FROM consent_events WHERE site_id = ? ORDER BY seq, id").to_owned();
        scan_stream(self.readers.clone(), sql, vec![Param::Text(site_id.to_owned())], |row| raw_from(row))
    }

    async fn add_checkpoint(&self, c: StoredCheckpoint) -> StoreResult<()> {
        sqlx::query("INSERT INTO ledger_checkpoints (id, site_id, tree_size, root_hash, signed_at, note) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&c.id)
            .bind(&c.site_id)
            .bind(c.tree_size as i64)
            .bind(hex::encode(c.root_hash))
            .bind(micros(c.signed_at))
            .bind(&c.note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn checkpoints(&self, site_id: &str, before: Option<&str>, limit: u32) -> StoreResult<Vec<StoredCheckpoint>> {
        let rows = sqlx::query("SELECT * FROM ledger_checkpoints WHERE site_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?")
            .bind(site_id)
            .bind(before)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn erase_subjects(&self, ids: &[String], at: Timestamp) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let mut erased = Vec::new();
        for id in ids {
            let done = sqlx::query("UPDATE subjects SET wrapped_key = NULL, lookup = NULL, erased_at = ? WHERE id = ? AND erased_at IS NULL")
                .bind(micros(at))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                erased.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(erased)
    }

    async fn person_events(&self, site_id: &str, lookup: &str) -> StoreResult<PersonEvents> {
        let (site_id, lookup) = (site_id.to_owned(), lookup.to_owned());
        // Both statements in one call through rusqlite (`direct.rs`), at once on this thread:
        // a person has a handful of events, read through two indexes (MAX_PERSON_EVENTS
        // bounds the rare person with thousands).
        self.readers
            .now(move |conn| {
                let subjects: Vec<String> = conn
                    .prepare_cached("SELECT id FROM subjects WHERE site_id = ?1 AND lookup = ?2")
                    .and_then(|mut s| s.query_map((&site_id, &lookup), |r| r.get(0))?.collect())?;
                // UNIQUE (site_id, lookup): one subject per number and site.
                let Some(subject) = subjects.first() else { return Ok(PersonEvents::default()) };
                let mut statement = conn.prepare_cached(&PERSON_EVENTS_SQL)?;
                let mut rows = statement.query((&site_id, subject))?;
                let mut events = Vec::new();
                while let Some(row) = rows.next()? {
                    events.push(event_from(row)?);
                }
                // The halves overlap (a confirmation is the person's own and carries their
                // reference): sorted and deduplicated here, not by SQLite in a temporary
                // b-tree. Either half at its limit already makes MAX_PERSON_EVENTS distinct
                // events, so the cap is seen exactly as with one limit on the union.
                events.sort_by_key(|e: &StoredEvent| e.seq);
                events.dedup_by_key(|e| e.seq);
                events.truncate(super::MAX_PERSON_EVENTS as usize);
                Ok(PersonEvents { subjects, events })
            })
    }

    fn export_events(&self, filter: EventFilter) -> RowStream<ExportBatch> {
        use futures::StreamExt;
        let (sql, params) = export_sql(&filter);
        // Rows checked and copied, not parsed into events (`raw.rs`); the batches' buffers
        // come back from the consumer to be filled again.
        let (recycle, recycled) = std::sync::mpsc::sync_channel(raw::RECYCLED);
        scan_batches(
            self.readers.clone(),
            sql,
            params,
            move || RawRows::next(&recycled, &recycle, STREAM_BATCH),
            |batch, row| {
                batch.push(row)?;
                Ok(batch.len())
            },
        )
        .map(|batch| batch.map(ExportBatch::sqlite))
        .boxed()
    }

    fn whatsapp(&self) -> Option<&dyn super::whatsapp::WhatsappStore> {
        Some(self)
    }
}

/// An export's statement: the events `filter` matches, in log order, each with its
/// subject's wrapped key. A join on a subquery keeps the filter's column names unambiguous
/// (both tables have `id` and `site_id`), and SQLite flattens it into one loop over the
/// events' index; a correlated subquery instead opened and closed a cursor on `subjects`
/// for every row.
fn export_sql(filter: &EventFilter) -> (String, Vec<Param>) {
    let (conditions, params) = filter_sql(filter);
    let sql = format!(
        concat!(
            "SELECT e.*, s.wrapped_key FROM (SELECT ",
            event_columns!(),
            " FROM consent_events WHERE 1 = 1{}) e
             LEFT JOIN subjects s ON s.id = e.subject_id ORDER BY e.site_id, e.seq"
        ),
        conditions
    );
    (sql, params)
}

/// A value bound to a `?` of a filter's SQL.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Text(s) => s.to_sql(),
            Self::Int(i) => i.to_sql(),
        }
    }
}

/// Lists of subjects or references up to this long are bound one variable each.
const INLINE_LIST: usize = 1_000;

/// `filter`'s conditions on `consent_events` as SQL (each `AND …`, with `?` placeholders) and
/// the values for them in order: the same text for both SQLite drivers.
pub(crate) fn filter_sql(filter: &EventFilter) -> (String, Vec<Param>) {
    let mut sql = String::new();
    let mut params = Vec::new();
    if let Some(site) = &filter.site_id {
        sql.push_str(" AND site_id = ?");
        params.push(Param::Text(site.clone()));
    }
    let subjects = filter.subjects.as_deref().filter(|s| !s.is_empty());
    let references = filter.references.as_deref().filter(|r| !r.is_empty());
    // SQLite refuses more than 32,766 bound variables, and a number can confirm any count of
    // web grants: a long list goes as one JSON array, short ones (nearly every request) as
    // plain placeholders.
    let mut list = |sql: &mut String, column: &str, values: Vec<String>| {
        if values.len() <= INLINE_LIST {
            sql.push_str(&format!(" OR {column} IN ({})", vec!["?"; values.len()].join(", ")));
            params.extend(values.into_iter().map(Param::Text));
        } else {
            sql.push_str(&format!(" OR {column} IN (SELECT value FROM json_each(?))"));
            params.push(Param::Text(serde_json::Value::from(values).to_string()));
        }
    };
    match (subjects, references) {
        (None, None) if filter.subjects.is_some() || filter.references.is_some() => {
            // Asked for a person nobody knows: nothing matches.
            sql.push_str(" AND 0 = 1");
        }
        (None, None) => {}
        (subjects, references) => {
            sql.push_str(" AND (0 = 1");
            if let Some(subjects) = subjects {
                list(&mut sql, "subject_id", subjects.to_vec());
            }
            if let Some(references) = references {
                list(&mut sql, "reference", references.iter().map(|r| r.as_str().to_owned()).collect());
            }
            sql.push(')');
        }
    }
    if let Some(purpose) = filter.purpose {
        // Purposes are a sorted comma list; match a whole name.
        sql.push_str(" AND (',' || purposes || ',') LIKE ?");
        params.push(Param::Text(format!("%,{},%", purpose.as_str())));
    }
    if let Some(action) = filter.action {
        sql.push_str(" AND action = ?");
        params.push(Param::Text(action.as_str().to_owned()));
    }
    if let Some(from) = filter.from {
        sql.push_str(" AND recorded_at >= ?");
        params.push(Param::Int(micros(from)));
    }
    if let Some(to) = filter.to {
        sql.push_str(" AND recorded_at < ?");
        params.push(Param::Int(micros(to)));
    }
    if let Some(after) = &filter.after {
        sql.push_str(" AND (site_id, seq) > (?, ?)");
        params.push(Param::Text(after.site_id.clone()));
        params.push(Param::Int(after.seq as i64));
    }
    (sql, params)
}

/// The single writer's connection: rusqlite, owned by the writer thread (sqlx would add two
/// thread hand-offs per statement, three statements per event).
fn open_writer(path: &Path, settings: &SqliteSettings) -> StoreResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let synchronous = match settings.synchronous {
        SqliteSynchronous::Off => "OFF",
        SqliteSynchronous::Normal => "NORMAL",
        SqliteSynchronous::Full => "FULL",
        SqliteSynchronous::Extra => "EXTRA",
    };
    // No checkpoints on the writer's commits (`run_checkpoints` does them).
    conn.execute_batch(&format!("PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;"))?;
    Ok(conn)
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL from a thread of its own until the store is dropped (`stop` closes).
/// By default SQLite checkpoints inside the commit that fills the WAL past 1,000 pages, so
/// the writer would stop every few hundred events to copy pages and, with
/// `synchronous=FULL`, fsync the database file while every queued consent waits. A PASSIVE
/// checkpoint runs beside the writer and never blocks it; whatever it cannot copy yet (pages
/// a reader still needs) it copies next time.
fn run_checkpoints(conn: rusqlite::Connection, stop: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %err, "a WAL checkpoint failed; the next one retries");
        }
    }
}

/// The single writer, on a thread of its own: takes one job, then whatever else is already
/// queued (up to `MAX_BATCH`), writes them in one `BEGIN IMMEDIATE` transaction and answers
/// each job only after `COMMIT` returned. A failed batch answers every job with the error;
/// nothing of it is acknowledged. Ends when the store is dropped.
fn run_writer(mut conn: rusqlite::Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&mut conn, &batch) {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    job.answer(result);
                }
            }
            Err(err) if is_constraint(&err) && batch.len() > 1 => {
                // One bad event (say, of a site that does not exist) must not fail the
                // others: write each alone, so that only the offender is refused.
                tracing::warn!(error = %err, events = batch.len(), "a batch was refused; writing its events one by one");
                for job in batch.drain(..) {
                    match write_batch(&mut conn, std::slice::from_ref(&job)) {
                        Ok(mut one) => match one.pop() {
                            Some(done) => job.answer(done),
                            None => job.fail("the writer lost an event"),
                        },
                        Err(err) => job.fail(&err.to_string()),
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, events = batch.len(), "group commit failed; no event of the batch was stored");
                let message = err.to_string();
                for job in batch.drain(..) {
                    job.fail(&message);
                }
            }
        }
    }
}

/// A refusal by the schema (a foreign key, a check, a trigger), as opposed to I/O trouble.
fn is_constraint(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Writes a batch in one transaction (rolled back unless it commits); per-job refusals (a
/// reused reference) are in the inner results.
fn write_batch(conn: &mut rusqlite::Connection, batch: &[Job]) -> rusqlite::Result<Vec<Done>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut state = BatchState::default();
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        results.push(match job {
            Job::Append { event, .. } => Done::Append(insert_event(&tx, event, &mut state)?),
            Job::Inbound { message, events, .. } => Done::Inbound(whatsapp::insert_inbound(&tx, message, events, &mut state)?),
        });
    }
    tx.commit()?;
    Ok(results)
}

/// What a batch has written so far that later events of the same batch must see.
#[derive(Debug, Default)]
struct BatchState {
    /// Next `seq` per site.
    next_seq: HashMap<String, u64>,
    /// (site, reference) of the grants written.
    granted: HashSet<(String, String)>,
}

/// Inserts one event inside the batch's transaction; a per-event refusal (a reused
/// reference) is the inner error.
fn insert_event(conn: &rusqlite::Connection, event: &NewEvent, batch: &mut BatchState) -> rusqlite::Result<StoreResult<StoredEvent>> {
    use rusqlite::OptionalExtension;
    if event.action == cornetta_shared::Action::Granted {
        let key = (event.site_id.clone(), event.reference.as_str().to_owned());
        let taken = batch.granted.contains(&key)
            || conn
                .prepare_cached("SELECT 1 FROM consent_events WHERE site_id = ? AND reference = ? AND action = 'granted'")?
                .query_row((&event.site_id, event.reference.as_str()), |_| Ok(()))
                .optional()?
                .is_some();
        if taken {
            return Ok(Err(StoreError::Conflict(format!("reference {} is already used by another consent at this site", event.reference))));
        }
        batch.granted.insert(key);
    }
    let trimmed;
    let event = if event.action == cornetta_shared::Action::Withdrawn {
        // In the transaction, so earlier withdrawals of this batch count as well.
        let mut ended = Vec::new();
        let mut statement = conn.prepare_cached("SELECT purposes FROM consent_events WHERE site_id = ? AND reference = ? AND action = 'withdrawn'")?;
        let mut rows = statement.query((&event.site_id, event.reference.as_str()))?;
        while let Some(row) = rows.next()? {
            let column: String = row.get(0)?;
            super::add_ended(&mut ended, column.split(','));
        }
        match super::withdrawal_left(event, &ended) {
            Ok(left) => {
                trimmed = left;
                trimmed.as_ref().unwrap_or(event)
            }
            Err(refused) => return Ok(Err(refused)),
        }
    } else {
        event
    };
    let seq = match batch.next_seq.get(event.site_id.as_str()) {
        Some(seq) => *seq,
        None => {
            let next: i64 = conn.prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM consent_events WHERE site_id = ?")?.query_row([&event.site_id], |r| r.get(0))?;
            next as u64
        }
    };
    batch.next_seq.insert(event.site_id.clone(), seq + 1);
    if let Some(subject) = &event.new_subject {
        conn.prepare_cached("INSERT INTO subjects (id, site_id, lookup, wrapped_key, created_at) VALUES (?, ?, ?, ?, ?)")?.execute((
            &subject.id,
            &subject.site_id,
            &subject.lookup,
            &subject.wrapped_key,
            micros(subject.created_at),
        ))?;
    }
    let leaf_hash = ledger::leaf_hash_of_new(event, seq);
    let purposes = ledger::purposes_column(&event.purposes);
    conn.prepare_cached(
        "INSERT INTO consent_events (id, site_id, seq, action, method, reference, subject_id, purposes, notice_id,
             notice_sha256, personal, details, actor, recorded_at, leaf_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(rusqlite::params![
        event.id.as_str(),
        &event.site_id,
        seq as i64,
        event.action.as_str(),
        event.method.as_str(),
        event.reference.as_str(),
        &event.subject_id,
        &purposes,
        event.notice_id.as_ref().map(NoticeId::as_str),
        &event.notice_sha256,
        &event.personal,
        &event.details,
        &event.actor,
        micros(event.recorded_at),
        hex::encode(leaf_hash),
    ])?;
    let purposes_sorted = ledger::stored_purposes(&event.purposes);
    Ok(Ok(StoredEvent {
        id: event.id.clone(),
        site_id: event.site_id.clone(),
        seq,
        action: event.action,
        method: event.method,
        reference: event.reference.clone(),
        subject_id: event.subject_id.clone(),
        purposes: purposes_sorted,
        notice_id: event.notice_id.clone(),
        notice_sha256: event.notice_sha256.clone(),
        personal: event.personal.clone(),
        details: event.details.clone(),
        actor: event.actor.clone(),
        recorded_at: event.recorded_at,
        leaf_hash,
    }))
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, StatementStatus};

    use super::{PERSON_EVENTS_SQL, parse_leaf_hash};

    /// The status lookup's statement is prepared once per connection, not at every call
    /// (a bound LIMIT would make SQLite prepare it again whenever it is bound; the control
    /// below shows this build of SQLite does).
    #[test]
    fn the_person_events_statement_is_not_prepared_again_at_each_call() {
        let conn = Connection::open_in_memory().unwrap();
        for migration in [include_str!("../../migrations/sqlite/0001_init.sql"), include_str!("../../migrations/sqlite/0002_ledger_checkpoints.sql")] {
            conn.execute_batch(migration).unwrap();
        }
        let reprepares = |sql: &str, limit: bool| {
            let mut statement = conn.prepare(sql).unwrap();
            for subject in ["sub_a", "sub_b", "sub_c"] {
                let mut rows = if limit { statement.query(("site", subject, 10_i64)) } else { statement.query(("site", subject)) }.unwrap();
                while rows.next().unwrap().is_some() {}
            }
            statement.get_status(StatementStatus::RePrepare)
        };
        assert_eq!(reprepares(&PERSON_EVENTS_SQL, false), 0);
        let bound_limit = PERSON_EVENTS_SQL.replace(&format!("LIMIT {}", super::super::MAX_PERSON_EVENTS), "LIMIT ?3");
        assert_ne!(bound_limit, *PERSON_EVENTS_SQL);
        assert!(reprepares(&bound_limit, true) > 0, "SQLite no longer plans with a bound LIMIT; the literal limit is no longer needed");
    }

    /// An export walks the events' index in log order and looks each subject up by its
    /// key: no sort of the whole export, no subquery run again for every row.
    #[test]
    fn an_export_of_a_site_is_one_walk_of_its_log_index() {
        let conn = Connection::open_in_memory().unwrap();
        for migration in [include_str!("../../migrations/sqlite/0001_init.sql"), include_str!("../../migrations/sqlite/0002_ledger_checkpoints.sql")] {
            conn.execute_batch(migration).unwrap();
        }
        let filter = crate::store::EventFilter { site_id: Some("site_a".into()), ..Default::default() };
        let (sql, params) = super::export_sql(&filter);
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = statement.query_map(rusqlite::params_from_iter(params), |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert!(plan[0].starts_with("SEARCH consent_events USING INDEX") && plan[0].contains("(site_id=?)"), "{plan:?}");
        assert!(plan[1].starts_with("SEARCH s USING INDEX") && plan[1].contains("(id=?)"), "{plan:?}");
        // Columns in the order `raw.rs` reads them: the event's, then the wrapped key.
        let statement = conn.prepare(&super::export_sql(&crate::store::EventFilter::default()).0).unwrap();
        let want: Vec<&str> = event_columns!().split(", ").chain(["wrapped_key"]).collect();
        assert_eq!(statement.column_names(), want);
    }

    #[test]
    fn leaf_hashes_decode_as_the_hex_crate_encodes_them_and_anything_else_is_refused() {
        for seed in 0u8..=255 {
            let hash: [u8; 32] = std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
            assert_eq!(parse_leaf_hash(&hex::encode(hash)).unwrap(), hash);
            assert_eq!(parse_leaf_hash(&hex::encode_upper(hash)).unwrap(), hash);
        }
        let good = "ab".repeat(32);
        for bad in [&good[..63], &format!("{good}0"), &good.replacen('a', "g", 1), &good.replacen('a', " ", 1), "", "é".repeat(32).as_str()] {
            assert!(parse_leaf_hash(bad).is_err(), "{bad:?}");
        }
    }
}

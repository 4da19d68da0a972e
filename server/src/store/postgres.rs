//! The PostgreSQL store: many `cornetta serve` processes on one database. Each process has
//! one writer task that commits whatever consent events are queued in one transaction
//! (group commit) and acknowledges each only after that commit; across processes, each
//! site's `seq` stays one gap-free sequence because a batch locks the site's
//! `ledger_heads` row (`FOR UPDATE`) until it commits.

mod whatsapp;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use cornetta_shared::api::NoticePurpose;
use cornetta_shared::{Action, EventId, Lang, NoticeId, PhoneNumber, Purpose, Reference, SiteKey};
use jiff::Timestamp;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgConnectOptions, PgConnection, PgHasArrayType, PgPoolOptions, PgRow, PgTypeInfo, PgValueRef,
};
use sqlx::{Connection, Decode, Encode, PgPool, Postgres, QueryBuilder, Row, Type};
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{forward_batches, spawn_stream};
use super::{
    EventFilter, ExportBatch, ExportRow, NewEvent, NewNotice, NewSite, NewToken, Notice, PersonEvents, RawEvent, RowStream, Site, StoreError,
    StoreResult, StoredCheckpoint, StoredEvent, Subject, TokenInfo,
};
use crate::ledger;

/// Most events one group commit takes.
const MAX_BATCH: usize = 512;

/// Most notices one process keeps in memory (a site has one per language and version).
const CACHED_NOTICES: usize = 1024;

/// The name PostgreSQL reports when a second grant reuses a reference (the partial unique
/// index of the migration).
const ONE_GRANT_PER_REFERENCE: &str = "one_grant_per_reference";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

// Column lists as macros, so that `concat!` makes each query one literal (sqlx 0.9 takes
// only audited `'static` SQL strings).
/// Every column of `consent_events`, in the order `event_from_row` reads them.
macro_rules! pg_event_columns {
    () => {
        "id, site_id, seq, action, method, reference, subject_id, purposes, notice_id, notice_sha256, \
         personal, details, actor, recorded_at, leaf_hash"
    };
}
macro_rules! site_columns {
    () => {
        "id, key, business_name, phones, allowed_origins, default_lang, widget::text AS widget, created_at"
    };
}
macro_rules! notice_columns {
    () => {
        "id, site_id, version, lang, intro, purposes::text AS purposes, privacy_url, canonical_text, sha256, published_at"
    };
}
macro_rules! token_columns {
    () => {
        "id, name, role, site_id, created_at, revoked_at"
    };
}
macro_rules! subject_columns {
    () => {
        "id, site_id, lookup, wrapped_key, created_at, erased_at"
    };
}

/// Every column of `consent_events`, in the order `event_from_row` reads them.
pub const EVENT_COLUMNS: &str = pg_event_columns!();

/// How the pool is sized.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// Connections for reads and configuration writes (the event writer has its own).
    pub max_connections: u32,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        // The server shares PostgreSQL's `max_connections` (100 by default) with every
        // other process on it; a handful per process serves the reads the API does.
        Self { max_connections: 8 }
    }
}

#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    writer: mpsc::Sender<Job>,
    /// Notices read so far. They never change once published (the migration's
    /// `notices_are_immutable` trigger refuses updates and deletes), so a copy never goes
    /// stale, and every consent names one: this saves a round trip per write.
    notices: std::sync::Mutex<HashMap<NoticeId, Notice>>,
}

#[derive(Debug)]
struct Job {
    event: NewEvent,
    reply: oneshot::Sender<StoreResult<StoredEvent>>,
}

/// A `TIMESTAMPTZ` read or written as a [`jiff::Timestamp`] (sqlx has no jiff support):
/// PostgreSQL's binary form is microseconds since 2000-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTimestamp(pub Timestamp);

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// `timestamptz` and `timestamptz[]` (pg_type.dat; built-in OIDs never change).
const TIMESTAMPTZ_OID: Oid = Oid(1184);
const TIMESTAMPTZ_ARRAY_OID: Oid = Oid(1185);

impl Type<Postgres> for PgTimestamp {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_OID)
    }
}

impl PgHasArrayType for PgTimestamp {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY_OID)
    }
}

impl Encode<'_, Postgres> for PgTimestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // Timestamps jiff can hold (years -9999..=9999) all fit: no overflow here.
        buf.extend(&(self.0.as_microsecond() - PG_EPOCH_MICROS).to_be_bytes());
        Ok(IsNull::No)
    }
}

impl Decode<'_, Postgres> for PgTimestamp {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        // Prepared statements (all of ours) answer in the binary format.
        let bytes: [u8; 8] = value.as_bytes()?.try_into().map_err(|_| "a timestamptz is 8 bytes in the binary format")?;
        let micros = i64::from_be_bytes(bytes).checked_add(PG_EPOCH_MICROS).ok_or("timestamptz out of range")?;
        Ok(Self(Timestamp::from_microsecond(micros)?))
    }
}

fn ts(value: Timestamp) -> PgTimestamp {
    PgTimestamp(value)
}

impl PostgresStore {
    /// Connects, migrates (sqlx takes an advisory lock, so several processes may start at
    /// once) and starts the writer.
    pub async fn open(url: &str, settings: PostgresSettings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("cornetta");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let conn = PgConnection::connect_with(&options).await?;
        let (writer, jobs) = mpsc::channel(4096);
        tokio::spawn(run_writer(conn, options, jobs));
        Ok(Self { pool, writer, notices: std::sync::Mutex::default() })
    }

    /// The pool, for tools (verification, bench) that read rows directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

fn site_from_row(row: &PgRow) -> StoreResult<Site> {
    let phones: Vec<String> = row.try_get("phones")?;
    let phones = phones
        .iter()
        .map(|p| PhoneNumber::from_e164(p))
        .collect::<Result<_, _>>()
        .map_err(|e| corrupt("site phone", e))?;
    Ok(Site {
        id: row.try_get("id")?,
        key: SiteKey::parse(row.try_get("key")?).map_err(|e| corrupt("site key", e))?,
        business_name: row.try_get("business_name")?,
        phones,
        allowed_origins: row.try_get("allowed_origins")?,
        default_lang: Lang::parse(row.try_get("default_lang")?).map_err(|e| corrupt("site lang", e))?,
        widget: serde_json::from_str(row.try_get("widget")?).map_err(|e| corrupt("site widget", e))?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
    })
}

fn notice_from_row(row: &PgRow) -> StoreResult<Notice> {
    let purposes: Vec<NoticePurpose> = serde_json::from_str(row.try_get("purposes")?).map_err(|e| corrupt("notice purposes", e))?;
    let version: i32 = row.try_get("version")?;
    Ok(Notice {
        id: NoticeId::parse(row.try_get("id")?).map_err(|e| corrupt("notice id", e))?,
        site_id: row.try_get("site_id")?,
        version: u32::try_from(version).map_err(|e| corrupt("notice version", e))?,
        lang: Lang::parse(row.try_get("lang")?).map_err(|e| corrupt("notice lang", e))?,
        intro: row.try_get("intro")?,
        purposes,
        privacy_url: row.try_get("privacy_url")?,
        canonical_text: row.try_get("canonical_text")?,
        sha256: row.try_get("sha256")?,
        published_at: row.try_get::<PgTimestamp, _>("published_at")?.0,
    })
}

fn token_from_row(row: &PgRow) -> StoreResult<TokenInfo> {
    let role: String = row.try_get("role")?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse().map_err(|e| corrupt("token role", e))?,
        site_id: row.try_get("site_id")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
        revoked_at: row.try_get::<Option<PgTimestamp>, _>("revoked_at")?.map(|t| t.0),
    })
}

fn subject_from_row(row: &PgRow) -> StoreResult<Subject> {
    Ok(Subject {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        lookup: row.try_get("lookup")?,
        wrapped_key: row.try_get("wrapped_key")?,
        created_at: row.try_get::<PgTimestamp, _>("created_at")?.0,
        erased_at: row.try_get::<Option<PgTimestamp>, _>("erased_at")?.map(|t| t.0),
    })
}

/// A stored row as verification reads it: the columns in the text form the leaf encodes
/// (purposes joined by commas in stored order, the time in microseconds, the hash in hex).
fn raw_from_row(row: &PgRow) -> StoreResult<RawEvent> {
    let purposes: Vec<String> = row.try_get("purposes")?;
    let leaf: Vec<u8> = row.try_get("leaf_hash")?;
    Ok(RawEvent {
        id: row.try_get("id")?,
        site_id: row.try_get("site_id")?,
        seq: row.try_get("seq")?,
        action: row.try_get("action")?,
        method: row.try_get("method")?,
        reference: row.try_get("reference")?,
        subject_id: row.try_get("subject_id")?,
        purposes: purposes.join(","),
        notice_id: row.try_get("notice_id")?,
        notice_sha256: row.try_get("notice_sha256")?,
        personal: row.try_get("personal")?,
        details: row.try_get("details")?,
        actor: row.try_get("actor")?,
        recorded_at: row.try_get::<PgTimestamp, _>("recorded_at")?.0.as_microsecond(),
        leaf_hash: hex::encode(leaf),
    })
}

/// Parses a stored event row selected with [`EVENT_COLUMNS`] (shared with verification tools).
pub fn event_from_row(row: &PgRow) -> StoreResult<StoredEvent> {
    let purposes: Vec<String> = row.try_get("purposes")?;
    let purposes = purposes.iter().map(|p| Purpose::from_str(p)).collect::<Result<_, _>>().map_err(|e| corrupt("event purposes", e))?;
    let leaf: Vec<u8> = row.try_get("leaf_hash")?;
    let leaf_hash = <[u8; 32]>::try_from(leaf.as_slice()).map_err(|_| corrupt("event leaf hash", hex::encode(&leaf)))?;
    let action: String = row.try_get("action")?;
    let method: String = row.try_get("method")?;
    let seq: i64 = row.try_get("seq")?;
    Ok(StoredEvent {
        id: EventId::parse(row.try_get("id")?).map_err(|e| corrupt("event id", e))?,
        site_id: row.try_get("site_id")?,
        seq: u64::try_from(seq).map_err(|e| corrupt("event seq", e))?,
        action: action.parse().map_err(|e| corrupt("event action", e))?,
        method: method.parse().map_err(|e| corrupt("event method", e))?,
        reference: Reference::parse(row.try_get("reference")?).map_err(|e| corrupt("event reference", e))?,
        subject_id: row.try_get("subject_id")?,
        purposes,
        notice_id: row
            .try_get::<Option<String>, _>("notice_id")?
            .map(|n| NoticeId::parse(&n))
            .transpose()
            .map_err(|e| corrupt("event notice", e))?,
        notice_sha256: row.try_get("notice_sha256")?,
        personal: row.try_get("personal")?,
        details: row.try_get("details")?,
        actor: row.try_get("actor")?,
        recorded_at: row.try_get::<PgTimestamp, _>("recorded_at")?.0,
        leaf_hash,
    })
}

#[async_trait]
impl super::Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sites (id, key, business_name, phones, allowed_origins, default_lang, widget, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
        )
        .bind(&id)
        .bind(site.key.as_str())
        .bind(&site.business_name)
        .bind(&phones)
        .bind(&site.allowed_origins)
        .bind(site.default_lang.as_str())
        .bind(site.widget.to_string())
        .bind(ts(Timestamp::now()))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO ledger_heads (site_id, next_seq) VALUES ($1, 0)").bind(&id).execute(&mut *tx).await?;
        tx.commit().await?;
        self.site_by_id(&id).await?.ok_or_else(|| StoreError::NotFound("site vanished after insert".into()))
    }

    async fn site_by_key(&self, key: &SiteKey) -> StoreResult<Option<Site>> {
        let row = sqlx::query(concat!("SELECT ", site_columns!(), " FROM sites WHERE key = $1"))
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn site_by_id(&self, id: &str) -> StoreResult<Option<Site>> {
        let row = sqlx::query(concat!("SELECT ", site_columns!(), " FROM sites WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(site_from_row).transpose()
    }

    async fn list_sites(&self) -> StoreResult<Vec<Site>> {
        let rows = sqlx::query(concat!("SELECT ", site_columns!(), " FROM sites ORDER BY created_at, id")).fetch_all(&self.pool).await?;
        rows.iter().map(site_from_row).collect()
    }

    async fn update_site_origins(&self, id: &str, origins: Vec<String>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE sites SET allowed_origins = $1 WHERE id = $2").bind(&origins).bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no site {id}")));
        }
        Ok(())
    }

    async fn update_site_widget(&self, id: &str, widget: serde_json::Value) -> StoreResult<()> {
        let done = sqlx::query("UPDATE sites SET widget = $1::jsonb WHERE id = $2").bind(widget.to_string()).bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no site {id}")));
        }
        Ok(())
    }

    async fn publish_notice(&self, notice: NewNotice) -> StoreResult<Notice> {
        let purposes = serde_json::to_string(&notice.purposes).map_err(|e| corrupt("purposes", e))?;
        let mut tx = self.pool.begin().await?;
        // Two publishers (in two processes) must not both take version N: the site row's
        // lock serialises them. NO KEY UPDATE does not block the foreign-key checks of
        // concurrent inserts (they take KEY SHARE).
        let site = sqlx::query("SELECT 1 FROM sites WHERE id = $1 FOR NO KEY UPDATE").bind(&notice.site_id).fetch_optional(&mut *tx).await?;
        if site.is_none() {
            return Err(StoreError::NotFound(format!("no site {}", notice.site_id)));
        }
        let row = sqlx::query(concat!("INSERT INTO notices (id, site_id, version, lang, intro, purposes, privacy_url, canonical_text, sha256, published_at)
             SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5::jsonb, $6, $7, $8, $9
               FROM notices WHERE site_id = $2 AND lang = $3
             RETURNING ", notice_columns!()))
        .bind(notice.id.as_str())
        .bind(&notice.site_id)
        .bind(notice.lang.as_str())
        .bind(&notice.intro)
        .bind(&purposes)
        .bind(&notice.privacy_url)
        .bind(&notice.canonical_text)
        .bind(&notice.sha256)
        .bind(ts(notice.published_at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        notice_from_row(&row)
    }

    async fn notice(&self, id: &NoticeId) -> StoreResult<Option<Notice>> {
        if let Some(notice) = self.notices.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id) {
            return Ok(Some(notice.clone()));
        }
        let row = sqlx::query(concat!("SELECT ", notice_columns!(), " FROM notices WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let notice = row.as_ref().map(notice_from_row).transpose()?;
        // Only what exists: a notice published later must still be found.
        if let Some(n) = &notice {
            let mut cached = self.notices.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cached.len() >= CACHED_NOTICES {
                cached.clear();
            }
            cached.insert(n.id.clone(), n.clone());
        }
        Ok(notice)
    }

    async fn current_notice(&self, site_id: &str, lang: Lang) -> StoreResult<Option<Notice>> {
        let row = sqlx::query(concat!("SELECT ", notice_columns!(), " FROM notices WHERE site_id = $1 AND lang = $2 ORDER BY version DESC LIMIT 1"))
        .bind(site_id)
        .bind(lang.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(notice_from_row).transpose()
    }

    async fn notices(&self, site_id: &str) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(concat!("SELECT ", notice_columns!(), " FROM notices WHERE site_id = $1 ORDER BY lang COLLATE \"C\", version"))
            .bind(site_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(notice_from_row).collect()
    }

    async fn create_token(&self, token: NewToken) -> StoreResult<TokenInfo> {
        let row = sqlx::query(concat!("INSERT INTO tokens (id, name, role, site_id, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ", token_columns!()))
        .bind(&token.id)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.site_id)
        .bind(&token.hash)
        .bind(ts(Timestamp::now()))
        .fetch_one(&self.pool)
        .await?;
        token_from_row(&row)
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenInfo>> {
        let row = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = $1")).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query(concat!("SELECT ", token_columns!(), " FROM tokens ORDER BY created_at, id")).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(ts(Timestamp::now()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn subject_for_lookup(&self, create: Subject) -> StoreResult<Subject> {
        let lookup = create.lookup.clone().ok_or_else(|| StoreError::Invalid("a looked-up subject needs a lookup hash".into()))?;
        // Two processes may race to create the same person: ON CONFLICT keeps the first.
        sqlx::query(
            "INSERT INTO subjects (id, site_id, lookup, wrapped_key, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (site_id, lookup) DO NOTHING",
        )
        .bind(&create.id)
        .bind(&create.site_id)
        .bind(&lookup)
        .bind(&create.wrapped_key)
        .bind(ts(create.created_at))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(concat!("SELECT ", subject_columns!(), " FROM subjects WHERE site_id = $1 AND lookup = $2"))
            .bind(&create.site_id)
            .bind(&lookup)
            .fetch_one(&self.pool)
            .await?;
        subject_from_row(&row)
    }

    async fn subject(&self, id: &str) -> StoreResult<Option<Subject>> {
        let row = sqlx::query(concat!("SELECT ", subject_columns!(), " FROM subjects WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(subject_from_row).transpose()
    }

    async fn subjects_by_lookup(&self, lookup: &str) -> StoreResult<Vec<Subject>> {
        let rows = sqlx::query(concat!("SELECT ", subject_columns!(), " FROM subjects WHERE lookup = $1 ORDER BY created_at, id"))
            .bind(lookup)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subject_from_row).collect()
    }

    async fn append(&self, event: NewEvent) -> StoreResult<StoredEvent> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(Job { event, reply }).await.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    async fn events(&self, filter: &EventFilter, limit: u32) -> StoreResult<Vec<StoredEvent>> {
        let mut query = QueryBuilder::<Postgres>::new(concat!("SELECT ", pg_event_columns!(), " FROM consent_events WHERE TRUE"));
        push_filter(&mut query, filter);
        query.push(" ORDER BY site_id, seq LIMIT ").push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn grant_by_reference(&self, site_id: &str, reference: &Reference) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query(concat!("SELECT ", pg_event_columns!(), " FROM consent_events WHERE site_id = $1 AND reference = $2 AND action = 'granted'"))
        .bind(site_id)
        .bind(reference.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn event(&self, id: &EventId) -> StoreResult<Option<StoredEvent>> {
        let row = sqlx::query(concat!("SELECT ", pg_event_columns!(), " FROM consent_events WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn tree_size(&self, site_id: &str) -> StoreResult<u64> {
        let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq) + 1, 0) FROM consent_events WHERE site_id = $1")
            .bind(site_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(next as u64)
    }

    async fn leaf_hashes(&self, site_id: &str, from: u64, to: u64) -> StoreResult<Vec<[u8; 32]>> {
        let rows = sqlx::query("SELECT seq, leaf_hash FROM consent_events WHERE site_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq")
            .bind(site_id)
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let seq: i64 = row.try_get(0)?;
            if seq != (from + i as u64) as i64 {
                return Err(StoreError::Corrupt(format!("the log of site {site_id} has no event at seq {}; run `cornetta ledger verify`", from + i as u64)));
            }
            let leaf: Vec<u8> = row.try_get(1)?;
            out.push(<[u8; 32]>::try_from(leaf.as_slice()).map_err(|_| corrupt("event leaf hash", hex::encode(&leaf)))?);
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
        let pool = self.pool.clone();
        let site_id = site_id.to_owned();
        spawn_stream(move |tx| async move {
            let rows = sqlx::query(concat!("SELECT ", pg_event_columns!(), " FROM consent_events WHERE site_id = $1 ORDER BY seq, id"))
                .bind(site_id)
                .fetch(&pool);
            forward_batches(rows, raw_from_row, tx).await;
        })
    }

    async fn add_checkpoint(&self, c: StoredCheckpoint) -> StoreResult<()> {
        sqlx::query("INSERT INTO ledger_checkpoints (id, site_id, tree_size, root_hash, signed_at, note) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&c.id)
            .bind(&c.site_id)
            .bind(c.tree_size as i64)
            .bind(c.root_hash.to_vec())
            .bind(ts(c.signed_at))
            .bind(&c.note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn checkpoints(&self, site_id: &str, before: Option<&str>, limit: u32) -> StoreResult<Vec<StoredCheckpoint>> {
        let rows = sqlx::query(
            "SELECT id, site_id, tree_size, root_hash, signed_at, note FROM ledger_checkpoints
             WHERE site_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(site_id)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let root: Vec<u8> = row.try_get("root_hash")?;
                Ok(StoredCheckpoint {
                    id: row.try_get("id")?,
                    site_id: row.try_get("site_id")?,
                    tree_size: row.try_get::<i64, _>("tree_size")? as u64,
                    root_hash: <[u8; 32]>::try_from(root.as_slice()).map_err(|_| corrupt("checkpoint root", hex::encode(&root)))?,
                    signed_at: row.try_get::<PgTimestamp, _>("signed_at")?.0,
                    note: row.try_get("note")?,
                })
            })
            .collect()
    }

    async fn erase_subjects(&self, ids: &[String], at: Timestamp) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let mut erased = Vec::new();
        for id in ids {
            let done = sqlx::query("UPDATE subjects SET wrapped_key = NULL, lookup = NULL, erased_at = $1 WHERE id = $2 AND erased_at IS NULL")
                .bind(ts(at))
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
        let mut conn = self.pool.acquire().await?;
        let subjects: Vec<String> =
            sqlx::query_scalar("SELECT id FROM subjects WHERE site_id = $1 AND lookup = $2").bind(site_id).bind(lookup).fetch_all(&mut *conn).await?;
        let Some(subject) = subjects.first() else { return Ok(PersonEvents::default()) };
        // The person's own events, and those of the references they confirmed on WhatsApp:
        // one index for each half of the UNION.
        let rows = sqlx::query(concat!(
            "SELECT ",
            pg_event_columns!(),
            " FROM consent_events WHERE subject_id = $2 AND site_id = $1
             UNION
             SELECT ",
            pg_event_columns!(),
            " FROM consent_events WHERE site_id = $1 AND reference IN
                 (SELECT reference FROM consent_events WHERE subject_id = $2 AND action = 'confirmed')
             ORDER BY seq LIMIT $3"
        ))
        .bind(site_id)
        .bind(subject)
        .bind(i64::from(super::MAX_PERSON_EVENTS))
        .fetch_all(&mut *conn)
        .await?;
        Ok(PersonEvents { subjects, events: rows.iter().map(event_from_row).collect::<StoreResult<_>>()? })
    }

    fn export_events(&self, filter: EventFilter) -> RowStream<ExportBatch> {
        use futures::StreamExt;
        let pool = self.pool.clone();
        let rows: RowStream<Vec<ExportRow>> = spawn_stream(move |tx| async move {
            let mut query = QueryBuilder::<Postgres>::new(concat!(
                "SELECT ",
                pg_event_columns!(),
                ", (SELECT s.wrapped_key FROM subjects s WHERE s.id = consent_events.subject_id) AS subject_key FROM consent_events WHERE TRUE"
            ));
            push_filter(&mut query, &filter);
            query.push(" ORDER BY site_id, seq");
            let rows = query.build().fetch(&pool);
            let parse = |row: &PgRow| -> StoreResult<ExportRow> { Ok(ExportRow { event: event_from_row(row)?, wrapped_key: row.try_get("subject_key")? }) };
            forward_batches(rows, parse, tx).await;
        });
        rows.map(|batch| batch.map(ExportBatch::parsed)).boxed()
    }
    fn whatsapp(&self) -> Option<&dyn super::whatsapp::WhatsappStore> {
        Some(self)
    }
}

/// Adds `filter`'s conditions (each `AND …`) to a query on `consent_events`.
pub(crate) fn push_filter(query: &mut QueryBuilder<Postgres>, filter: &EventFilter) {
    if let Some(site) = &filter.site_id {
        query.push(" AND site_id = ").push_bind(site.clone());
    }
    let subjects = filter.subjects.clone().filter(|s| !s.is_empty());
    let references: Option<Vec<String>> =
        filter.references.as_deref().filter(|r| !r.is_empty()).map(|r| r.iter().map(|r| r.as_str().to_owned()).collect());
    match (subjects, references) {
        (None, None) if filter.subjects.is_some() || filter.references.is_some() => {
            // Asked for a person nobody knows: nothing matches.
            query.push(" AND FALSE");
        }
        (None, None) => {}
        (subjects, references) => {
            query.push(" AND (FALSE");
            if let Some(subjects) = subjects {
                query.push(" OR subject_id = ANY(").push_bind(subjects).push(")");
            }
            if let Some(references) = references {
                query.push(" OR reference = ANY(").push_bind(references).push(")");
            }
            query.push(")");
        }
    }
    if let Some(purpose) = filter.purpose {
        query.push(" AND ").push_bind(purpose.as_str()).push(" = ANY(purposes)");
    }
    if let Some(action) = filter.action {
        query.push(" AND action = ").push_bind(action.as_str());
    }
    if let Some(from) = filter.from {
        query.push(" AND recorded_at >= ").push_bind(ts(from));
    }
    if let Some(to) = filter.to {
        query.push(" AND recorded_at < ").push_bind(ts(to));
    }
    if let Some(after) = &filter.after {
        query.push(" AND (site_id, seq) > (").push_bind(after.site_id.clone()).push(", ").push_bind(after.seq as i64).push(")");
    }
}

/// The writer: takes one job, then whatever else is already queued (up to `MAX_BATCH`),
/// writes them in one transaction and answers each job only after `COMMIT` returned.
///
/// A batch refused by a constraint is retried one event per transaction, so that one bad
/// event fails alone; a reused reference is answered `Conflict`. When the connection
/// breaks, the batch is answered with the error (nothing of it acknowledged; a `COMMIT`
/// whose answer was lost may still have landed, which is why the client sees an error and
/// not a success) and the writer reconnects.
async fn run_writer(mut conn: PgConnection, options: PgConnectOptions, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let events: Vec<&NewEvent> = batch.iter().map(|job| &job.event).collect();
        let results = match write_batch(&mut conn, &events, false).await {
            Err(err) if is_reference_conflict(&err) => write_batch(&mut conn, &events, true).await,
            other => other,
        };
        let results = match results {
            Ok(results) => results,
            Err(err) if is_constraint(&err) && events.len() > 1 => {
                tracing::warn!(error = %err, events = events.len(), "a batch was refused; writing its events one by one");
                let mut results = Vec::with_capacity(events.len());
                for event in &events {
                    results.push(match write_batch(&mut conn, &[*event], true).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(StoreError::Corrupt("the writer lost an event".into()))),
                        Err(err) => Err(commit_failed(&err)),
                    });
                }
                results
            }
            Err(err) => {
                tracing::error!(error = %err, events = events.len(), "group commit failed; no event of the batch was acknowledged");
                let message = commit_failed(&err).to_string();
                if conn.ping().await.is_err() {
                    conn = reconnect(&options).await;
                }
                events.iter().map(|_| Err(StoreError::Corrupt(message.clone()))).collect()
            }
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

fn commit_failed(err: &sqlx::Error) -> StoreError {
    StoreError::Corrupt(format!("commit failed: {err}"))
}

async fn reconnect(options: &PgConnectOptions) -> PgConnection {
    let mut wait = Duration::from_millis(50);
    loop {
        match PgConnection::connect_with(options).await {
            Ok(conn) => return conn,
            Err(err) => {
                tracing::error!(error = %err, "the event writer cannot reach PostgreSQL; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn is_reference_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some(ONE_GRANT_PER_REFERENCE))
}

/// A refusal by the schema (unique, foreign key, check), as opposed to a broken connection.
fn is_constraint(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("23")))
}

/// Writes a batch in one transaction; per-event refusals (a reused reference, a site
/// without a ledger head) are in the inner results and are not written.
///
/// Four round trips whatever the batch size: `BEGIN`, lock the sites' heads, one statement
/// inserting every subject and event and moving the heads, `COMMIT`. References are
/// checked against earlier grants only when `check_references` (the retry after the
/// unique index refused the batch): the index is the rule, the check only finds the
/// offender.
async fn write_batch(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    check_references: bool,
) -> Result<Vec<StoreResult<StoredEvent>>, sqlx::Error> {
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    match insert_batch(conn, events, check_references).await {
        Ok(results) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(results)
        }
        Err(err) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(err)
        }
    }
}

/// Column arrays for one multi-row insert (`INSERT … SELECT FROM UNNEST(…)`).
#[derive(Debug, Default)]
struct EventColumns {
    id: Vec<String>,
    site_id: Vec<String>,
    seq: Vec<i64>,
    action: Vec<&'static str>,
    method: Vec<&'static str>,
    reference: Vec<String>,
    subject_id: Vec<String>,
    purposes: Vec<String>,
    notice_id: Vec<Option<String>>,
    notice_sha256: Vec<Option<String>>,
    personal: Vec<Option<Vec<u8>>>,
    details: Vec<String>,
    actor: Vec<String>,
    recorded_at: Vec<PgTimestamp>,
    leaf_hash: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct SubjectColumns {
    id: Vec<String>,
    site_id: Vec<String>,
    lookup: Vec<Option<String>>,
    wrapped_key: Vec<Option<Vec<u8>>>,
    created_at: Vec<PgTimestamp>,
}

/// The stored events with `action` under the references of `events` with that action (site,
/// reference and purposes of each), in one query.
async fn stored_under_references(conn: &mut PgConnection, events: &[&NewEvent], action: Action) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let (site_ids, references): (Vec<&str>, Vec<&str>) = events.iter().filter(|e| e.action == action).map(|e| (e.site_id.as_str(), e.reference.as_str())).unzip();
    sqlx::query(
        "SELECT e.site_id, e.reference, e.purposes FROM consent_events e
           JOIN UNNEST($1::text[], $2::text[]) AS wanted (site_id, reference)
             ON e.site_id = wanted.site_id AND e.reference = wanted.reference
          WHERE e.action = $3",
    )
    .bind(&site_ids)
    .bind(&references)
    .bind(action.as_str())
    .fetch_all(&mut *conn)
    .await
}

async fn insert_batch(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    check_references: bool,
) -> Result<Vec<StoreResult<StoredEvent>>, sqlx::Error> {
    let mut sites: Vec<String> = events.iter().map(|e| e.site_id.clone()).collect();
    sites.sort_unstable();
    sites.dedup();
    // Locked in site order, so that two writers never wait on each other in a cycle.
    let heads = sqlx::query("SELECT site_id, next_seq FROM ledger_heads WHERE site_id = ANY($1) ORDER BY site_id FOR UPDATE")
        .bind(&sites)
        .fetch_all(&mut *conn)
        .await?;
    let mut next_seq: HashMap<String, i64> = HashMap::with_capacity(heads.len());
    for row in &heads {
        next_seq.insert(row.try_get("site_id")?, row.try_get("next_seq")?);
    }
    let mut taken: HashSet<(String, String)> = HashSet::new();
    if check_references {
        for row in &stored_under_references(conn, events, Action::Granted).await? {
            taken.insert((row.try_get("site_id")?, row.try_get("reference")?));
        }
    }
    // The purposes already withdrawn under the withdrawals' references, read under the heads'
    // locks: no other writer can end one of them before this batch commits.
    let mut ended: HashMap<(String, String), Vec<Purpose>> = HashMap::new();
    if events.iter().any(|e| e.action == Action::Withdrawn) {
        for row in &stored_under_references(conn, events, Action::Withdrawn).await? {
            let key = (row.try_get("site_id")?, row.try_get("reference")?);
            super::add_ended(ended.entry(key).or_default(), row.try_get::<Vec<String>, _>("purposes")?);
        }
    }

    let mut ev = EventColumns::default();
    let mut subjects = SubjectColumns::default();
    let mut results = Vec::with_capacity(events.len());
    for &event in events {
        let Some(seq) = next_seq.get_mut(&event.site_id) else {
            results.push(Err(StoreError::NotFound(format!("site {} has no ledger (no such site)", event.site_id))));
            continue;
        };
        if event.action == Action::Granted && !taken.insert((event.site_id.clone(), event.reference.as_str().to_owned())) {
            results.push(Err(StoreError::Conflict(format!("reference {} is already used by another consent at this site", event.reference))));
            continue;
        }
        let trimmed;
        let event = if event.action == Action::Withdrawn {
            let ended = ended.entry((event.site_id.clone(), event.reference.as_str().to_owned())).or_default();
            match super::withdrawal_left(event, ended) {
                Ok(left) => {
                    trimmed = left;
                    let event = trimmed.as_ref().unwrap_or(event);
                    ended.extend_from_slice(&event.purposes);
                    event
                }
                Err(refused) => {
                    results.push(Err(refused));
                    continue;
                }
            }
        } else {
            event
        };
        let stored_seq = *seq;
        *seq += 1;
        let position = u64::try_from(stored_seq).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        if let Some(subject) = &event.new_subject {
            subjects.id.push(subject.id.clone());
            subjects.site_id.push(subject.site_id.clone());
            subjects.lookup.push(subject.lookup.clone());
            subjects.wrapped_key.push(subject.wrapped_key.clone());
            subjects.created_at.push(ts(subject.created_at));
        }
        let leaf_hash = ledger::leaf_hash_of_new(event, position);
        ev.id.push(event.id.as_str().to_owned());
        ev.site_id.push(event.site_id.clone());
        ev.seq.push(stored_seq);
        ev.action.push(event.action.as_str());
        ev.method.push(event.method.as_str());
        ev.reference.push(event.reference.as_str().to_owned());
        ev.subject_id.push(event.subject_id.clone());
        ev.purposes.push(ledger::purposes_column(&event.purposes));
        ev.notice_id.push(event.notice_id.as_ref().map(|n| n.as_str().to_owned()));
        ev.notice_sha256.push(event.notice_sha256.clone());
        ev.personal.push(event.personal.clone());
        ev.details.push(event.details.clone());
        ev.actor.push(event.actor.clone());
        ev.recorded_at.push(ts(event.recorded_at));
        ev.leaf_hash.push(leaf_hash.to_vec());
        let purposes = ledger::stored_purposes(&event.purposes);
        results.push(Ok(StoredEvent {
            id: event.id.clone(),
            site_id: event.site_id.clone(),
            seq: position,
            action: event.action,
            method: event.method,
            reference: event.reference.clone(),
            subject_id: event.subject_id.clone(),
            purposes,
            notice_id: event.notice_id.clone(),
            notice_sha256: event.notice_sha256.clone(),
            personal: event.personal.clone(),
            details: event.details.clone(),
            actor: event.actor.clone(),
            recorded_at: event.recorded_at,
            leaf_hash,
        }));
    }
    if ev.id.is_empty() {
        return Ok(results);
    }
    let (head_sites, head_next): (Vec<String>, Vec<i64>) = next_seq.into_iter().unzip();
    // One statement: the subjects, the events (purposes travel as the stored comma list,
    // as UNNEST cannot carry an array per row), and the heads' new positions. Foreign keys
    // are checked at the end of the statement, so the events see their new subjects.
    sqlx::query(
        "WITH new_subjects AS (
             INSERT INTO subjects (id, site_id, lookup, wrapped_key, created_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::timestamptz[])
         ), new_events AS (
             INSERT INTO consent_events (id, site_id, seq, action, method, reference, subject_id, purposes, notice_id,
                                         notice_sha256, personal, details, actor, recorded_at, leaf_hash)
             SELECT id, site_id, seq, action, method, reference, subject_id, string_to_array(purposes, ','), notice_id,
                    notice_sha256, personal, details, actor, recorded_at, leaf_hash
               FROM UNNEST($6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                           $14::text[], $15::text[], $16::bytea[], $17::text[], $18::text[], $19::timestamptz[], $20::bytea[])
                 AS e (id, site_id, seq, action, method, reference, subject_id, purposes, notice_id,
                       notice_sha256, personal, details, actor, recorded_at, leaf_hash)
         )
         UPDATE ledger_heads SET next_seq = moved.next_seq
           FROM UNNEST($21::text[], $22::bigint[]) AS moved (site_id, next_seq)
          WHERE ledger_heads.site_id = moved.site_id",
    )
    .bind(&subjects.id)
    .bind(&subjects.site_id)
    .bind(&subjects.lookup)
    .bind(&subjects.wrapped_key)
    .bind(&subjects.created_at)
    .bind(&ev.id)
    .bind(&ev.site_id)
    .bind(&ev.seq)
    .bind(&ev.action)
    .bind(&ev.method)
    .bind(&ev.reference)
    .bind(&ev.subject_id)
    .bind(&ev.purposes)
    .bind(&ev.notice_id)
    .bind(&ev.notice_sha256)
    .bind(&ev.personal)
    .bind(&ev.details)
    .bind(&ev.actor)
    .bind(&ev.recorded_at)
    .bind(&ev.leaf_hash)
    .bind(&head_sites)
    .bind(&head_next)
    .execute(&mut *conn)
    .await?;
    Ok(results)
}

//! The store: one trait, a SQLite and a PostgreSQL implementation, chosen once at start-up.
//!
//! Consent events are append-only: the store inserts them and never updates or deletes
//! them (the SQL schema refuses both with triggers). The only mutable rows are
//! configuration (sites, tokens) and subject keys, which erasure destroys (GDPR Art. 17).

pub mod export;
pub mod postgres;
pub mod sqlite;
mod postgres_studio;
mod sqlite_studio;
pub mod studio;
pub mod whatsapp;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use cornetta_shared::api::NoticePurpose;
use cornetta_shared::consent::UnknownName;
use cornetta_shared::{Action, EventId, Lang, Method, NoticeId, PhoneNumber, Purpose, Reference, SiteKey};
use jiff::Timestamp;

pub use export::{ExportBatch, ExportEvent, ExportRow};

/// A shared handle on the chosen store.
pub type DynStore = Arc<dyn Store>;

/// Where the data lives, parsed from `--database-url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path/to/file.db` (created if missing).
    Sqlite(std::path::PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        if let Some(path) = input.strip_prefix("sqlite://").or_else(|| input.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite URL has no file path; expected sqlite://path/to/cornetta.db".into());
            }
            Ok(Self::Sqlite(path.into()))
        } else if input.starts_with("postgres://") || input.starts_with("postgresql://") {
            Ok(Self::Postgres(input.to_owned()))
        } else {
            Err(format!(
                "database URL {:?} is not supported; expected sqlite://FILE or postgres://USER@HOST/DB",
                input.chars().take(60).collect::<String>()
            ))
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // A PostgreSQL URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(_) => f.write_str("postgres://…"),
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A withdrawal none of whose purposes is still in force under its reference: nothing
    /// was written (see [`Store::append`]).
    #[error("{0}")]
    AlreadyWithdrawn(String),
    #[error("the database refused the operation: {0}")]
    Database(#[from] sqlx::Error),
    /// From the rusqlite connections of the SQLite store (`sqlite/direct.rs`, the writer).
    #[error("the database refused the operation: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("the store's writer has stopped")]
    WriterGone,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant: one business and the sites it embeds the widget on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub key: SiteKey,
    /// The business's name, shown in every notice.
    pub business_name: String,
    /// WhatsApp numbers, the first being the default.
    pub phones: Vec<PhoneNumber>,
    /// Origins (`https://shop.example`) allowed to record consent with this site's key.
    pub allowed_origins: Vec<String>,
    pub default_lang: Lang,
    /// The widget's settings (agents, hours, theme…), as JSON; see the widget issue.
    pub widget: serde_json::Value,
    pub created_at: Timestamp,
}

impl Site {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == origin || allowed == "*")
    }
}

/// A site to create.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub key: SiteKey,
    pub business_name: String,
    pub phones: Vec<PhoneNumber>,
    pub allowed_origins: Vec<String>,
    pub default_lang: Lang,
    pub widget: serde_json::Value,
}

/// A published notice version. Immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: NoticeId,
    pub site_id: String,
    pub version: u32,
    pub lang: Lang,
    pub intro: String,
    pub purposes: Vec<NoticePurpose>,
    pub privacy_url: Option<String>,
    /// The exact text shown, one canonical rendering; `sha256` is its hash.
    pub canonical_text: String,
    pub sha256: String,
    pub published_at: Timestamp,
}

/// A notice to publish; the store gives it the next version for its site and language.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub id: NoticeId,
    pub site_id: String,
    pub lang: Lang,
    pub intro: String,
    pub purposes: Vec<NoticePurpose>,
    pub privacy_url: Option<String>,
    pub canonical_text: String,
    pub sha256: String,
    pub published_at: Timestamp,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including creating sites and tokens.
    Admin,
    /// Read consent records, verify the ledger, withdraw on a person's behalf.
    Auditor,
    /// Make campaigns, links and QR codes.
    Marketer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Auditor, Role::Marketer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Marketer => "marketer",
        }
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownName {
            what: "role",
            given: s.chars().take(40).collect(),
            expected: &["admin", "auditor", "marketer"],
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bearer token, as stored (only its SHA-256 is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// `None`: valid for every site.
    pub site_id: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub site_id: Option<String>,
    /// Hex SHA-256 of the secret.
    pub hash: String,
}

/// The person an event is about. Personal data in events is encrypted with the subject's
/// key; erasing the subject destroys the key and leaves the log verifiable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: String,
    pub site_id: String,
    /// Keyed hash (HMAC-SHA256, hex) of the E.164 number; `None` until the number is known.
    pub lookup: Option<String>,
    /// The subject's data key, wrapped with the server's master key; `None` once erased.
    pub wrapped_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub erased_at: Option<Timestamp>,
}

/// An event to append. The store gives it its position (`seq`) and leaf hash.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub site_id: String,
    pub action: Action,
    pub method: Method,
    pub reference: Reference,
    pub subject_id: String,
    /// Created in the same transaction (a widget grant's fresh subject).
    pub new_subject: Option<Subject>,
    /// Stored sorted by name, without duplicates (`ledger::stored_purposes`).
    pub purposes: Vec<Purpose>,
    pub notice_id: Option<NoticeId>,
    pub notice_sha256: Option<String>,
    /// Encrypted personal evidence (number, page URL, IP, user agent, reason).
    pub personal: Option<Vec<u8>>,
    /// Non-personal details as canonical JSON (e.g. a webhook message id hash).
    pub details: String,
    /// Who caused it: `widget`, `token:<id>`, `whatsapp`, `cli`.
    pub actor: String,
    pub recorded_at: Timestamp,
}

/// A withdrawal as it may still be written, given `ended`: the purposes that withdrawals
/// already in the log (or earlier in the same batch) ended under its reference. `Ok(None)`
/// when all of its purposes are still in force, the event with only those when some are,
/// `AlreadyWithdrawn` when none is. Any other event is written as it is.
fn withdrawal_left(event: &NewEvent, ended: &[Purpose]) -> StoreResult<Option<NewEvent>> {
    if event.action != Action::Withdrawn || !event.purposes.iter().any(|p| ended.contains(p)) {
        return Ok(None);
    }
    let purposes: Vec<Purpose> = event.purposes.iter().copied().filter(|p| !ended.contains(p)).collect();
    if purposes.is_empty() {
        return Err(StoreError::AlreadyWithdrawn(format!("every purpose of reference {} is already withdrawn", event.reference)));
    }
    Ok(Some(NewEvent { purposes, ..event.clone() }))
}

/// Adds the purposes an earlier withdrawal stored (their names) to `ended`.
fn add_ended<S: AsRef<str>>(ended: &mut Vec<Purpose>, names: impl IntoIterator<Item = S>) {
    ended.extend(names.into_iter().filter_map(|name| name.as_ref().parse::<Purpose>().ok()));
}

/// An event as stored: committed, with its position in the site's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub site_id: String,
    pub seq: u64,
    pub action: Action,
    pub method: Method,
    pub reference: Reference,
    pub subject_id: String,
    pub purposes: Vec<Purpose>,
    pub notice_id: Option<NoticeId>,
    pub notice_sha256: Option<String>,
    pub personal: Option<Vec<u8>>,
    pub details: String,
    pub actor: String,
    pub recorded_at: Timestamp,
    pub leaf_hash: [u8; 32],
}

/// Which events to list. Conditions combine with AND; `subjects` and `references`
/// together match either (a person's own events, and the grants their references name).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub site_id: Option<String>,
    pub subjects: Option<Vec<String>>,
    pub references: Option<Vec<Reference>>,
    pub purpose: Option<Purpose>,
    pub action: Option<Action>,
    /// Inclusive.
    pub from: Option<Timestamp>,
    /// Exclusive.
    pub to: Option<Timestamp>,
    /// Only events after this place in log order (cursor pagination).
    pub after: Option<LogPosition>,
}

/// A place in the logs: site by site (by site id), each site's events in `seq` order.
///
/// Pages follow this order, not the time-ordered event ids: ids are made before the
/// writer commits, so an event can commit after a later-id one was already listed, and an
/// id cursor would skip it for good. `seq` is given under the site's log head, in commit
/// order, so a page never passes over an event that is still to commit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub site_id: String,
    pub seq: u64,
}

impl LogPosition {
    pub fn of(event: &StoredEvent) -> Self {
        Self { site_id: event.site_id.clone(), seq: event.seq }
    }

    /// The cursor the API gives out: `<site id>.<seq>`.
    pub fn to_cursor(&self) -> String {
        format!("{}.{}", self.site_id, self.seq)
    }

    pub fn parse_cursor(cursor: &str) -> Option<Self> {
        let (site_id, seq) = cursor.rsplit_once('.')?;
        let well_formed = site_id.strip_prefix("site_").is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let seq = seq.parse::<u64>().ok().filter(|s| i64::try_from(*s).is_ok())?;
        well_formed.then(|| Self { site_id: site_id.to_owned(), seq })
    }
}

/// A stored event row exactly as it is in the database, unparsed: what ledger verification
/// recomputes (a tampered row must be reported, not fail to parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub id: String,
    pub site_id: String,
    pub seq: i64,
    pub action: String,
    pub method: String,
    pub reference: String,
    pub subject_id: String,
    pub purposes: String,
    pub notice_id: Option<String>,
    pub notice_sha256: Option<String>,
    pub personal: Option<Vec<u8>>,
    pub details: String,
    pub actor: String,
    pub recorded_at: i64,
    pub leaf_hash: String,
}

/// A signed checkpoint of a site's log (see `ledger::checkpoint`). Append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// `ckp_<UUIDv7>`, time-ordered.
    pub id: String,
    pub site_id: String,
    pub tree_size: u64,
    pub root_hash: [u8; 32],
    pub signed_at: Timestamp,
    /// The whole C2SP signed note; the other fields repeat what it says.
    pub note: String,
}

/// What [`Store::person_events`] finds.
#[derive(Debug, Clone, Default)]
pub struct PersonEvents {
    /// The person's subject ids at the site (none when the number is unknown there).
    pub subjects: Vec<String>,
    pub events: Vec<StoredEvent>,
}

/// Most events [`Store::person_events`] returns for one person.
pub const MAX_PERSON_EVENTS: u32 = 10_000;

/// A stream of store rows that owns what it needs (it can be an HTTP body).
pub type RowStream<T> = futures::stream::BoxStream<'static, StoreResult<T>>;

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend, for logs and `/healthz`.
    fn backend(&self) -> &'static str;

    async fn ping(&self) -> StoreResult<()>;

    async fn create_site(&self, site: NewSite) -> StoreResult<Site>;
    async fn site_by_key(&self, key: &SiteKey) -> StoreResult<Option<Site>>;
    async fn site_by_id(&self, id: &str) -> StoreResult<Option<Site>>;
    /// Oldest first.
    async fn list_sites(&self) -> StoreResult<Vec<Site>>;
    async fn update_site_origins(&self, id: &str, origins: Vec<String>) -> StoreResult<()>;
    /// Replaces the site's widget settings (already checked; see `widget_settings::check`).
    async fn update_site_widget(&self, id: &str, widget: serde_json::Value) -> StoreResult<()> {
        let _ = (id, widget);
        Err(StoreError::Invalid(format!("the {} store cannot change widget settings yet", self.backend())))
    }

    async fn publish_notice(&self, notice: NewNotice) -> StoreResult<Notice>;
    async fn notice(&self, id: &NoticeId) -> StoreResult<Option<Notice>>;
    /// The newest version for that site and language.
    async fn current_notice(&self, site_id: &str, lang: Lang) -> StoreResult<Option<Notice>>;
    /// Every version of every language of a site's notices, by language, then version.
    async fn notices(&self, site_id: &str) -> StoreResult<Vec<Notice>>;

    async fn create_token(&self, token: NewToken) -> StoreResult<TokenInfo>;
    /// A token by its hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;
    async fn list_tokens(&self) -> StoreResult<Vec<TokenInfo>>;
    /// Returns false when no unrevoked token has that id.
    async fn revoke_token(&self, id: &str) -> StoreResult<bool>;

    /// Gets the subject for a number at a site, creating it with `create`'s key if new.
    async fn subject_for_lookup(&self, create: Subject) -> StoreResult<Subject>;
    async fn subject(&self, id: &str) -> StoreResult<Option<Subject>>;
    /// Every site's subject for that lookup hash.
    async fn subjects_by_lookup(&self, lookup: &str) -> StoreResult<Vec<Subject>>;

    /// Appends one event, durably: when this returns `Ok`, the event is committed.
    /// A second `granted` with a reference already used at that site is a `Conflict`.
    /// A `withdrawn` keeps only the purposes still in force under its reference, decided
    /// in the writing transaction (so two withdrawals at once never both end a purpose);
    /// with none left it is `AlreadyWithdrawn` and nothing is written.
    async fn append(&self, event: NewEvent) -> StoreResult<StoredEvent>;
    /// Events matching `filter` in log order (`LogPosition`: site by site, each by seq), at
    /// most `limit`.
    async fn events(&self, filter: &EventFilter, limit: u32) -> StoreResult<Vec<StoredEvent>>;
    /// The `granted` event of a reference at a site.
    async fn grant_by_reference(&self, site_id: &str, reference: &Reference) -> StoreResult<Option<StoredEvent>>;
    async fn event(&self, id: &EventId) -> StoreResult<Option<StoredEvent>>;

    // --- The ledger (issue 3): Merkle tree, checkpoints, verification, erasure, export. ---

    /// The number of events in a site's log, its Merkle tree size: `MAX(seq) + 1`.
    async fn tree_size(&self, site_id: &str) -> StoreResult<u64>;
    /// Stored leaf hashes of positions `from..to` of a site's log, in `seq` order. A
    /// position with no row is `Corrupt` (the log has a gap: run `cornetta ledger verify`).
    async fn leaf_hashes(&self, site_id: &str, from: u64, to: u64) -> StoreResult<Vec<[u8; 32]>>;
    /// Every row of a site's log exactly as stored, in `(seq, id)` order, in batches.
    fn raw_events(&self, site_id: &str) -> RowStream<Vec<RawEvent>>;
    /// Stores a signed checkpoint.
    async fn add_checkpoint(&self, checkpoint: StoredCheckpoint) -> StoreResult<()>;
    /// A site's checkpoints, newest first, those with an id below `before` when given.
    async fn checkpoints(&self, site_id: &str, before: Option<&str>, limit: u32) -> StoreResult<Vec<StoredCheckpoint>>;
    /// Destroys the keys of these subjects and forgets their lookup hash (GDPR Art. 17);
    /// returns the ids that were erased by this call (already erased ones are skipped).
    async fn erase_subjects(&self, ids: &[String], at: Timestamp) -> StoreResult<Vec<String>>;
    /// A person's subject at a site (by lookup hash) and every event that can bear on their
    /// consent: their subject's events and those carrying a reference confirmed to them,
    /// in `seq` order (status lookups; see `status::derive`).
    async fn person_events(&self, site_id: &str, lookup: &str) -> StoreResult<PersonEvents>;
    /// Events matching `filter` in log order with their subjects' wrapped keys, streamed
    /// from the database cursor in constant memory (exports).
    fn export_events(&self, filter: EventFilter) -> RowStream<ExportBatch>;
    /// The QR studio's tables (campaigns, scans, console sessions), when this backend has them.
    fn studio(&self) -> Option<&dyn studio::StudioStore> {
        None
    }

    /// The WhatsApp webhook's tables; `None` on a backend that does not have them yet.
    fn whatsapp(&self) -> Option<&dyn whatsapp::WhatsappStore> {
        None
    }
}

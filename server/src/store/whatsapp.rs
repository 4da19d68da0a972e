//! The store's part for the WhatsApp Cloud API webhook: configured Meta apps, the business
//! numbers they serve, per-site opt-out settings, and the record of inbound messages that
//! makes deliveries idempotent and gives the 24-hour customer-service window.
//!
//! A separate trait so that the main `Store` trait only gains one method
//! (`Store::whatsapp`); each backend implements it next to its own code.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use cornetta_shared::consent::UnknownName;
use cornetta_shared::{PhoneNumber, Reference};
use jiff::Timestamp;

use super::{NewEvent, StoreResult, StoredEvent};

/// Meta's id of a business phone number (`value.metadata.phone_number_id`): digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumberId(String);

/// Longest phone number id accepted; Meta's are about 15 digits.
pub const MAX_PHONE_NUMBER_ID_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phone number id {0:?} is malformed; expected the digits Meta shows for the number (e.g. 106540352242922)")]
pub struct PhoneNumberIdError(pub String);

impl PhoneNumberId {
    pub fn parse(input: &str) -> Result<Self, PhoneNumberIdError> {
        let ok = (1..=MAX_PHONE_NUMBER_ID_LEN).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit());
        if ok { Ok(Self(input.to_owned())) } else { Err(PhoneNumberIdError(input.chars().take(40).collect())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumberId({})", self.0)
    }
}

/// A configured Meta app, as stored. The secret stays encrypted here; `whatsapp::apps`
/// opens it with the keyring.
#[derive(Clone, PartialEq, Eq)]
pub struct MetaApp {
    /// `waa_<uuid>`.
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the webhook verify token.
    pub verify_token_sha256: String,
    /// A random data key, wrapped with the master key and bound to `id`.
    pub secret_key_wrapped: Vec<u8>,
    /// The app secret, sealed with that data key.
    pub secret_sealed: Vec<u8>,
    pub created_at: Timestamp,
}

impl fmt::Debug for MetaApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaApp").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

/// A site's business number mapped from Meta's phone number id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaNumber {
    pub phone_number_id: PhoneNumberId,
    pub site_id: String,
    /// The business's own number (one of the site's numbers).
    pub phone: PhoneNumber,
    /// The Meta app whose secret signs this number's notifications.
    pub app_id: String,
    pub created_at: Timestamp,
}

/// A site's opt-out settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOutSettings {
    /// Normalised keywords replacing the built-in list; `None`: the built-in list.
    pub keywords: Option<Vec<String>>,
    /// Text to confirm an opt-out with; `None`: no reply.
    pub reply: Option<String>,
}

/// What an inbound message led to; the stored column has a matching CHECK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its reference bound a consent to the sender's number.
    Confirmed,
    /// Its reference was already bound to this number.
    AlreadyConfirmed,
    /// Its reference is bound (or was given) to another number: nothing recorded.
    ReferenceTaken,
    /// It named a reference no consent of this site has.
    UnknownReference,
    /// An opt-out keyword: consents withdrawn.
    Withdrawn,
    /// An opt-out keyword from a number with no consent in force.
    NothingToWithdraw,
    /// Nothing about consent (another text, an image, a reaction…).
    None,
    /// Meta withheld the sender's number (a username user), so nothing can be bound.
    NoNumber,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Confirmed,
        Outcome::AlreadyConfirmed,
        Outcome::ReferenceTaken,
        Outcome::UnknownReference,
        Outcome::Withdrawn,
        Outcome::NothingToWithdraw,
        Outcome::None,
        Outcome::NoNumber,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::AlreadyConfirmed => "already_confirmed",
            Outcome::ReferenceTaken => "reference_taken",
            Outcome::UnknownReference => "unknown_reference",
            Outcome::Withdrawn => "withdrawn",
            Outcome::NothingToWithdraw => "nothing_to_withdraw",
            Outcome::None => "none",
            Outcome::NoNumber => "no_number",
        }
    }
}

impl FromStr for Outcome {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| UnknownName {
            what: "message outcome",
            given: s.chars().take(40).collect(),
            expected: &[
                "confirmed",
                "already_confirmed",
                "reference_taken",
                "unknown_reference",
                "withdrawn",
                "nothing_to_withdraw",
                "none",
                "no_number",
            ],
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Re-checked inside the write transaction before a `confirmed` event is stored, so that two
/// numbers sending the same reference at once cannot both bind it: the first one wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmGuard {
    pub reference: Reference,
    /// The sender's subject.
    pub subject_id: String,
}

/// One inbound message of a known number, to record at most once.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub site_id: String,
    /// Keyed hash of Meta's message id (a wamid encodes the sender's number).
    pub message_key: String,
    pub phone_number_id: PhoneNumberId,
    /// HMAC of the sender's E.164 number; `None` when Meta withheld it.
    pub lookup: Option<String>,
    pub kind: String,
    pub outcome: Outcome,
    /// When the person sent it (Meta's `timestamp`, never later than `received_at`).
    pub sent_at: Timestamp,
    pub received_at: Timestamp,
    pub guard: Option<ConfirmGuard>,
}

/// What recording an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    /// First delivery: the message and its events are committed.
    Recorded { outcome: Outcome, events: Vec<StoredEvent> },
    /// A retry of a message already recorded: nothing was written.
    Duplicate,
}

#[async_trait]
pub trait WhatsappStore: Send + Sync + fmt::Debug {
    async fn create_app(&self, app: MetaApp) -> StoreResult<MetaApp>;
    /// Oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<MetaApp>>;
    /// `false` when no app has that id; a `Conflict` while numbers still use it.
    async fn remove_app(&self, id: &str) -> StoreResult<bool>;

    /// A `Conflict` when the phone number id is already mapped.
    async fn add_number(&self, number: WaNumber) -> StoreResult<WaNumber>;
    async fn number(&self, id: &PhoneNumberId) -> StoreResult<Option<WaNumber>>;
    /// Oldest first.
    async fn list_numbers(&self) -> StoreResult<Vec<WaNumber>>;
    async fn remove_number(&self, id: &PhoneNumberId) -> StoreResult<bool>;

    async fn opt_out_settings(&self, site_id: &str) -> StoreResult<OptOutSettings>;
    async fn set_opt_out_settings(&self, site_id: &str, settings: OptOutSettings) -> StoreResult<()>;

    /// Records a message and the events it causes in one transaction, durably; a message
    /// already recorded (same site and message key) writes nothing and is a `Duplicate`.
    async fn record_inbound(&self, message: InboundMessage, events: Vec<NewEvent>) -> StoreResult<InboundOutcome>;
    /// When the person with that lookup hash last wrote to the site, if ever.
    async fn last_inbound(&self, site_id: &str, lookup: &str) -> StoreResult<Option<Timestamp>>;
    /// Forgets which messages a number sent (at one site, or every site): their lookup hash
    /// goes, the message keys stay so that Meta's retries are still recognised. Part of an
    /// erasure (GDPR Art. 17). Returns how many messages were unlinked.
    async fn forget_sender(&self, site_id: Option<&str>, lookup: &str) -> StoreResult<u64>;
}

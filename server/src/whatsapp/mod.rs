//! The WhatsApp Cloud API webhook: binding a web opt-in to the person's WhatsApp number
//! when their first message carries the consent's reference, honouring opt-outs sent on
//! WhatsApp, and the 24-hour customer-service window.
//!
//! Meta's documentation followed here (WhatsApp Business Platform, "Create a webhook
//! endpoint", "messages webhook reference", Graph API "Webhooks: Getting Started"):
//! - `GET` verification: `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`; answer
//!   the challenge when the token is yours.
//! - `POST` notifications: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the payload with
//!   the app secret>`, computed over the payload as sent, whose non-ASCII characters Meta
//!   escapes (`\u00e4`), so only the raw bytes verify. Payloads can be up to 3 MB; a
//!   delivery not answered 200 is retried with decreasing frequency for up to 7 days.
//! - The body is a `whatsapp_business_account` object: `entry[].changes[]` with
//!   `field: "messages"` and a `value` holding `metadata.phone_number_id`, `contacts[]`,
//!   `messages[]` (`from`, `id`, `timestamp` in Unix seconds, `type`, `text.body`) or
//!   `statuses[]`.
//!
//! Parts: `notification` (the payload), `signature` (the header), `apps` (Meta apps and
//! numbers, secrets at rest), `optout` (keywords), `inbound` (what a message records),
//! `window` (the 24-hour customer-service window), `cli`. Consent status is the ledger's
//! (`crate::status`), derived from events.

pub mod apps;
pub mod cli;
pub mod inbound;
pub mod notification;
pub mod optout;
pub mod signature;
pub mod window;

/// Largest notification accepted: Meta documents payloads of up to 3 MB.
pub const WEBHOOK_BODY_LIMIT: usize = 3 * 1024 * 1024;

/// The `actor` of events the webhook records.
pub const ACTOR: &str = "whatsapp";

//! The JSON shapes of Cornetta's HTTP API, used by the server and the widget alike.
//!
//! Requests deny unknown fields: a misspelt field in consent evidence must be an error,
//! not silently dropped data. Times are RFC 3339 strings in UTC.

use serde::{Deserialize, Serialize};

use crate::consent::{Action, EventId, Lang, Method, NoticeId, Purpose, Reference, SiteKey};

/// The body of every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `invalid_phone` or `payload_too_large`.
    pub code: String,
    /// A sentence for people: what failed and what was expected.
    pub message: String,
}

/// `GET /v1/link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkResponse {
    pub url: String,
    /// The number in E.164 form, `+` included.
    pub phone: String,
}

/// `POST /v1/consents`: a visitor's grant, sent by the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// The site's public key; the request's `Origin` must be one of its allowed origins.
    pub site: SiteKey,
    /// The exact notice version the visitor was shown.
    pub notice: NoticeId,
    /// The purposes the visitor ticked: at least one, no duplicates.
    pub purposes: Vec<Purpose>,
    /// A reference the widget chose before the click, so that the wa.me link could open
    /// at once (a window opened after an awaited request is blocked). The server makes
    /// one when absent; a reference already in use is a 409.
    #[serde(default)]
    pub reference: Option<Reference>,
    /// The page the consent was given on.
    #[serde(default)]
    pub page_url: Option<String>,
    /// The person's number when known (forms, API); a widget grant learns it from the
    /// person's first WhatsApp message instead.
    #[serde(default)]
    pub phone: Option<String>,
    /// The prefilled message the chat opens with; the reference is added when missing.
    #[serde(default)]
    pub text: Option<String>,
}

/// The answer to `POST /v1/consents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentCreated {
    pub id: EventId,
    pub reference: Reference,
    /// The wa.me link whose prefilled text carries the reference.
    pub link: String,
    pub recorded_at: String,
    pub notice_sha256: String,
}

/// `POST /v1/consents/{ref}/withdraw`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsent {
    /// Required from the widget (public endpoint); absent for auditors and admins.
    #[serde(default)]
    pub site: Option<SiteKey>,
    /// Purposes to withdraw; all of the consent's purposes when absent.
    #[serde(default)]
    pub purposes: Option<Vec<Purpose>>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One purpose's line in a notice, shown next to its own unticked box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticePurpose {
    pub purpose: Purpose,
    /// e.g. "I agree that Acme Shop may send me order updates on WhatsApp".
    pub label: String,
}

/// A published notice version as shown to visitors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeView {
    pub id: NoticeId,
    pub version: u32,
    pub lang: Lang,
    /// The sentence above the boxes.
    pub intro: String,
    pub purposes: Vec<NoticePurpose>,
    #[serde(default)]
    pub privacy_url: Option<String>,
    /// SHA-256 (hex) of the notice's canonical text, the text a consent points at.
    pub sha256: String,
    pub published_at: String,
}

/// `GET /v1/sites/{key}/widget`: what the widget needs to draw a site's panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WidgetConfig {
    pub site: SiteKey,
    pub business: String,
    /// The number chats go to, E.164.
    pub phone: String,
    /// The prefilled message template (`{title}`, `{url}`, `{ref}`, `{agent}`).
    #[serde(default)]
    pub text: Option<String>,
    /// The notice in the visitor's language (or the site's default language).
    #[serde(default)]
    pub notice: Option<NoticeView>,
    /// The site's greeting in the visitor's language; the widget's own when absent.
    #[serde(default)]
    pub greeting: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// The privacy policy (the notice's own `privacy_url` wins).
    #[serde(default)]
    pub privacy_url: Option<String>,
    /// Who answers; empty means the site's number.
    #[serde(default)]
    pub agents: Vec<crate::widget::AgentView>,
    /// The site's business hours; always open when absent.
    #[serde(default)]
    pub hours: Option<crate::widget::Hours>,
    /// Whether the site is open by `hours` at the moment of this answer (absent with no
    /// hours). The widget shows this and each agent's `now`; it reads no clock itself.
    #[serde(default)]
    pub now: Option<crate::widget::OpenNow>,
    #[serde(default)]
    pub outside_hours: crate::widget::OutsideHours,
    #[serde(default)]
    pub consent: crate::widget::ConsentMode,
}

/// One consent event as auditors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEventView {
    pub id: EventId,
    pub site: SiteKey,
    /// Position in the site's log, from 0.
    pub seq: u64,
    pub action: Action,
    pub method: Method,
    pub reference: Reference,
    /// The person's number, when known and not erased.
    pub phone: Option<String>,
    pub purposes: Vec<Purpose>,
    pub notice: Option<NoticeId>,
    pub notice_sha256: Option<String>,
    /// The notice's canonical text, exactly as shown (EDPB 05/2020 ¶108).
    pub notice_text: Option<String>,
    pub page_url: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub recorded_at: String,
    /// RFC 6962 leaf hash (hex) of the stored event.
    pub leaf_hash: String,
    /// The WhatsApp message behind a `confirmed` or `withdrawn` event (method `whatsapp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappEvidence>,
}

/// The WhatsApp message an event rests on, kept encrypted with the person's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsappEvidence {
    /// Meta's message id (`wamid.…`).
    pub message_id: String,
    /// When the person sent it (Meta's `timestamp`), RFC 3339.
    pub sent_at: String,
    /// The business number's id at Meta (`value.metadata.phone_number_id`).
    pub phone_number_id: String,
    /// SHA-256 (hex) of the raw notification body, exactly as Meta signed it.
    pub body_sha256: String,
    /// The message text (or the tapped button's text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentPage {
    pub events: Vec<ConsentEventView>,
    /// Pass as `cursor=` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

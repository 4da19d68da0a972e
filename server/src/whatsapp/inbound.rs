//! What an inbound WhatsApp message records, once its delivery's signature held.
//!
//! - A text carrying a reference of a consent of that site → `confirmed`: the consent is
//!   bound to the sender's number (the first number to send a reference keeps it).
//! - A whole-message opt-out keyword (or a quick-reply button with one) → `withdrawn`, for
//!   every purpose still in force of every consent of that number at that site.
//! - Anything else records nothing about consent.
//!
//! Every message of a known number is recorded once (Meta retries deliveries), in the same
//! transaction as its events, with its time for the customer-service window. The events'
//! evidence (message id, time, hash of the raw body, the sender's number, the text) is
//! encrypted with the sender's subject key; the plain columns hold nothing personal.
//! Everything is committed before the handler answers 200, so a delivery Meta sees as
//! accepted is never lost, and a retry after a failure records what is missing.

use std::collections::HashMap;

use cornetta_shared::api::WhatsappEvidence;
use cornetta_shared::{Action, EventId, Method, PhoneNumber, Purpose, Reference};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::notification::{Message, Notification};
use super::{ACTOR, apps, optout};
use crate::consents::{Evidence, new_event_id, now};
use crate::error::ApiError;
use crate::keys::Keyring;
use crate::store::whatsapp::{ConfirmGuard, InboundMessage, InboundOutcome, MetaApp, OptOutSettings, Outcome, PhoneNumberId, WhatsappStore};
use crate::store::{DynStore, NewEvent, Site, StoredEvent, Subject};

/// How many reference-looking words of one message are looked up (ordinary words can look
/// like references; the prefilled message has exactly one).
const MAX_REFERENCE_CANDIDATES: usize = 8;
/// Domain of the keyed hash that stands in for a message id.
const MESSAGE_KEY_DOMAIN: &str = "cornetta/whatsapp-message-id/v1";

/// An opt-out confirmation to send. Sending is not Cornetta's job yet: it is handed back to
/// the caller (and logged without the number), for whatever sends messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub phone_number_id: PhoneNumberId,
    pub to: PhoneNumber,
    pub text: String,
}

/// What one delivery did, with nothing personal in it but the replies' recipients.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Messages read from the notification.
    pub messages: usize,
    /// Recorded for the first time.
    pub recorded: usize,
    /// Already recorded (Meta's retries): nothing written.
    pub duplicates: usize,
    /// For numbers this server does not know, or signed by another app.
    pub ignored: usize,
    /// `statuses[]` items, ignored.
    pub statuses: usize,
    /// Other things skipped (other fields, unreadable items).
    pub skipped: usize,
    /// Outcomes of the recorded messages.
    pub outcomes: Vec<Outcome>,
    /// Consent events recorded.
    pub events: Vec<EventId>,
    pub replies: Vec<Reply>,
}

/// One delivery: the app whose secret signed it and the raw body as received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub app: &'a MetaApp,
    pub body: &'a [u8],
    pub received_at: Timestamp,
}

/// Site data looked up once per delivery.
#[derive(Debug)]
struct SiteContext {
    site: Site,
    keywords: Vec<String>,
    settings: OptOutSettings,
}

/// Records a signed, parsed notification. Store failures are errors (answered 500, so Meta
/// retries; what was already recorded is then skipped as a duplicate).
pub async fn process(store: &DynStore, keys: &Keyring, delivery: Delivery<'_>, notification: Notification) -> Result<Report, ApiError> {
    let wa = apps::tables(store)?;
    let body_sha256 = hex::encode(Sha256::digest(delivery.body));
    let mut report = Report {
        messages: notification.messages.len(),
        statuses: notification.statuses,
        skipped: notification.skipped.len(),
        ..Report::default()
    };
    let mut sites: HashMap<String, SiteContext> = HashMap::new();
    for message in notification.messages {
        let Some(number) = wa.number(&message.phone_number_id).await? else {
            tracing::warn!(phone_number_id = %message.phone_number_id, "a message for a phone number id no site has; ignored (map it with `cornetta whatsapp number add`)");
            report.ignored += 1;
            continue;
        };
        if number.app_id != delivery.app.id {
            tracing::warn!(phone_number_id = %message.phone_number_id, app = %delivery.app.id, "a message for a number of another Meta app; ignored");
            report.ignored += 1;
            continue;
        }
        if !sites.contains_key(&number.site_id) {
            let site = store
                .site_by_id(&number.site_id)
                .await?
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("site {} of number {} is missing", number.site_id, number.phone_number_id)))?;
            let settings = wa.opt_out_settings(&site.id).await?;
            let keywords = apps::keywords_in_force(&settings);
            sites.insert(number.site_id.clone(), SiteContext { site, keywords, settings });
        }
        let ctx = &sites[&number.site_id];
        let decided = decide(store, keys, ctx, &message, &body_sha256, delivery.received_at).await?;
        let record = InboundMessage {
            site_id: ctx.site.id.clone(),
            message_key: keys.keyed_hash(MESSAGE_KEY_DOMAIN, message.id.as_bytes()),
            phone_number_id: message.phone_number_id.clone(),
            lookup: message.from.as_ref().map(|p| keys.phone_lookup(p)),
            kind: message.kind.clone(),
            outcome: decided.outcome,
            sent_at: sent_at(&message, delivery.received_at),
            received_at: delivery.received_at,
            guard: decided.guard,
        };
        match wa.record_inbound(record, decided.events).await? {
            InboundOutcome::Duplicate => report.duplicates += 1,
            InboundOutcome::Recorded { outcome, events } => {
                report.recorded += 1;
                report.outcomes.push(outcome);
                tracing::info!(site = %ctx.site.key, kind = %message.kind, outcome = %outcome, events = events.len(), "WhatsApp message recorded");
                report.events.extend(events.into_iter().map(|e| e.id));
                if matches!(outcome, Outcome::Withdrawn | Outcome::NothingToWithdraw)
                    && let (Some(text), Some(to)) = (&ctx.settings.reply, &message.from)
                {
                    report.replies.push(Reply { phone_number_id: message.phone_number_id.clone(), to: to.clone(), text: text.clone() });
                }
            }
        }
    }
    Ok(report)
}

/// When the person sent it: Meta's timestamp, but never after we received it (a skewed
/// clock must not stretch the 24-hour window).
fn sent_at(message: &Message, received_at: Timestamp) -> Timestamp {
    match message.sent_at {
        Some(t) if t <= received_at => t,
        _ => received_at,
    }
}

#[derive(Debug)]
struct Decision {
    outcome: Outcome,
    events: Vec<NewEvent>,
    guard: Option<ConfirmGuard>,
}

impl Decision {
    /// An outcome without events.
    fn only(outcome: Outcome) -> Self {
        Self { outcome, events: Vec::new(), guard: None }
    }
}

async fn decide(
    store: &DynStore,
    keys: &Keyring,
    ctx: &SiteContext,
    message: &Message,
    body_sha256: &str,
    received_at: Timestamp,
) -> Result<Decision, ApiError> {
    let Some(phone) = &message.from else {
        return Ok(Decision::only(Outcome::NoNumber));
    };
    let evidence = |text: Option<&String>| Evidence {
        phone: Some(phone.to_string()),
        whatsapp: Some(WhatsappEvidence {
            message_id: message.id.clone(),
            sent_at: sent_at(message, received_at).to_string(),
            phone_number_id: message.phone_number_id.to_string(),
            body_sha256: body_sha256.to_owned(),
            text: text.cloned(),
        }),
        ..Evidence::default()
    };
    let opt_out_text = message.text.as_ref().or(message.button_text.as_ref());
    if let Some(text) = opt_out_text.filter(|t| optout::is_opt_out(t, &ctx.keywords)) {
        let subject = subject_for(store, keys, &ctx.site, phone).await?;
        let mut events = Vec::new();
        for (grant, purposes) in consents_in_force(store, keys, &ctx.site, phone).await? {
            events.push(sealed_event(keys, &subject, &grant, Action::Withdrawn, purposes, message, &evidence(Some(text)))?);
        }
        let outcome = if events.is_empty() { Outcome::NothingToWithdraw } else { Outcome::Withdrawn };
        return Ok(Decision { outcome, events, guard: None });
    }
    let Some(text) = &message.text else {
        return Ok(Decision::only(Outcome::None));
    };
    let mut candidates = 0;
    for reference in Reference::find_all_in(text).take(MAX_REFERENCE_CANDIDATES) {
        candidates += 1;
        let Some(grant) = store.grant_by_reference(&ctx.site.id, &reference).await? else { continue };
        let lookup = keys.phone_lookup(phone);
        let granted_to = store.subject(&grant.subject_id).await?.and_then(|s| s.lookup);
        if granted_to.is_some_and(|l| l != lookup) {
            // The consent was given for another number: this sender cannot confirm it.
            return Ok(Decision::only(Outcome::ReferenceTaken));
        }
        let subject = subject_for(store, keys, &ctx.site, phone).await?;
        let event = sealed_event(keys, &subject, &grant, Action::Confirmed, grant.purposes.clone(), message, &evidence(Some(text)))?;
        let guard = ConfirmGuard { reference: grant.reference.clone(), subject_id: subject.id.clone() };
        return Ok(Decision { outcome: Outcome::Confirmed, events: vec![event], guard: Some(guard) });
    }
    let outcome = if candidates > 0 { Outcome::UnknownReference } else { Outcome::None };
    Ok(Decision::only(outcome))
}

/// The person's grants whose consent holds now, each with the purposes it still holds, in
/// log order, as the ledger's status derivation (`crate::status::derive`) sees them.
async fn consents_in_force(store: &DynStore, keys: &Keyring, site: &Site, phone: &PhoneNumber) -> Result<Vec<(StoredEvent, Vec<Purpose>)>, ApiError> {
    let found = crate::status::of_phone(store, keys, site, phone, now()).await?;
    let mut in_force: Vec<(StoredEvent, Vec<Purpose>)> = Vec::new();
    for status in found.purposes.iter().filter(|s| s.consented) {
        let grants = status.proof.iter().filter_map(|id| found.events.iter().find(|e| &e.id == id && e.action == Action::Granted));
        for grant in grants {
            match in_force.iter_mut().find(|(g, _)| g.id == grant.id) {
                Some((_, purposes)) => purposes.push(status.purpose),
                None => in_force.push((grant.clone(), vec![status.purpose])),
            }
        }
    }
    in_force.sort_by_key(|(g, _)| g.seq);
    Ok(in_force)
}

/// The sender's subject at the site, created (with a fresh key) on their first message.
async fn subject_for(store: &DynStore, keys: &Keyring, site: &Site, phone: &PhoneNumber) -> Result<Subject, ApiError> {
    let id = format!("sub_{}", uuid::Uuid::now_v7().simple());
    let (_, wrapped) = keys.new_subject_key(&id);
    let fresh = Subject {
        id,
        site_id: site.id.clone(),
        lookup: Some(keys.phone_lookup(phone)),
        wrapped_key: Some(wrapped),
        created_at: now(),
        erased_at: None,
    };
    Ok(store.subject_for_lookup(fresh).await?)
}

/// A `confirmed` or `withdrawn` event under `grant`'s reference and notice, about the
/// sender's subject, its evidence sealed with that subject's key (none once erased).
fn sealed_event(
    keys: &Keyring,
    subject: &Subject,
    grant: &StoredEvent,
    action: Action,
    purposes: Vec<Purpose>,
    message: &Message,
    evidence: &Evidence,
) -> Result<NewEvent, ApiError> {
    let id = new_event_id();
    let personal = match &subject.wrapped_key {
        None => None,
        Some(wrapped) => {
            let key = keys
                .unwrap_subject_key(&subject.id, wrapped)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("subject key {} does not open with this master key", subject.id)))?;
            let plain = serde_json::to_vec(evidence).map_err(ApiError::internal)?;
            Some(key.seal(&plain, id.as_str().as_bytes()))
        }
    };
    // Canonical JSON (keys sorted, no spaces), nothing personal: which business number.
    let details = serde_json::json!({ "channel": "whatsapp_cloud_api", "phone_number_id": message.phone_number_id.as_str() }).to_string();
    Ok(NewEvent {
        id,
        site_id: grant.site_id.clone(),
        action,
        method: Method::Whatsapp,
        reference: grant.reference.clone(),
        subject_id: subject.id.clone(),
        new_subject: None,
        purposes,
        notice_id: grant.notice_id.clone(),
        notice_sha256: grant.notice_sha256.clone(),
        personal,
        details,
        actor: ACTOR.to_owned(),
        recorded_at: now(),
    })
}

/// The counts of a report as the JSON answer to Meta (who reads only the status).
pub fn summary(report: &Report) -> serde_json::Value {
    let replies: Vec<serde_json::Value> = report
        .replies
        .iter()
        .map(|r| serde_json::json!({ "phone_number_id": r.phone_number_id.as_str(), "text": r.text }))
        .collect();
    serde_json::json!({
        "messages": report.messages,
        "recorded": report.recorded,
        "duplicates": report.duplicates,
        "ignored": report.ignored,
        "statuses": report.statuses,
        "skipped": report.skipped,
        "outcomes": report.outcomes.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "events": report.events.iter().map(EventId::as_str).collect::<Vec<_>>(),
        "replies": replies,
    })
}

/// For the window endpoint: when the person last wrote to the site.
pub async fn last_message_at(wa: &dyn WhatsappStore, keys: &Keyring, site_id: &str, phone: &PhoneNumber) -> Result<Option<Timestamp>, ApiError> {
    Ok(wa.last_inbound(site_id, &keys.phone_lookup(phone)).await?)
}

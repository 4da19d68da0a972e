//! Recording and reading consent: grants, withdrawals, and the auditor's view of events.
//!
//! GDPR Art. 7(1): the controller must be able to demonstrate consent. Each event keeps the
//! notice version and the hash of its exact text, how and when it was given, and the
//! evidence (page, truncated IP, user agent) encrypted with the subject's own key.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use cornetta_shared::api::{ConsentEventView, WhatsappEvidence};
use cornetta_shared::{Action, EventId, Method, PhoneNumber, Purpose, Reference};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::keys::Keyring;
use crate::store::{DynStore, EventFilter, LogPosition, NewEvent, Notice, Site, StoreError, StoredEvent, Subject};

/// Longest page URL, user agent and reason we keep, in characters.
pub const MAX_PAGE_URL_CHARS: usize = 2048;
pub const MAX_USER_AGENT_CHARS: usize = 512;
pub const MAX_REASON_CHARS: usize = 1000;

/// Personal evidence of an event, stored encrypted with the subject's key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    /// Truncated: /24 for IPv4, /48 for IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The WhatsApp message a confirmation or an opt-out rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappEvidence>,
}

/// Truncates an address the way analytics tools anonymise: the last octet of IPv4, all
/// but the first 48 bits of IPv6 (an IPv4-mapped IPv6 address counts as IPv4).
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

/// Cuts a string to at most `max` characters (user agents can be absurdly long).
pub fn clip(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// Now, to the microsecond: the precision events are stored with, so that what a write
/// returns equals what a later read gives.
pub fn now() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap_or_else(|_| Timestamp::now())
}

pub fn new_event_id() -> EventId {
    EventId::parse(&format!("evt_{}", uuid::Uuid::now_v7().simple())).expect("uuid hex is a valid event id")
}

pub fn new_reference() -> Reference {
    Reference::from_random(rand::random())
}

/// Checks a grant's purposes against its notice: at least one, each offered by the notice,
/// no duplicates.
pub fn check_purposes(purposes: &[Purpose], notice: &Notice) -> Result<Vec<Purpose>, ApiError> {
    if purposes.is_empty() {
        return Err(ApiError::invalid("no_purpose", "purposes is empty; tick at least one purpose"));
    }
    let mut out = Vec::with_capacity(purposes.len());
    for p in purposes {
        if !notice.purposes.iter().any(|np| np.purpose == *p) {
            let offered: Vec<&str> = notice.purposes.iter().map(|np| np.purpose.as_str()).collect();
            return Err(ApiError::invalid(
                "purpose_not_in_notice",
                format!("purpose {p} is not in notice {} (it offers: {})", notice.id, offered.join(", ")),
            ));
        }
        if out.contains(p) {
            return Err(ApiError::invalid("duplicate_purpose", format!("purpose {p} is listed twice")));
        }
        out.push(*p);
    }
    Ok(out)
}

/// A grant to record.
#[derive(Debug)]
pub struct Grant<'a> {
    pub site: &'a Site,
    pub notice: &'a Notice,
    pub purposes: Vec<Purpose>,
    pub reference: Option<Reference>,
    pub phone: Option<PhoneNumber>,
    pub method: Method,
    pub actor: String,
    pub evidence: Evidence,
}

/// The subject for an event and, when it is new and has no number, the row to create with
/// the event.
async fn subject_for(store: &DynStore, keys: &Keyring, site: &Site, phone: Option<&PhoneNumber>) -> Result<(Subject, Option<Subject>), ApiError> {
    let id = format!("sub_{}", uuid::Uuid::now_v7().simple());
    let (_, wrapped) = keys.new_subject_key(&id);
    let fresh = Subject {
        id,
        site_id: site.id.clone(),
        lookup: phone.map(|p| keys.phone_lookup(p)),
        wrapped_key: Some(wrapped),
        created_at: now(),
        erased_at: None,
    };
    match phone {
        Some(_) => Ok((store.subject_for_lookup(fresh).await?, None)),
        None => Ok((fresh.clone(), Some(fresh))),
    }
}

fn seal(keys: &Keyring, subject: &Subject, event_id: &EventId, evidence: &Evidence) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(wrapped) = &subject.wrapped_key else {
        return Err(ApiError::conflict("subject_erased", "this person's data was erased; a new consent starts a new record"));
    };
    let key = keys
        .unwrap_subject_key(&subject.id, wrapped)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("subject key {} does not open with this master key", subject.id)))?;
    let plain = serde_json::to_vec(evidence).map_err(ApiError::internal)?;
    Ok(Some(key.seal(&plain, event_id.as_str().as_bytes())))
}

/// Records a grant; answers once it is committed.
pub async fn grant(store: &DynStore, keys: &Keyring, grant: Grant<'_>) -> Result<StoredEvent, ApiError> {
    let purposes = check_purposes(&grant.purposes, grant.notice)?;
    let (subject, new_subject) = subject_for(store, keys, grant.site, grant.phone.as_ref()).await?;
    let id = new_event_id();
    let mut evidence = grant.evidence;
    evidence.phone = grant.phone.as_ref().map(|p| p.to_string());
    let personal = seal(keys, &subject, &id, &evidence)?;
    let event = NewEvent {
        id,
        site_id: grant.site.id.clone(),
        action: Action::Granted,
        method: grant.method,
        reference: grant.reference.unwrap_or_else(new_reference),
        subject_id: subject.id.clone(),
        new_subject,
        purposes,
        notice_id: Some(grant.notice.id.clone()),
        notice_sha256: Some(grant.notice.sha256.clone()),
        personal,
        details: "{}".into(),
        actor: grant.actor,
        recorded_at: now(),
    };
    store.append(event).await.map_err(|err| match err {
        StoreError::Conflict(message) => ApiError::conflict("reference_in_use", message),
        other => other.into(),
    })
}

/// What a withdrawal did.
#[derive(Debug, Clone)]
pub enum Withdrawal {
    /// A withdrawal was appended for the purposes still in force.
    Recorded(StoredEvent),
    /// Every purpose asked for was withdrawn already: nothing was appended, and this is the
    /// last earlier withdrawal of them (a second press, a resubmitted form, a retry).
    Already(StoredEvent),
}

impl Withdrawal {
    /// The withdrawal that ended the consent: the new one, or the earlier one.
    pub fn event(&self) -> &StoredEvent {
        match self {
            Self::Recorded(event) | Self::Already(event) => event,
        }
    }
}

/// Withdraws `purposes` (all of the grant's when `None`) of a grant: appends a withdrawal
/// of those not withdrawn yet under its reference (by any route: widget, page, auditor,
/// STOP on WhatsApp), and nothing when none is left, so a repeated request adds no event
/// (as STOP already did) and answers with the withdrawal that ended the consent.
pub async fn withdraw(
    store: &DynStore,
    keys: &Keyring,
    grant: &StoredEvent,
    purposes: Option<Vec<Purpose>>,
    method: Method,
    actor: String,
    evidence: Evidence,
) -> Result<Withdrawal, ApiError> {
    let asked = match purposes {
        None => grant.purposes.clone(),
        Some(list) if list.is_empty() => {
            return Err(ApiError::invalid("no_purpose", "purposes is empty; leave it out to withdraw every purpose"));
        }
        Some(list) => {
            if let Some(p) = list.iter().find(|p| !grant.purposes.contains(p)) {
                return Err(ApiError::invalid("purpose_not_granted", format!("purpose {p} was not granted under reference {}", grant.reference)));
            }
            list
        }
    };
    let subject = store
        .subject(&grant.subject_id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("subject {} of event {} is missing", grant.subject_id, grant.id)))?;
    let id = new_event_id();
    let personal = if subject.wrapped_key.is_some() { seal(keys, &subject, &id, &evidence)? } else { None };
    let event = NewEvent {
        id,
        site_id: grant.site_id.clone(),
        action: Action::Withdrawn,
        method,
        reference: grant.reference.clone(),
        subject_id: subject.id.clone(),
        new_subject: None,
        purposes: asked.clone(),
        notice_id: grant.notice_id.clone(),
        notice_sha256: grant.notice_sha256.clone(),
        personal,
        details: "{}".into(),
        actor,
        recorded_at: now(),
    };
    // The store writes only the purposes still in force when the event is written, so a
    // repeated request, or one at the same moment (a second tab, a STOP on WhatsApp), ends
    // nothing twice.
    match store.append(event).await {
        Ok(stored) => Ok(Withdrawal::Recorded(stored)),
        Err(StoreError::AlreadyWithdrawn(message)) => {
            let earlier = EventFilter {
                site_id: Some(grant.site_id.clone()),
                references: Some(vec![grant.reference.clone()]),
                action: Some(Action::Withdrawn),
                ..EventFilter::default()
            };
            // A reference has one grant and at most one withdrawal per purpose; the limit
            // only bounds a pathological log. The answer is the latest withdrawal that ended
            // one of the purposes asked for.
            let earlier = store.events(&earlier, crate::store::MAX_PERSON_EVENTS).await?;
            earlier
                .into_iter()
                .filter(|e| e.purposes.iter().any(|p| asked.contains(p)))
                .max_by_key(|e| e.seq)
                .map(Withdrawal::Already)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("{message}, but no withdrawal of it is found")))
        }
        Err(other) => Err(other.into()),
    }
}

/// The filter parts that find a person's events by number: their subjects, and the
/// references their `confirmed` events bound to the number (all of them, each once).
pub async fn person_filter(store: &DynStore, keys: &Keyring, phone: &PhoneNumber, filter: &mut EventFilter) -> Result<(), ApiError> {
    let subjects = store.subjects_by_lookup(&keys.phone_lookup(phone)).await?;
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let mut references = Vec::new();
    if !ids.is_empty() {
        let confirmed = EventFilter { subjects: Some(ids.clone()), action: Some(Action::Confirmed), ..EventFilter::default() };
        let mut seen = HashSet::new();
        each_event(store, confirmed, |event| {
            if seen.insert(event.reference.clone()) {
                references.push(event.reference);
            }
        })
        .await?;
    }
    filter.subjects = Some(ids);
    filter.references = Some(references);
    Ok(())
}

/// Events read per page by [`each_event`].
const PAGE: u32 = 1_000;

/// Calls `each` with every event matching `filter`, in log order, reading page by page
/// (`filter.after` moves along): for logic that must see a person's whole history, not
/// the first page of it.
pub async fn each_event(store: &DynStore, mut filter: EventFilter, mut each: impl FnMut(StoredEvent)) -> Result<(), ApiError> {
    loop {
        let page = store.events(&filter, PAGE).await?;
        let full = page.len() == PAGE as usize;
        let next = page.last().map(|last| LogPosition { site_id: last.site_id.clone(), seq: last.seq });
        page.into_iter().for_each(&mut each);
        match next {
            Some(next) if full => filter.after = Some(next),
            _ => return Ok(()),
        }
    }
}

/// Turns stored events into what auditors see, decrypting evidence where the subject's key
/// still exists. Caches sites, notices and subjects across the page.
#[derive(Debug, Default)]
pub struct Viewer {
    sites: HashMap<String, Option<Site>>,
    notices: HashMap<String, Option<Notice>>,
    subjects: HashMap<String, Option<Subject>>,
}

impl Viewer {
    pub async fn view(&mut self, store: &DynStore, keys: &Keyring, event: &StoredEvent) -> Result<ConsentEventView, ApiError> {
        if !self.sites.contains_key(&event.site_id) {
            let site = store.site_by_id(&event.site_id).await?;
            self.sites.insert(event.site_id.clone(), site);
        }
        let site = self.sites[&event.site_id]
            .clone()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("site {} of event {} is missing", event.site_id, event.id)))?;
        let notice_text = match &event.notice_id {
            Some(id) => {
                if !self.notices.contains_key(id.as_str()) {
                    let notice = store.notice(id).await?;
                    self.notices.insert(id.as_str().to_owned(), notice);
                }
                self.notices[id.as_str()].as_ref().map(|n| n.canonical_text.clone())
            }
            None => None,
        };
        if !self.subjects.contains_key(&event.subject_id) {
            let subject = store.subject(&event.subject_id).await?;
            self.subjects.insert(event.subject_id.clone(), subject);
        }
        let evidence = self.subjects[&event.subject_id]
            .as_ref()
            .and_then(|s| Some((s, s.wrapped_key.as_ref()?)))
            .and_then(|(s, wrapped)| keys.unwrap_subject_key(&s.id, wrapped))
            .zip(event.personal.as_ref())
            .and_then(|(key, sealed)| key.open(sealed, event.id.as_str().as_bytes()))
            .and_then(|plain| serde_json::from_slice::<Evidence>(&plain).ok())
            .unwrap_or_default();
        Ok(ConsentEventView {
            id: event.id.clone(),
            site: site.key.clone(),
            seq: event.seq,
            action: event.action,
            method: event.method,
            reference: event.reference.clone(),
            phone: evidence.phone,
            purposes: event.purposes.clone(),
            notice: event.notice_id.clone(),
            notice_sha256: event.notice_sha256.clone(),
            notice_text,
            page_url: evidence.page_url,
            ip: evidence.ip,
            user_agent: evidence.user_agent,
            actor: Some(event.actor.clone()),
            reason: evidence.reason,
            recorded_at: event.recorded_at.to_string(),
            leaf_hash: hex::encode(event.leaf_hash),
            whatsapp: evidence.whatsapp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_truncated_to_24_and_48_bits() {
        let cases = [
            ("203.0.113.77", "203.0.113.0/24"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::/48"),
            ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ];
        for (ip, want) in cases {
            assert_eq!(truncate_ip(ip.parse().unwrap()), want);
        }
    }
}

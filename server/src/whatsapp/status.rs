//! A person's consent at a site, per purpose, and their 24-hour customer-service window,
//! both derived from what is stored (events, inbound message times), never kept as flags.
//!
//! This is the one place the webhook derives status from events. The ledger work provides
//! the authoritative status derivation (`/v1/subjects/{phone}/status`); when it lands,
//! `fold` is what to replace with it.

use std::collections::BTreeSet;

use cornetta_shared::{Action, EventId, PhoneNumber, Purpose};
use jiff::{SignedDuration, Timestamp};

use crate::error::ApiError;
use crate::keys::Keyring;
use crate::store::{DynStore, EventFilter, StoredEvent};

/// Meta, "Service messages": "When a WhatsApp user messages you or calls you, a 24-hour timer
/// called a customer service window starts. If the user messages or calls you again before
/// the timer expires, the timer resets to 24 hours." While it is open, free-form (non-
/// template) messages may be sent.
pub const CUSTOMER_SERVICE_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// Most events read for one person (far more than a person ever has).
const PERSON_EVENTS_LIMIT: u32 = 10_000;

/// A person's events at one site: those of their subjects (found by the keyed hash of their
/// number) and those of the consents their number confirmed, in log order.
#[derive(Debug, Clone, Default)]
pub struct PersonEvents {
    pub subjects: Vec<String>,
    pub events: Vec<StoredEvent>,
}

pub async fn person_events(store: &DynStore, keys: &Keyring, site_id: &str, phone: &PhoneNumber) -> Result<PersonEvents, ApiError> {
    let subjects: Vec<String> = store
        .subjects_by_lookup(&keys.phone_lookup(phone))
        .await?
        .into_iter()
        .filter(|s| s.site_id == site_id)
        .map(|s| s.id)
        .collect();
    if subjects.is_empty() {
        return Ok(PersonEvents::default());
    }
    let confirmed = EventFilter {
        site_id: Some(site_id.to_owned()),
        subjects: Some(subjects.clone()),
        action: Some(Action::Confirmed),
        ..EventFilter::default()
    };
    let references = store.events(&confirmed, PERSON_EVENTS_LIMIT).await?.into_iter().map(|e| e.reference).collect();
    let theirs = EventFilter {
        site_id: Some(site_id.to_owned()),
        subjects: Some(subjects.clone()),
        references: Some(references),
        ..EventFilter::default()
    };
    let mut events = store.events(&theirs, PERSON_EVENTS_LIMIT).await?;
    events.sort_by_key(|e| e.seq);
    Ok(PersonEvents { subjects, events })
}

/// One consent (a grant and what followed it under its reference), as of a moment.
#[derive(Debug, Clone)]
pub struct Consent {
    pub grant: StoredEvent,
    /// Purposes granted and not withdrawn since.
    pub in_force: Vec<Purpose>,
    /// The person's own number sent its reference (a `confirmed` event of theirs).
    pub confirmed: bool,
    /// The events that make it up, in log order.
    pub events: Vec<EventId>,
}

/// Replays the person's events up to `at` (inclusive), consent by consent.
pub fn fold(person: &PersonEvents, at: Timestamp) -> Vec<Consent> {
    struct State {
        consent: Consent,
        active: BTreeSet<Purpose>,
    }
    let mut states: Vec<State> = Vec::new();
    for event in person.events.iter().filter(|e| e.recorded_at <= at) {
        if event.action == Action::Granted {
            states.push(State {
                consent: Consent { grant: event.clone(), in_force: Vec::new(), confirmed: false, events: vec![event.id.clone()] },
                active: event.purposes.iter().copied().collect(),
            });
            continue;
        }
        let Some(state) = states.iter_mut().find(|s| s.consent.grant.reference == event.reference) else { continue };
        state.consent.events.push(event.id.clone());
        match event.action {
            Action::Confirmed if person.subjects.contains(&event.subject_id) => state.consent.confirmed = true,
            Action::Withdrawn => {
                for p in &event.purposes {
                    state.active.remove(p);
                }
            }
            _ => {}
        }
    }
    states
        .into_iter()
        .map(|mut s| {
            s.consent.in_force = s.active.into_iter().collect();
            s.consent
        })
        .collect()
}

/// Where one purpose stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At least one consent for it is in force.
    Granted,
    /// It was granted and every such consent was withdrawn.
    Withdrawn,
    /// Never granted.
    None,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Granted => "granted",
            State::Withdrawn => "withdrawn",
            State::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeStatus {
    pub purpose: Purpose,
    pub state: State,
    /// A consent in force for it was confirmed from the person's number.
    pub confirmed: bool,
    /// The events behind the answer: every event of the consents that ever covered it.
    pub events: Vec<EventId>,
}

/// Every purpose's status for the person at `at`.
pub fn by_purpose(person: &PersonEvents, at: Timestamp) -> Vec<PurposeStatus> {
    let consents = fold(person, at);
    Purpose::ALL
        .iter()
        .map(|&purpose| {
            let covering: Vec<&Consent> = consents.iter().filter(|c| c.grant.purposes.contains(&purpose)).collect();
            let live: Vec<&&Consent> = covering.iter().filter(|c| c.in_force.contains(&purpose)).collect();
            let state = match (covering.is_empty(), live.is_empty()) {
                (true, _) => State::None,
                (false, false) => State::Granted,
                (false, true) => State::Withdrawn,
            };
            PurposeStatus {
                purpose,
                state,
                confirmed: live.iter().any(|c| c.confirmed),
                events: covering.iter().flat_map(|c| c.events.iter().cloned()).collect(),
            }
        })
        .collect()
}

/// The customer-service window as of `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub open: bool,
    pub last_message_at: Option<Timestamp>,
    /// `last_message_at` + 24 h.
    pub open_until: Option<Timestamp>,
}

pub fn window(last_message_at: Option<Timestamp>, now: Timestamp) -> Window {
    let open_until = last_message_at.and_then(|t| t.checked_add(CUSTOMER_SERVICE_WINDOW).ok());
    Window { open: open_until.is_some_and(|until| now < until), last_message_at, open_until }
}

#[cfg(test)]
mod tests {
    use cornetta_shared::{Method, Reference};

    use super::*;

    fn event(seq: u64, action: Action, reference: &str, subject: &str, purposes: &[Purpose], at: i64) -> StoredEvent {
        StoredEvent {
            id: EventId::parse(&format!("evt_{seq:016}")).unwrap(),
            site_id: "site".into(),
            seq,
            action,
            method: Method::Widget,
            reference: Reference::parse(reference).unwrap(),
            subject_id: subject.into(),
            purposes: purposes.to_vec(),
            notice_id: None,
            notice_sha256: None,
            personal: None,
            details: "{}".into(),
            actor: "test".into(),
            recorded_at: Timestamp::from_second(at).unwrap(),
            leaf_hash: [0; 32],
        }
    }

    const A: &str = "K7QXM2PA9R";
    const B: &str = "ABCDE2345F";

    fn person(events: Vec<StoredEvent>) -> PersonEvents {
        PersonEvents { subjects: vec!["sub_phone".into()], events }
    }

    fn states(p: &PersonEvents, at: i64) -> Vec<(Purpose, State, bool)> {
        by_purpose(p, Timestamp::from_second(at).unwrap()).into_iter().map(|s| (s.purpose, s.state, s.confirmed)).collect()
    }

    #[test]
    fn a_confirmed_grant_is_in_force_until_withdrawn() {
        let p = person(vec![
            event(0, Action::Granted, A, "sub_web", &[Purpose::Utility, Purpose::Marketing], 10),
            event(1, Action::Confirmed, A, "sub_phone", &[Purpose::Utility, Purpose::Marketing], 20),
            event(2, Action::Withdrawn, A, "sub_phone", &[Purpose::Marketing], 30),
        ]);
        use Purpose::*;
        assert_eq!(states(&p, 5), [(Utility, State::None, false), (Marketing, State::None, false), (Authentication, State::None, false), (Support, State::None, false)]);
        assert_eq!(states(&p, 15)[..2], [(Utility, State::Granted, false), (Marketing, State::Granted, false)]);
        assert_eq!(states(&p, 25)[..2], [(Utility, State::Granted, true), (Marketing, State::Granted, true)]);
        assert_eq!(states(&p, 35)[..2], [(Utility, State::Granted, true), (Marketing, State::Withdrawn, false)]);
    }

    #[test]
    fn one_live_consent_keeps_a_purpose_granted() {
        let p = person(vec![
            event(0, Action::Granted, A, "sub_web", &[Purpose::Utility], 10),
            event(1, Action::Granted, B, "sub_phone", &[Purpose::Utility], 11),
            event(2, Action::Withdrawn, A, "sub_web", &[Purpose::Utility], 12),
        ]);
        let all = by_purpose(&p, Timestamp::from_second(20).unwrap());
        assert_eq!((all[0].state, all[0].confirmed, all[0].events.len()), (State::Granted, false, 3));
        let consents = fold(&p, Timestamp::from_second(20).unwrap());
        assert_eq!(consents.iter().map(|c| c.in_force.len()).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_message() {
        let t = Timestamp::from_second(1_000_000).unwrap();
        let day = CUSTOMER_SERVICE_WINDOW;
        assert!(window(Some(t), t).open);
        assert!(window(Some(t), t.checked_add(day - SignedDuration::from_secs(1)).unwrap()).open);
        let closed = window(Some(t), t.checked_add(day).unwrap());
        assert_eq!((closed.open, closed.open_until), (false, Some(t.checked_add(day).unwrap())));
        assert_eq!(window(None, t), Window { open: false, last_message_at: None, open_until: None });
    }
}

//! Consent status of a person at a moment, derived from the events every time (never
//! stored as a flag): did valid consent for a purpose exist at time T, and which events
//! prove it.
//!
//! The rules (GDPR Art. 7(1): the controller must be able to demonstrate consent; Art. 7(3):
//! withdrawal is as easy as giving and ends consent from then on):
//! - A grant recorded with the person's number (API, form) is theirs from its own event.
//! - A widget grant has no number; it becomes the person's when a `confirmed` event for
//!   the person's subject carries its reference (their first WhatsApp message), from that
//!   confirmation on. A reference confirmed before its grant binds the grant at once.
//! - A withdrawal of the person's (their subject, or a reference bound to them) ends, for
//!   its purposes, every consent of theirs that started before it. A withdrawal by
//!   reference also ends that grant's purposes when it is not bound yet, so a later
//!   confirmation does not revive it.
//! - An erasure of the person's ends all their consents (and unbound grants it names).
//! - Only events recorded at or before T count; events are taken in log order (`seq`).

use std::collections::{BTreeSet, HashMap, HashSet};

use cornetta_shared::{Action, EventId, Purpose, Reference};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::StoredEvent;

/// One purpose's status at the moment asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeStatus {
    pub purpose: Purpose,
    /// Whether valid consent for this purpose existed.
    pub consented: bool,
    /// When the oldest consent that still held became valid.
    pub since: Option<Timestamp>,
    /// The events proving it: for each consent that held, its grant and (for a widget
    /// grant) the confirmation that bound it to the number; in log order.
    pub proof: Vec<EventId>,
    /// When not consented: the withdrawal or erasure that ended the last consent, if any.
    pub ended_by: Option<EventId>,
}

/// A consent that holds: where it started and what proves it.
#[derive(Debug, Clone)]
struct Holding {
    since: Timestamp,
    proof: Vec<(u64, EventId)>,
}

/// Derives the status of every purpose at `at` for the person whose subjects (at this
/// site) are `person`, from `events`: the person's own events and those carrying the
/// references confirmed to them, of one site, in any order.
pub fn derive(events: &[StoredEvent], person: &[String], at: Timestamp) -> Vec<PurposeStatus> {
    let person: HashSet<&str> = person.iter().map(String::as_str).collect();
    let mut ordered: Vec<&StoredEvent> = events.iter().filter(|e| e.recorded_at <= at).collect();
    ordered.sort_by_key(|e| e.seq);
    ordered.dedup_by_key(|e| e.seq);

    // Per purpose: the consents that hold now, keyed by grant reference.
    let mut holding: HashMap<Purpose, HashMap<Reference, Holding>> = HashMap::new();
    let mut ended_by: HashMap<Purpose, EventId> = HashMap::new();
    // Widget grants not bound to the person yet: reference → (grant, purposes left).
    let mut unbound: HashMap<Reference, (&StoredEvent, BTreeSet<Purpose>)> = HashMap::new();
    // References confirmed to the person → the first confirmation.
    let mut bound: HashMap<Reference, &StoredEvent> = HashMap::new();

    for event in ordered {
        let theirs = person.contains(event.subject_id.as_str());
        match event.action {
            Action::Granted => {
                let binding = if theirs { Some(None) } else { bound.get(&event.reference).map(|c| Some(*c)) };
                match binding {
                    Some(confirmation) => {
                        let mut proof = vec![(event.seq, event.id.clone())];
                        if let Some(c) = confirmation {
                            proof.push((c.seq, c.id.clone()));
                        }
                        for p in &event.purposes {
                            holding.entry(*p).or_default().insert(event.reference.clone(), Holding { since: event.recorded_at, proof: proof.clone() });
                        }
                    }
                    None => {
                        unbound.insert(event.reference.clone(), (event, event.purposes.iter().copied().collect()));
                    }
                }
            }
            Action::Confirmed if theirs => {
                if bound.contains_key(&event.reference) {
                    continue;
                }
                bound.insert(event.reference.clone(), event);
                if let Some((grant, purposes)) = unbound.remove(&event.reference) {
                    let proof = vec![(grant.seq, grant.id.clone()), (event.seq, event.id.clone())];
                    for p in purposes {
                        holding.entry(p).or_default().insert(grant.reference.clone(), Holding { since: event.recorded_at, proof: proof.clone() });
                    }
                }
            }
            Action::Confirmed => {}
            Action::Withdrawn | Action::Erased => {
                let purposes: Vec<Purpose> = if event.action == Action::Erased { Purpose::ALL.to_vec() } else { event.purposes.clone() };
                if let Some((_, left)) = unbound.get_mut(&event.reference) {
                    for p in &purposes {
                        left.remove(p);
                    }
                    if left.is_empty() {
                        unbound.remove(&event.reference);
                    }
                }
                let attributable = theirs || bound.contains_key(&event.reference);
                for p in purposes {
                    let Some(held) = holding.get_mut(&p) else { continue };
                    let before = held.len();
                    if attributable {
                        held.clear();
                    } else {
                        held.remove(&event.reference);
                    }
                    if held.len() < before {
                        ended_by.insert(p, event.id.clone());
                    }
                }
            }
        }
    }

    Purpose::ALL
        .iter()
        .map(|&purpose| {
            let held = holding.get(&purpose).filter(|h| !h.is_empty());
            match held {
                Some(held) => {
                    let mut proof: Vec<(u64, EventId)> = held.values().flat_map(|h| h.proof.iter().cloned()).collect();
                    proof.sort_by_key(|(seq, _)| *seq);
                    proof.dedup_by_key(|(seq, _)| *seq);
                    PurposeStatus {
                        purpose,
                        consented: true,
                        since: held.values().map(|h| h.since).min(),
                        proof: proof.into_iter().map(|(_, id)| id).collect(),
                        ended_by: None,
                    }
                }
                None => PurposeStatus { purpose, consented: false, since: None, proof: Vec::new(), ended_by: ended_by.get(&purpose).cloned() },
            }
        })
        .collect()
}

/// A person's status at a site and the events it was derived from.
#[derive(Debug, Clone)]
pub struct PersonStatus {
    /// The person's subject ids at the site (empty: the number is unknown there).
    pub subjects: Vec<String>,
    /// Every event that bore on it, in log order.
    pub events: Vec<StoredEvent>,
    /// One entry per purpose, in `Purpose::ALL` order.
    pub purposes: Vec<PurposeStatus>,
}

/// Looks up the events of `phone` at `site` and derives its status at `at`. A number with
/// `MAX_PERSON_EVENTS` or more events there gets 409 `too_many_events`, naming the export.
pub async fn of_phone(
    store: &crate::store::DynStore,
    keys: &crate::keys::Keyring,
    site: &crate::store::Site,
    phone: &cornetta_shared::PhoneNumber,
    at: Timestamp,
) -> Result<PersonStatus, crate::error::ApiError> {
    let found = store.person_events(&site.id, &keys.phone_lookup(phone)).await?;
    // The stores return at most this many, the oldest first: a status derived from a cut-off
    // history could miss the withdrawal that ends a consent, so none is derived.
    if found.events.len() >= crate::store::MAX_PERSON_EVENTS as usize {
        return Err(crate::error::ApiError::conflict(
            "too_many_events",
            format!(
                "this number has {} or more consent events at this site, more than a status is derived from; \
                 read them all with GET /v1/consents/export?site={}&phone=…",
                crate::store::MAX_PERSON_EVENTS,
                site.key
            ),
        ));
    }
    let purposes = derive(&found.events, &found.subjects, at);
    Ok(PersonStatus { subjects: found.subjects, events: found.events, purposes })
}

#[cfg(test)]
mod tests {
    use cornetta_shared::Method;
    use proptest::prelude::*;

    use super::*;

    const PHONE: &str = "sub_phone";
    const OTHER: &str = "sub_other";

    /// Builds events from a compact script: (action, subject, reference, purposes).
    fn script(steps: &[(Action, &str, &str, &[Purpose])]) -> Vec<StoredEvent> {
        steps
            .iter()
            .enumerate()
            .map(|(i, (action, subject, reference, purposes))| StoredEvent {
                id: EventId::parse(&format!("evt_{i:032}")).unwrap(),
                site_id: "site".into(),
                seq: i as u64,
                action: *action,
                method: Method::Widget,
                reference: Reference::parse(reference).unwrap(),
                subject_id: (*subject).into(),
                purposes: purposes.to_vec(),
                notice_id: None,
                notice_sha256: None,
                personal: None,
                details: "{}".into(),
                actor: "test".into(),
                recorded_at: Timestamp::from_second(1_000 + i as i64 * 10).unwrap(),
                leaf_hash: [0; 32],
            })
            .collect()
    }

    fn at(i: i64) -> Timestamp {
        Timestamp::from_second(1_000 + i * 10).unwrap()
    }

    fn status(events: &[StoredEvent], when: Timestamp, purpose: Purpose) -> PurposeStatus {
        derive(events, &[PHONE.to_owned()], when).into_iter().find(|s| s.purpose == purpose).unwrap()
    }

    fn ids(events: &[StoredEvent], which: &[usize]) -> Vec<EventId> {
        which.iter().map(|i| events[*i].id.clone()).collect()
    }

    const A: &str = "AAAAA22222";
    const B: &str = "BBBBB33333";
    const U: Purpose = Purpose::Utility;
    const M: Purpose = Purpose::Marketing;

    #[test]
    fn the_status_table_holds() {
        use Action::*;
        // (name, events, moment index, purpose, consented, proof indices, ended_by index)
        type Case = (&'static str, Vec<(Action, &'static str, &'static str, &'static [Purpose])>, i64, Purpose, bool, Vec<usize>, Option<usize>);
        let cases: Vec<Case> = vec![
            ("nothing recorded", vec![], 5, U, false, vec![], None),
            ("a grant with the number holds at once", vec![(Granted, PHONE, A, &[U])], 0, U, true, vec![0], None),
            ("it does not hold before it was given", vec![(Granted, OTHER, B, &[U]), (Granted, PHONE, A, &[U])], 0, U, false, vec![], None),
            ("only for the purposes given", vec![(Granted, PHONE, A, &[U])], 3, M, false, vec![], None),
            ("an unconfirmed widget grant is nobody's", vec![(Granted, "sub_w", A, &[U, M])], 5, U, false, vec![], None),
            ("a confirmation binds the widget grant", vec![(Granted, "sub_w", A, &[U, M]), (Confirmed, PHONE, A, &[])], 5, M, true, vec![0, 1], None),
            ("but only from the confirmation on", vec![(Granted, "sub_w", A, &[U]), (Granted, OTHER, B, &[U]), (Confirmed, PHONE, A, &[])], 1, U, false, vec![], None),
            ("another number's confirmation does not count", vec![(Granted, "sub_w", A, &[U]), (Confirmed, OTHER, A, &[])], 5, U, false, vec![], None),
            ("a withdrawal by reference ends it", vec![(Granted, "sub_w", A, &[U, M]), (Confirmed, PHONE, A, &[]), (Withdrawn, "sub_w", A, &[M])], 5, M, false, vec![], Some(2)),
            ("for its purposes only", vec![(Granted, "sub_w", A, &[U, M]), (Confirmed, PHONE, A, &[]), (Withdrawn, "sub_w", A, &[M])], 5, U, true, vec![0, 1], None),
            ("it held until the withdrawal", vec![(Granted, "sub_w", A, &[U]), (Confirmed, PHONE, A, &[]), (Withdrawn, "sub_w", A, &[U])], 1, U, true, vec![0, 1], None),
            ("a withdrawal before confirmation is not undone by it", vec![(Granted, "sub_w", A, &[U]), (Withdrawn, "sub_w", A, &[U]), (Confirmed, PHONE, A, &[])], 5, U, false, vec![], None),
            ("a STOP for the number ends every grant of theirs", vec![(Granted, PHONE, B, &[M]), (Granted, "sub_w", A, &[M]), (Confirmed, PHONE, A, &[]), (Withdrawn, PHONE, B, &[U, M])], 5, M, false, vec![], Some(3)),
            ("a new grant after a withdrawal holds again", vec![(Granted, PHONE, A, &[M]), (Withdrawn, PHONE, A, &[M]), (Granted, PHONE, B, &[M])], 5, M, true, vec![2], None),
            ("someone else's withdrawal changes nothing", vec![(Granted, PHONE, A, &[M]), (Granted, OTHER, B, &[M]), (Withdrawn, OTHER, B, &[M])], 5, M, true, vec![0], None),
            ("an erasure ends everything", vec![(Granted, PHONE, A, &[U, M]), (Erased, PHONE, A, &[])], 5, U, false, vec![], Some(1)),
            ("two grants both prove it", vec![(Granted, PHONE, A, &[M]), (Granted, "sub_w", B, &[M]), (Confirmed, PHONE, B, &[])], 5, M, true, vec![0, 1, 2], None),
            ("a confirmation before its grant binds it at once", vec![(Confirmed, PHONE, A, &[]), (Granted, "sub_w", A, &[U])], 5, U, true, vec![1, 0], None),
        ];
        for (name, steps, moment, purpose, consented, proof, ended) in cases {
            let events = script(&steps);
            let got = status(&events, at(moment), purpose);
            assert_eq!(got.consented, consented, "{name}");
            let mut want = ids(&events, &proof);
            want.sort();
            let mut have = got.proof.clone();
            have.sort();
            assert_eq!(have, want, "{name}: proof");
            assert_eq!(got.ended_by, ended.map(|i| events[i].id.clone()), "{name}: ended_by");
        }
    }

    fn arb_step() -> impl Strategy<Value = (Action, &'static str, &'static str, Vec<Purpose>)> {
        let action = prop::sample::select(vec![Action::Granted, Action::Confirmed, Action::Withdrawn, Action::Erased]);
        let subject = prop::sample::select(vec![PHONE, OTHER, "sub_w1", "sub_w2"]);
        let reference = prop::sample::select(vec![A, B, "CCCCC44444"]);
        let purposes = prop::sample::subsequence(Purpose::ALL.to_vec(), 0..=4);
        (action, subject, reference, purposes)
    }

    proptest! {
        /// Whatever happened, a consent reported as holding is proven by a grant that was
        /// recorded at or before the moment, and nothing after the moment changes the answer.
        #[test]
        fn status_depends_only_on_the_past_and_is_proven_by_a_grant(
            steps in prop::collection::vec(arb_step(), 0..25),
            moment in 0i64..25,
        ) {
            let steps: Vec<(Action, &str, &str, &[Purpose])> = steps.iter().map(|(a, s, r, p)| (*a, *s, *r, p.as_slice())).collect();
            let events = script(&steps);
            let when = at(moment);
            let full = derive(&events, &[PHONE.to_owned()], when);
            let past: Vec<StoredEvent> = events.iter().filter(|e| e.recorded_at <= when).cloned().collect();
            prop_assert_eq!(&derive(&past, &[PHONE.to_owned()], when), &full);
            for s in &full {
                if s.consented {
                    let grants: Vec<&StoredEvent> = s.proof.iter().map(|id| events.iter().find(|e| &e.id == id).unwrap()).collect();
                    prop_assert!(grants.iter().any(|g| g.action == Action::Granted && g.purposes.contains(&s.purpose) && g.recorded_at <= when));
                    prop_assert!(s.ended_by.is_none());
                }
            }
            // An erasure of the person's at or before the moment, with nothing after it, means no consent.
            if let Some(last) = past.last()
                && last.action == Action::Erased
                && last.subject_id == PHONE
            {
                prop_assert!(full.iter().all(|s| !s.consented));
            }
        }
    }
}

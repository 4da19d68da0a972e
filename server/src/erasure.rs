//! Erasure of a person (GDPR Art. 17, right to erasure): their subject keys are destroyed,
//! so the personal data of their events can no longer be decrypted, while every event, its
//! leaf hash and the signed checkpoints stay as they were and the log still verifies. An
//! `erased` event per subject tells auditors that, and when, it happened.
//!
//! Whose keys: the subject of the number at each site (or one site), and the subjects of
//! the widget grants whose references were confirmed to that number (the person's web
//! consents). The lookup hash is forgotten too, so the number no longer finds the events;
//! a later consent from the same number starts a new record.

use std::collections::HashSet;

use cornetta_shared::{Action, EventId, Method, PhoneNumber, Reference};

use crate::consents::{each_event, new_event_id, now};
use crate::error::ApiError;
use crate::keys::Keyring;
use crate::store::{DynStore, EventFilter, NewEvent, Site, StoredEvent, Subject};

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// Subjects whose keys were destroyed now.
    pub subjects_erased: Vec<String>,
    /// The `erased` events appended, one per subject.
    pub events: Vec<StoredEvent>,
}

/// Erases everything of `phone` at `site` (every site when `None`).
pub async fn erase_phone(store: &DynStore, keys: &Keyring, phone: &PhoneNumber, site: Option<&Site>, actor: &str) -> Result<Erasure, ApiError> {
    let subjects = store.subjects_by_lookup(&keys.phone_lookup(phone)).await?;
    let mut targets: Vec<(String, String, Reference)> = Vec::new();
    for subject in subjects.iter().filter(|s| site.is_none_or(|site| site.id == s.site_id)) {
        let (latest, confirmed) = subject_history(store, subject).await?;
        // The person's own subject, named by the reference of their latest event.
        if let Some(latest) = latest {
            targets.push((subject.site_id.clone(), subject.id.clone(), latest));
        }
        for reference in &confirmed {
            if let Some(grant) = store.grant_by_reference(&subject.site_id, reference).await?
                && grant.subject_id != subject.id && !targets.iter().any(|(_, id, _)| *id == grant.subject_id) {
                    targets.push((grant.site_id.clone(), grant.subject_id.clone(), grant.reference.clone()));
                }
        }
    }
    // The events first: if destroying the keys then fails, running the erasure again finds
    // the number and finishes; the other way round the number would no longer be found.
    let mut events = Vec::new();
    for (site_id, subject_id, reference) in &targets {
        if store.subject(subject_id).await?.is_some_and(|s| s.erased_at.is_some()) {
            continue;
        }
        let event = NewEvent {
            id: new_event_id(),
            site_id: site_id.clone(),
            action: Action::Erased,
            method: Method::Admin,
            reference: reference.clone(),
            subject_id: subject_id.clone(),
            new_subject: None,
            purposes: Vec::new(),
            notice_id: None,
            notice_sha256: None,
            personal: None,
            details: r#"{"basis":"GDPR Art. 17"}"#.into(),
            actor: actor.to_owned(),
            recorded_at: now(),
        };
        events.push(store.append(event).await?);
    }
    let ids: Vec<String> = targets.into_iter().map(|(_, id, _)| id).collect();
    let subjects_erased = store.erase_subjects(&ids, now()).await?;
    // The WhatsApp messages the number sent no longer point at it (their times were kept
    // for the customer-service window).
    if let Some(wa) = store.whatsapp() {
        wa.forget_sender(site.map(|s| s.id.as_str()), &keys.phone_lookup(phone)).await?;
    }
    for event in &events {
        tracing::info!(event = %event.id, "subject erased (GDPR Art. 17)");
    }
    Ok(Erasure { subjects_erased, events })
}

/// The ids of an erasure's events, for answers.
pub fn event_ids(erasure: &Erasure) -> Vec<EventId> {
    erasure.events.iter().map(|e| e.id.clone()).collect()
}

/// The reference of a subject's latest event, and the references its `confirmed` events
/// name (each once, in log order), read through the whole history: a person with more
/// events than one read returns must have every web consent they confirmed erased, not
/// only those among their oldest events.
async fn subject_history(store: &DynStore, subject: &Subject) -> Result<(Option<Reference>, Vec<Reference>), ApiError> {
    let filter = EventFilter { site_id: Some(subject.site_id.clone()), subjects: Some(vec![subject.id.clone()]), ..EventFilter::default() };
    let (mut latest, mut confirmed, mut seen) = (None, Vec::new(), HashSet::new());
    each_event(store, filter, |event| {
        if event.action == Action::Confirmed && seen.insert(event.reference.clone()) {
            confirmed.push(event.reference.clone());
        }
        latest = Some(event.reference);
    })
    .await?;
    Ok((latest, confirmed))
}

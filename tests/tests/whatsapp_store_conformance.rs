//! The WhatsApp webhook's store methods, one behaviour on both stores: every test runs
//! through `Store::whatsapp()` against a fresh SQLite file and a fresh PostgreSQL database.
//! Written once as `async fn name(store: &DynStore)`; `conformance!` makes a test per backend.

use cornetta_server::consents::{new_event_id, new_reference, now};
use cornetta_server::ledger;
use cornetta_server::store::whatsapp::{ConfirmGuard, InboundMessage, InboundOutcome, MetaApp, OptOutSettings, Outcome, PhoneNumberId, WaNumber};
use cornetta_server::store::{DatabaseUrl, DynStore, EventFilter, NewEvent, Site, StoreError, StoredEvent, Subject};
use cornetta_shared::{Action, Lang, Method, PhoneNumber, Purpose, Reference};
use cornetta_tests::pg::TestDatabase;
use jiff::Timestamp;

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDatabase),
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn open(backend: Backend) -> (DynStore, Keep) {
    let (url, keep) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temp dir");
            (DatabaseUrl::Sqlite(dir.path().join("cornetta.db")), Keep::Sqlite(dir))
        }
        Backend::Postgres => {
            let db = TestDatabase::create().await.expect("a fresh PostgreSQL database");
            (DatabaseUrl::Postgres(db.url.clone()), Keep::Postgres(db))
        }
    };
    (cornetta_server::cli::open_store(&url).await.expect("the store opens"), keep)
}

async fn site(store: &DynStore) -> Site {
    let phone = PhoneNumber::from_e164("+393331234567").unwrap();
    cornetta_server::sites::create(store, "Acme Shop", vec![phone], vec![], Lang::EN).await.unwrap().0
}

fn app(id: &str) -> MetaApp {
    MetaApp {
        id: id.into(),
        name: "Meta app".into(),
        verify_token_sha256: "ab".repeat(32),
        secret_key_wrapped: vec![1, 2, 3],
        secret_sealed: vec![4, 5, 6],
        created_at: now(),
    }
}

fn pnid(id: &str) -> PhoneNumberId {
    PhoneNumberId::parse(id).unwrap()
}

fn number(site: &Site, id: &str, app: &str) -> WaNumber {
    WaNumber { phone_number_id: pnid(id), site_id: site.id.clone(), phone: site.phones[0].clone(), app_id: app.into(), created_at: now() }
}

async fn subject(store: &DynStore, site: &Site, lookup: &str) -> Subject {
    let fresh = Subject { id: format!("sub_{}", uuid::Uuid::now_v7().simple()), site_id: site.id.clone(), lookup: Some(lookup.into()), wrapped_key: Some(vec![9]), created_at: now(), erased_at: None };
    store.subject_for_lookup(fresh).await.unwrap()
}

fn event(site: &Site, action: Action, reference: &Reference, subject: &str) -> NewEvent {
    NewEvent {
        id: new_event_id(),
        site_id: site.id.clone(),
        action,
        method: Method::Whatsapp,
        reference: reference.clone(),
        subject_id: subject.into(),
        new_subject: None,
        purposes: vec![Purpose::Utility],
        notice_id: None,
        notice_sha256: None,
        personal: Some(vec![7; 40]),
        details: r#"{"channel":"whatsapp_cloud_api"}"#.into(),
        actor: "whatsapp".into(),
        recorded_at: now(),
    }
}

fn message(site: &Site, key_byte: char, lookup: Option<&str>, sent_at: i64, outcome: Outcome) -> InboundMessage {
    InboundMessage {
        site_id: site.id.clone(),
        message_key: key_byte.to_string().repeat(64),
        phone_number_id: pnid("106540352242922"),
        lookup: lookup.map(str::to_owned),
        kind: "text".into(),
        outcome,
        sent_at: Timestamp::from_second(sent_at).unwrap(),
        received_at: now(),
        guard: None,
    }
}

async fn site_log(store: &DynStore, site: &Site) -> Vec<StoredEvent> {
    let mut events = store.events(&EventFilter { site_id: Some(site.id.clone()), ..EventFilter::default() }, 10_000).await.unwrap();
    events.sort_by_key(|e| e.seq);
    events
}

fn assert_gap_free(events: &[StoredEvent]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seq gap at {}", e.id);
        assert_eq!(ledger::recompute_leaf_hash(e), e.leaf_hash, "leaf of {}", e.id);
    }
}

async fn apps_numbers_and_settings_round_trip(store: &DynStore) {
    let wa = store.whatsapp().expect("this backend has the WhatsApp tables");
    let site = site(store).await;
    assert!(wa.list_apps().await.unwrap().is_empty());
    let a = wa.create_app(app("waa_a")).await.unwrap();
    wa.create_app(app("waa_b")).await.unwrap();
    let apps = wa.list_apps().await.unwrap();
    assert_eq!(apps.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["waa_a", "waa_b"]);
    assert_eq!((apps[0].secret_sealed.clone(), apps[0].verify_token_sha256.clone()), (a.secret_sealed, a.verify_token_sha256));

    wa.add_number(number(&site, "106540352242922", "waa_a")).await.unwrap();
    let again = wa.add_number(number(&site, "106540352242922", "waa_b")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let found = wa.number(&pnid("106540352242922")).await.unwrap().unwrap();
    assert_eq!((found.app_id.as_str(), found.phone.as_str()), ("waa_a", "+393331234567"));
    assert!(wa.number(&pnid("1")).await.unwrap().is_none());
    assert!(matches!(wa.remove_app("waa_a").await, Err(StoreError::Conflict(_))), "an app serving a number stays");
    assert!(wa.remove_app("waa_b").await.unwrap());
    assert!(!wa.remove_app("waa_b").await.unwrap());
    assert!(wa.remove_number(&pnid("106540352242922")).await.unwrap());
    assert!(!wa.remove_number(&pnid("106540352242922")).await.unwrap());
    assert!(wa.list_numbers().await.unwrap().is_empty());

    assert_eq!(wa.opt_out_settings(&site.id).await.unwrap(), OptOutSettings::default());
    let custom = OptOutSettings { keywords: Some(vec!["HALT".into(), "FERMA".into()]), reply: Some("Fatto.".into()) };
    wa.set_opt_out_settings(&site.id, custom.clone()).await.unwrap();
    assert_eq!(wa.opt_out_settings(&site.id).await.unwrap(), custom);
    wa.set_opt_out_settings(&site.id, OptOutSettings::default()).await.unwrap();
    assert_eq!(wa.opt_out_settings(&site.id).await.unwrap(), OptOutSettings::default());
}

async fn an_inbound_message_and_its_events_are_recorded_once(store: &DynStore) {
    let wa = store.whatsapp().unwrap();
    let site = site(store).await;
    let person = subject(store, &site, &"1".repeat(64)).await;
    let reference = Reference::parse("K7QXM-2PA9R").unwrap();
    // An event appended the usual way first: the message's events continue the log.
    store.append(event(&site, Action::Withdrawn, &new_reference(), &person.id)).await.unwrap();
    let events = vec![event(&site, Action::Confirmed, &reference, &person.id), event(&site, Action::Withdrawn, &reference, &person.id)];
    let first = wa.record_inbound(message(&site, 'a', Some(&"1".repeat(64)), 1_000, Outcome::Withdrawn), events.clone()).await.unwrap();
    let InboundOutcome::Recorded { outcome, events: stored } = first else { panic!("recorded, not {first:?}") };
    assert_eq!((outcome, stored.iter().map(|e| e.seq).collect::<Vec<_>>()), (Outcome::Withdrawn, vec![1, 2]));
    // The same message again, even with other events: nothing written.
    let retry = wa.record_inbound(message(&site, 'a', Some(&"1".repeat(64)), 1_000, Outcome::Withdrawn), vec![event(&site, Action::Confirmed, &reference, &person.id)]).await.unwrap();
    assert_eq!(retry, InboundOutcome::Duplicate);
    let log = site_log(store, &site).await;
    assert_eq!(log.len(), 3);
    assert_gap_free(&log);
    // Another STOP for a reference already withdrawn: the message is kept, no event is
    // written, and its outcome says there was nothing to withdraw.
    let again = wa.record_inbound(message(&site, 'e', Some(&"3".repeat(64)), 2_000, Outcome::Withdrawn), vec![event(&site, Action::Withdrawn, &reference, &person.id)]).await.unwrap();
    assert_eq!(again, InboundOutcome::Recorded { outcome: Outcome::NothingToWithdraw, events: vec![] });
    assert_eq!(site_log(store, &site).await.len(), 3);
    assert_eq!(log[1].details, r#"{"channel":"whatsapp_cloud_api"}"#);

    // The window reads the latest message per person, whatever the order they came in.
    wa.record_inbound(message(&site, 'b', Some(&"1".repeat(64)), 5_000, Outcome::None), vec![]).await.unwrap();
    wa.record_inbound(message(&site, 'c', Some(&"1".repeat(64)), 3_000, Outcome::None), vec![]).await.unwrap();
    wa.record_inbound(message(&site, 'd', None, 9_000, Outcome::NoNumber), vec![]).await.unwrap();
    assert_eq!(wa.last_inbound(&site.id, &"1".repeat(64)).await.unwrap(), Some(Timestamp::from_second(5_000).unwrap()));
    assert_eq!(wa.last_inbound(&site.id, &"2".repeat(64)).await.unwrap(), None);
    // Erasure unlinks the number from its messages; the messages stay known as seen.
    assert_eq!(wa.forget_sender(Some("site_other"), &"1".repeat(64)).await.unwrap(), 0);
    assert_eq!(wa.forget_sender(Some(&site.id), &"1".repeat(64)).await.unwrap(), 3);
    assert_eq!(wa.last_inbound(&site.id, &"1".repeat(64)).await.unwrap(), None);
    let again = wa.record_inbound(message(&site, 'b', Some(&"1".repeat(64)), 5_000, Outcome::None), vec![]).await.unwrap();
    assert_eq!(again, InboundOutcome::Duplicate);

    let grant = NewEvent { action: Action::Granted, ..event(&site, Action::Granted, &reference, &person.id) };
    let refused = wa.record_inbound(message(&site, 'e', None, 1, Outcome::None), vec![grant]).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
}

async fn the_first_number_to_confirm_a_reference_keeps_it(store: &DynStore) {
    let wa = store.whatsapp().unwrap();
    let site = site(store).await;
    let first = subject(store, &site, &"1".repeat(64)).await;
    let second = subject(store, &site, &"2".repeat(64)).await;
    let reference = Reference::parse("K7QXM-2PA9R").unwrap();
    let confirm = |subject: &Subject, key: char| {
        let mut m = message(&site, key, subject.lookup.as_deref(), 1_000, Outcome::Confirmed);
        m.guard = Some(ConfirmGuard { reference: reference.clone(), subject_id: subject.id.clone() });
        (m, vec![event(&site, Action::Confirmed, &reference, &subject.id)])
    };
    // Both numbers race to confirm: exactly one wins, the other is told the reference is taken.
    let (m1, e1) = confirm(&first, 'a');
    let (m2, e2) = confirm(&second, 'b');
    let (r1, r2) = tokio::join!(wa.record_inbound(m1, e1), wa.record_inbound(m2, e2));
    let outcomes: Vec<(Outcome, usize)> = [r1.unwrap(), r2.unwrap()]
        .into_iter()
        .map(|r| match r {
            InboundOutcome::Recorded { outcome, events } => (outcome, events.len()),
            InboundOutcome::Duplicate => panic!("two different messages"),
        })
        .collect();
    assert!(outcomes.contains(&(Outcome::Confirmed, 1)) && outcomes.contains(&(Outcome::ReferenceTaken, 0)), "{outcomes:?}");
    let log = site_log(store, &site).await;
    assert_eq!(log.len(), 1);
    let winner = log[0].subject_id.clone();
    let (m3, e3) = confirm(if winner == first.id { &first } else { &second }, 'c');
    assert_eq!(wa.record_inbound(m3, e3).await.unwrap(), InboundOutcome::Recorded { outcome: Outcome::AlreadyConfirmed, events: vec![] });
    assert_eq!(site_log(store, &site).await.len(), 1);
}

async fn concurrent_messages_and_appends_keep_the_log_gap_free(store: &DynStore) {
    let wa = store.whatsapp().unwrap();
    let site = site(store).await;
    let person = subject(store, &site, &"1".repeat(64)).await;
    let keys: Vec<String> = (0..20).map(|i| format!("{i:064x}")).collect();
    let inbound = keys.iter().map(|key| {
        let mut m = message(&site, 'x', Some(&"1".repeat(64)), 1_000, Outcome::Withdrawn);
        m.message_key = key.clone();
        wa.record_inbound(m, vec![event(&site, Action::Withdrawn, &new_reference(), &person.id)])
    });
    let appends = (0..20).map(|_| store.append(event(&site, Action::Withdrawn, &new_reference(), &person.id)));
    let (inbound, appends) = tokio::join!(futures::future::join_all(inbound), futures::future::join_all(appends));
    assert!(inbound.iter().all(|r| matches!(r, Ok(InboundOutcome::Recorded { .. }))));
    assert!(appends.iter().all(Result::is_ok));
    let log = site_log(store, &site).await;
    assert_eq!(log.len(), 40);
    assert_gap_free(&log);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _keep) = super::open(super::Backend::Sqlite).await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _keep) = super::open(super::Backend::Postgres).await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

conformance!(
    apps_numbers_and_settings_round_trip,
    an_inbound_message_and_its_events_are_recorded_once,
    the_first_number_to_confirm_a_reference_keeps_it,
    concurrent_messages_and_appends_keep_the_log_gap_free,
);

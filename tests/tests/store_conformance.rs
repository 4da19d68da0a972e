//! One behaviour, two stores: every test here runs through the `Store` trait against a
//! fresh SQLite file (`sqlite::…`) and a fresh PostgreSQL database (`postgres::…`).
//!
//! Each test is written once as `async fn name(db: &mut TestStore)`; the `conformance!`
//! macro at the bottom makes one `#[tokio::test]` per backend from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use cornetta_server::consents::{new_event_id, new_reference, now};
use cornetta_server::error::ApiError;
use cornetta_server::ledger;
use cornetta_server::store::{DatabaseUrl, DynStore, EventFilter, LogPosition, NewEvent, NewToken, Notice, Role, Site, StoreError, StoredEvent, Subject};
use cornetta_shared::{Action, EventId, Lang, Method, PhoneNumber, Purpose, Reference};
use cornetta_tests::pg::TestDatabase;
use jiff::Timestamp;

/// A store under test, and a second, raw connection to the same database (what someone
/// with database access could do behind the store's back).
struct TestStore {
    store: DynStore,
    url: DatabaseUrl,
    _keep: Keep,
}

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDatabase),
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl TestStore {
    async fn new(backend: Backend) -> Self {
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
        let store = cornetta_server::cli::open_store(&url).await.expect("the store opens");
        Self { store, url, _keep: keep }
    }

    /// Closes the store and opens the same database again (a restart).
    async fn reopen(&mut self) {
        self.store = cornetta_server::cli::open_store(&self.url).await.expect("the store opens again");
    }

    /// Runs one statement on a separate connection; `Err` carries the database's refusal.
    async fn raw(&self, sql: &str) -> Result<u64, String> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let pool = sqlx::SqlitePool::connect_with(options).await.map_err(|e| e.to_string())?;
                let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.map_err(|e| e.to_string());
                pool.close().await;
                done.map(|d| d.rows_affected())
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.map_err(|e| e.to_string())?;
                let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&pool).await.map_err(|e| e.to_string());
                pool.close().await;
                done.map(|d| d.rows_affected())
            }
        }
    }
}

async fn site(store: &DynStore, business: &str) -> Site {
    let phone = PhoneNumber::from_e164("+393331234567").expect("a valid number");
    let (site, notices) = cornetta_server::sites::create(store, business, vec![phone], vec!["https://shop.example".into()], Lang::EN)
        .await
        .expect("the site is created");
    assert!(!notices.is_empty(), "a new site has notices");
    site
}

fn fresh_subject(site: &Site) -> Subject {
    Subject {
        id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
        site_id: site.id.clone(),
        lookup: None,
        wrapped_key: Some(vec![7; 40]),
        created_at: now(),
        erased_at: None,
    }
}

/// A widget grant for a new subject, with the site's English notice.
async fn grant(store: &DynStore, site: &Site, reference: Reference) -> NewEvent {
    let notice = store.current_notice(&site.id, Lang::EN).await.expect("notice query").expect("an English notice");
    let subject = fresh_subject(site);
    NewEvent {
        id: new_event_id(),
        site_id: site.id.clone(),
        action: Action::Granted,
        method: Method::Widget,
        reference,
        subject_id: subject.id.clone(),
        new_subject: Some(subject),
        purposes: vec![Purpose::Utility],
        notice_id: Some(notice.id.clone()),
        notice_sha256: Some(notice.sha256.clone()),
        personal: Some(b"sealed evidence".to_vec()),
        details: "{}".into(),
        actor: "widget".into(),
        recorded_at: now(),
    }
}

fn withdrawal_of(granted: &StoredEvent) -> NewEvent {
    NewEvent {
        id: new_event_id(),
        site_id: granted.site_id.clone(),
        action: Action::Withdrawn,
        method: Method::Admin,
        reference: granted.reference.clone(),
        subject_id: granted.subject_id.clone(),
        new_subject: None,
        purposes: granted.purposes.clone(),
        notice_id: granted.notice_id.clone(),
        notice_sha256: granted.notice_sha256.clone(),
        personal: None,
        details: "{\"reason\":\"asked\"}".into(),
        actor: "token:tok_test".into(),
        recorded_at: now(),
    }
}

/// Appends every event at once, one task each (so the store's writer batches them); all must
/// succeed. What each append returned, in the order given.
async fn append_concurrently(store: &DynStore, events: Vec<NewEvent>) -> Vec<StoredEvent> {
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = Arc::clone(store);
            tokio::spawn(async move { store.append(event).await })
        })
        .collect();
    let mut returned = Vec::with_capacity(tasks.len());
    for task in tasks {
        returned.push(task.await.unwrap().expect("every append succeeds"));
    }
    returned
}

/// Every event of every site, in log order.
async fn all_events(store: &DynStore) -> Vec<StoredEvent> {
    store.events(&EventFilter::default(), 100_000).await.expect("events")
}

/// Per site, the seqs must be exactly 0..n, and each leaf must recompute.
fn assert_logs_are_whole(events: &[StoredEvent]) {
    let mut by_site: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in events {
        by_site.entry(&event.site_id).or_default().push(event.seq);
        assert_eq!(ledger::recompute_leaf_hash(event), event.leaf_hash, "leaf hash of {} (seq {})", event.id, event.seq);
    }
    for (site, mut seqs) in by_site {
        seqs.sort_unstable();
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "site {site}: seqs must be 0..n with no gap and no duplicate");
    }
}

// ---- sites ------------------------------------------------------------------------------

async fn sites_are_found_by_key_and_id_and_listed_oldest_first(db: &mut TestStore) {
    let first = site(&db.store, "First Shop").await;
    let second = site(&db.store, "Second Shop").await;
    assert_eq!(db.store.site_by_key(&first.key).await.unwrap().as_ref(), Some(&first));
    assert_eq!(db.store.site_by_id(&second.id).await.unwrap().as_ref(), Some(&second));
    let listed: Vec<String> = db.store.list_sites().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![first.id.clone(), second.id.clone()]);
    assert_eq!(first.phones[0].as_str(), "+393331234567");
    assert_eq!(first.allowed_origins, vec!["https://shop.example".to_owned()]);
    assert_eq!(first.widget, serde_json::json!({}));
    let unknown = cornetta_server::sites::new_site_key();
    assert_eq!(db.store.site_by_key(&unknown).await.unwrap(), None);
    assert_eq!(db.store.site_by_id("site_nope").await.unwrap(), None);
}

async fn site_origins_are_replaced_and_an_unknown_site_is_not_found(db: &mut TestStore) {
    let shop = site(&db.store, "Origin Shop").await;
    let origins = vec!["https://a.example".to_owned(), "http://127.0.0.1:8081".to_owned()];
    db.store.update_site_origins(&shop.id, origins.clone()).await.unwrap();
    assert_eq!(db.store.site_by_id(&shop.id).await.unwrap().unwrap().allowed_origins, origins);
    let missing = db.store.update_site_origins("site_nope", vec![]).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let widget = serde_json::json!({"greeting": {"en": "Hi \"there\" ✓"}, "agents": [{"name": "Giulia", "phone": "+393331234567"}]});
    db.store.update_site_widget(&shop.id, widget.clone()).await.unwrap();
    assert_eq!(db.store.site_by_id(&shop.id).await.unwrap().unwrap().widget, widget, "widget settings round-trip");
    let missing = db.store.update_site_widget("site_nope", widget).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
}

// ---- notices ----------------------------------------------------------------------------

async fn notices_get_the_next_version_per_language_and_current_is_the_newest(db: &mut TestStore) {
    let shop = site(&db.store, "Notice Shop").await;
    let first = db.store.current_notice(&shop.id, Lang::EN).await.unwrap().expect("an English notice");
    assert_eq!(first.version, 1);
    let (intro, purposes) = cornetta_server::notice::template(Lang::EN, "Notice Shop").unwrap();
    let new = cornetta_server::notice::prepare(&shop.id, Lang::EN, &format!("{intro} Updated."), purposes, Some("https://shop.example/privacy".into()))
        .unwrap();
    let second = db.store.publish_notice(new.clone()).await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.canonical_text, new.canonical_text);
    assert_eq!(second.sha256, new.sha256);
    assert_eq!(second.published_at.as_microsecond(), new.published_at.as_microsecond(), "times are kept to the microsecond");
    assert_eq!(db.store.current_notice(&shop.id, Lang::EN).await.unwrap().as_ref(), Some(&second));
    assert_eq!(db.store.notice(&first.id).await.unwrap().as_ref(), Some(&first), "old versions stay readable");
    let italian = db.store.current_notice(&shop.id, Lang::parse("it").unwrap()).await.unwrap().unwrap();
    assert_eq!(italian.version, 1, "versions count per language");
    assert_eq!(db.store.current_notice(&shop.id, Lang::parse("ja").unwrap()).await.unwrap(), None);

    // The history: every version of every language, by language then version, this site's only.
    let other = site(&db.store, "Other Shop").await;
    let history = db.store.notices(&shop.id).await.unwrap();
    assert!(history.iter().all(|n| n.site_id == shop.id), "only this site's notices");
    let english: Vec<&Notice> = history.iter().filter(|n| n.lang == Lang::EN).collect();
    assert_eq!(english, [&first, &second], "both English versions, oldest first");
    assert!(history.contains(&italian));
    let langs: Vec<&str> = history.iter().map(|n| n.lang.as_str()).collect();
    assert!(langs.is_sorted(), "by language: {langs:?}");
    assert_eq!(history.len(), db.store.notices(&other.id).await.unwrap().len() + 1, "the other site has one version per language");
    assert!(db.store.notices("site_nope").await.unwrap().is_empty());
}

async fn notices_refuse_raw_updates_and_deletes(db: &mut TestStore) {
    let shop = site(&db.store, "Immutable Shop").await;
    let notice = db.store.current_notice(&shop.id, Lang::EN).await.unwrap().unwrap();
    for sql in [
        format!("UPDATE notices SET canonical_text = 'something else' WHERE id = '{}'", notice.id),
        format!("DELETE FROM notices WHERE id = '{}'", notice.id),
    ] {
        let refused = db.raw(&sql).await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("notices are immutable")), "{sql}: {refused:?}");
    }
    assert_eq!(db.store.notice(&notice.id).await.unwrap().as_ref(), Some(&notice));
}

// ---- tokens -----------------------------------------------------------------------------

async fn tokens_are_found_by_hash_listed_and_revoked_once(db: &mut TestStore) {
    let shop = site(&db.store, "Token Shop").await;
    let global = db
        .store
        .create_token(NewToken { id: "tok_global".into(), name: "ops".into(), role: Role::Admin, site_id: None, hash: "a".repeat(64) })
        .await
        .unwrap();
    let scoped = db
        .store
        .create_token(NewToken {
            id: "tok_scoped".into(),
            name: "auditor".into(),
            role: Role::Auditor,
            site_id: Some(shop.id.clone()),
            hash: "b".repeat(64),
        })
        .await
        .unwrap();
    assert_eq!((global.role, global.site_id.as_deref(), global.revoked_at), (Role::Admin, None, None));
    assert_eq!(db.store.token_by_hash(&"b".repeat(64)).await.unwrap().as_ref(), Some(&scoped));
    assert_eq!(db.store.token_by_hash(&"c".repeat(64)).await.unwrap(), None);
    let listed: Vec<String> = db.store.list_tokens().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, vec!["tok_global".to_owned(), "tok_scoped".to_owned()]);

    assert!(db.store.revoke_token("tok_scoped").await.unwrap());
    assert!(!db.store.revoke_token("tok_scoped").await.unwrap(), "a revoked token is not revoked twice");
    assert!(!db.store.revoke_token("tok_nope").await.unwrap());
    let revoked = db.store.token_by_hash(&"b".repeat(64)).await.unwrap().expect("revoked tokens are still found");
    assert!(revoked.revoked_at.is_some());
}

// ---- subjects ---------------------------------------------------------------------------

async fn a_lookup_gives_one_subject_per_site_and_keeps_the_first_key(db: &mut TestStore) {
    let one = site(&db.store, "One Shop").await;
    let two = site(&db.store, "Two Shop").await;
    let lookup = "f".repeat(64);
    let mut first = fresh_subject(&one);
    first.lookup = Some(lookup.clone());
    let created = db.store.subject_for_lookup(first.clone()).await.unwrap();
    assert_eq!(created, first);
    let mut again = fresh_subject(&one);
    again.lookup = Some(lookup.clone());
    again.wrapped_key = Some(vec![9; 40]);
    assert_eq!(db.store.subject_for_lookup(again).await.unwrap(), first, "the same number at the same site is the same person");
    let mut elsewhere = fresh_subject(&two);
    elsewhere.lookup = Some(lookup.clone());
    let other = db.store.subject_for_lookup(elsewhere).await.unwrap();
    assert_ne!(other.id, first.id);
    let found: Vec<String> = db.store.subjects_by_lookup(&lookup).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(found.len(), 2);
    assert!(found.contains(&first.id) && found.contains(&other.id));
    assert_eq!(db.store.subject(&first.id).await.unwrap().as_ref(), Some(&first));
    assert_eq!(db.store.subject("sub_nope").await.unwrap(), None);
    let no_lookup = db.store.subject_for_lookup(fresh_subject(&one)).await;
    assert!(matches!(no_lookup, Err(StoreError::Invalid(_))), "{no_lookup:?}");
}

/// A status is never derived from a cut-off history: the stores return at most
/// `MAX_PERSON_EVENTS` of a person's events, and at that many the lookup says so instead of
/// answering from the oldest ones (which could miss a later withdrawal).
async fn a_status_is_refused_rather_than_derived_from_a_cut_off_history(db: &mut TestStore) {
    let shop = site(&db.store, "Busy Number Shop").await;
    let keys = cornetta_server::keys::Keyring::from_secrets([3; 32], [4; 32]);
    let phone = PhoneNumber::from_e164("+393339876543").expect("a valid number");
    let mut person = fresh_subject(&shop);
    person.lookup = Some(keys.phone_lookup(&phone));
    let person = db.store.subject_for_lookup(person).await.expect("the subject");
    let max = cornetta_server::store::MAX_PERSON_EVENTS as usize;
    let mut template = grant(&db.store, &shop, new_reference()).await;
    template.subject_id = person.id.clone();
    template.new_subject = None;
    let more = |count: usize| (0..count).map(|_| NewEvent { id: new_event_id(), reference: new_reference(), ..template.clone() }).collect::<Vec<_>>();
    append_concurrently(&db.store, more(max - 1)).await;
    let found = cornetta_server::status::of_phone(&db.store, &keys, &shop, &phone, now()).await.expect("a status below the cap");
    assert_eq!(found.events.len(), max - 1);
    assert!(found.purposes.iter().any(|p| p.purpose == Purpose::Utility && p.consented));
    append_concurrently(&db.store, more(1)).await;
    match cornetta_server::status::of_phone(&db.store, &keys, &shop, &phone, now()).await {
        Err(ApiError::Conflict { code, message }) => assert!(code == "too_many_events" && message.contains("export"), "{code}: {message}"),
        other => panic!("at the cap a status must be refused, got {:?}", other.map(|f| f.events.len())),
    }
}

/// A person's whole history is read wherever it decides something: a web consent they
/// confirmed on WhatsApp after more `confirmed` events than one read returns
/// (`MAX_PERSON_EVENTS`) is still found by their number, and erased with it; the `erased`
/// event names their latest reference.
async fn a_web_consent_confirmed_after_the_first_read_is_found_and_erased(db: &mut TestStore) {
    let shop = site(&db.store, "Long History Shop").await;
    let keys = cornetta_server::keys::Keyring::from_secrets([3; 32], [4; 32]);
    let phone = PhoneNumber::from_e164("+393339876500").expect("a valid number");
    let web = db.store.append(grant(&db.store, &shop, new_reference()).await).await.expect("the web grant");
    let mut person = fresh_subject(&shop);
    person.lookup = Some(keys.phone_lookup(&phone));
    let person = db.store.subject_for_lookup(person).await.expect("the subject");
    // The webhook's `confirmed` events, each naming a reference the person's message carried.
    let confirmation = |reference: Reference| NewEvent {
        id: new_event_id(),
        site_id: shop.id.clone(),
        action: Action::Confirmed,
        method: Method::Whatsapp,
        reference,
        subject_id: person.id.clone(),
        new_subject: None,
        purposes: web.purposes.clone(),
        notice_id: web.notice_id.clone(),
        notice_sha256: web.notice_sha256.clone(),
        personal: None,
        details: "{}".into(),
        actor: "whatsapp".into(),
        recorded_at: now(),
    };
    let max = cornetta_server::store::MAX_PERSON_EVENTS as usize;
    append_concurrently(&db.store, (0..max).map(|_| confirmation(new_reference())).collect()).await;
    let last = db.store.append(confirmation(web.reference.clone())).await.expect("the confirmation of the web grant");

    let mut filter = EventFilter::default();
    cornetta_server::consents::person_filter(&db.store, &keys, &phone, &mut filter).await.expect("the person's filter");
    assert_eq!(filter.references.as_ref().map(Vec::len), Some(max + 1), "every confirmed reference, each once");
    let found = db.store.events(&EventFilter { action: Some(Action::Granted), ..filter }, 10).await.expect("events");
    assert_eq!(found.iter().map(|e| &e.id).collect::<Vec<_>>(), [&web.id], "the number finds its web grant");

    let erasure = cornetta_server::erasure::erase_phone(&db.store, &keys, &phone, Some(&shop), "token:tok_test").await.expect("the erasure");
    assert!(erasure.subjects_erased.contains(&web.subject_id), "the web grant's subject is erased: {:?}", erasure.subjects_erased);
    assert!(erasure.subjects_erased.contains(&person.id));
    assert!(db.store.subject(&web.subject_id).await.unwrap().is_some_and(|s| s.erased_at.is_some()));
    let own = erasure.events.iter().find(|e| e.subject_id == person.id).expect("an erased event for the person");
    assert_eq!(own.reference, last.reference, "named by the person's latest event");
}

// ---- appending --------------------------------------------------------------------------

async fn an_appended_event_reads_back_exactly_with_its_new_subject(db: &mut TestStore) {
    let shop = site(&db.store, "Append Shop").await;
    let new = grant(&db.store, &shop, new_reference()).await;
    let subject = new.new_subject.clone().unwrap();
    let stored = db.store.append(new.clone()).await.unwrap();
    assert_eq!(stored.seq, 0);
    assert_eq!(stored.leaf_hash, ledger::leaf_hash_of_new(&new, 0));
    assert_eq!(db.store.event(&stored.id).await.unwrap().as_ref(), Some(&stored));
    assert_eq!(db.store.grant_by_reference(&shop.id, &stored.reference).await.unwrap().as_ref(), Some(&stored));
    assert_eq!(db.store.subject(&subject.id).await.unwrap().as_ref(), Some(&subject), "the subject is created with its event");
    let unknown_event = EventId::parse(&format!("evt_{}", uuid::Uuid::now_v7().simple())).unwrap();
    assert_eq!(db.store.event(&unknown_event).await.unwrap(), None);
    assert_eq!(db.store.grant_by_reference(&shop.id, &new_reference()).await.unwrap(), None);
}

async fn concurrent_appends_give_each_site_a_gap_free_seq(db: &mut TestStore) {
    let sites = [site(&db.store, "Busy Shop").await, site(&db.store, "Other Shop").await];
    let mut events = Vec::new();
    for i in 0..300 {
        events.push(grant(&db.store, &sites[i % 2], new_reference()).await);
    }
    let returned = append_concurrently(&db.store, events).await;
    let stored = all_events(&db.store).await;
    assert_eq!(stored.len(), 300);
    assert_logs_are_whole(&stored);
    for event in &returned {
        assert!(stored.contains(event), "what append returned is what is stored: {}", event.id);
    }
}

async fn a_reused_reference_is_a_conflict_and_the_rest_of_its_batch_is_stored(db: &mut TestStore) {
    let shop = site(&db.store, "Conflict Shop").await;
    let taken = new_reference();
    let first = db.store.append(grant(&db.store, &shop, taken.clone()).await).await.unwrap();
    // Sent together, so that the writer batches the duplicates with good events: both the
    // reference already stored and one reused inside the batch.
    let inside = new_reference();
    let mut events = vec![grant(&db.store, &shop, taken.clone()).await];
    for i in 0..40 {
        let reference = if i % 10 == 0 { inside.clone() } else { new_reference() };
        events.push(grant(&db.store, &shop, reference).await);
    }
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = Arc::clone(&db.store);
            tokio::spawn(async move { store.append(event).await })
        })
        .collect();
    let (mut ok, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(message)) => {
                assert!(message.contains("already used"), "{message}");
                conflicts += 1;
            }
            Err(other) => panic!("a reused reference must be a conflict, not {other:?}"),
        }
    }
    // `taken` once more, `inside` three of four times.
    assert_eq!((ok, conflicts), (37, 4));
    assert_eq!(db.store.grant_by_reference(&shop.id, &taken).await.unwrap().as_ref(), Some(&first));
    let stored = all_events(&db.store).await;
    assert_eq!(stored.len(), 38);
    assert_logs_are_whole(&stored);
}

async fn a_withdrawal_reuses_its_grants_reference(db: &mut TestStore) {
    let shop = site(&db.store, "Withdraw Shop").await;
    let granted = db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap();
    let withdrawn = db.store.append(withdrawal_of(&granted)).await.unwrap();
    assert_eq!((withdrawn.seq, withdrawn.action), (1, Action::Withdrawn));
    let again = db.store.append(withdrawal_of(&granted)).await;
    assert!(matches!(again, Err(StoreError::AlreadyWithdrawn(_))), "a second withdrawal of the same purposes writes nothing: {again:?}");
    assert_eq!(db.store.tree_size(&shop.id).await.unwrap(), 2);
    assert_eq!(db.store.grant_by_reference(&shop.id, &granted.reference).await.unwrap().as_ref(), Some(&granted));
}

async fn withdrawals_at_once_end_each_purpose_exactly_once(db: &mut TestStore) {
    let shop = site(&db.store, "Race Shop").await;
    let mut two = grant(&db.store, &shop, new_reference()).await;
    two.purposes = vec![Purpose::Marketing, Purpose::Utility];
    let granted = db.store.append(two).await.unwrap();
    // A second store on the same database: another server process with its own writer.
    let other = cornetta_server::cli::open_store(&db.url).await.expect("a second store opens");
    for round in 0..3 {
        let reference = if round == 0 { granted.clone() } else { db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap() };
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let mut withdrawal = withdrawal_of(&reference);
                if round == 0 {
                    // Both purposes, marketing alone, utility alone.
                    withdrawal.purposes = [vec![Purpose::Marketing, Purpose::Utility], vec![Purpose::Marketing], vec![Purpose::Utility]][i % 3].clone();
                }
                let store = Arc::clone(if i % 2 == 0 { &db.store } else { &other });
                tokio::spawn(async move { store.append(withdrawal).await })
            })
            .collect();
        let mut written = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(event) => written.push(event),
                Err(StoreError::AlreadyWithdrawn(message)) => assert!(message.contains("already withdrawn"), "{message}"),
                Err(other) => panic!("a withdrawal is written or already made: {other:?}"),
            }
        }
        let filter = EventFilter { references: Some(vec![reference.reference.clone()]), action: Some(Action::Withdrawn), ..EventFilter::default() };
        let stored = db.store.events(&filter, 100).await.unwrap();
        written.sort_by_key(|e| e.seq);
        assert_eq!(written, stored, "round {round}: what the appends returned is what is stored");
        let mut ended: Vec<Purpose> = stored.iter().flat_map(|e| e.purposes.clone()).collect();
        ended.sort_unstable_by_key(|p| p.as_str());
        assert_eq!(ended, reference.purposes, "round {round}: each purpose of the grant is withdrawn exactly once");
    }
    assert_logs_are_whole(&all_events(&db.store).await);
}

async fn an_event_of_an_unknown_site_is_refused_alone(db: &mut TestStore) {
    let shop = site(&db.store, "Real Shop").await;
    let mut bad = grant(&db.store, &shop, new_reference()).await;
    bad.site_id = "site_nope".into();
    if let Some(subject) = &mut bad.new_subject {
        subject.site_id = "site_nope".into();
    }
    let good = grant(&db.store, &shop, new_reference()).await;
    let (bad, good) = tokio::join!(db.store.append(bad), db.store.append(good));
    assert!(bad.is_err(), "an event of no site is refused: {bad:?}");
    assert_eq!(good.expect("the good event is stored").seq, 0);
    assert_logs_are_whole(&all_events(&db.store).await);
}

async fn consent_events_refuse_raw_updates_and_deletes(db: &mut TestStore) {
    let shop = site(&db.store, "Evidence Shop").await;
    let stored = db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap();
    for sql in [
        format!("UPDATE consent_events SET actor = 'someone else' WHERE id = '{}'", stored.id),
        format!("UPDATE consent_events SET seq = seq + 1 WHERE id = '{}'", stored.id),
        format!("DELETE FROM consent_events WHERE id = '{}'", stored.id),
        "DELETE FROM consent_events".to_owned(),
    ] {
        let refused = db.raw(&sql).await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("append-only")), "{sql}: {refused:?}");
    }
    assert_eq!(db.store.event(&stored.id).await.unwrap().as_ref(), Some(&stored));
}

// ---- reading ----------------------------------------------------------------------------

async fn events_filter_by_site_person_reference_purpose_action_and_time(db: &mut TestStore) {
    let shop = site(&db.store, "Filter Shop").await;
    let other = site(&db.store, "Elsewhere").await;
    let mut marketing = grant(&db.store, &shop, new_reference()).await;
    marketing.purposes = vec![Purpose::Utility, Purpose::Marketing];
    let a = db.store.append(marketing).await.unwrap();
    let b = db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap();
    let withdrawn = db.store.append(withdrawal_of(&b)).await.unwrap();
    let c = db.store.append(grant(&db.store, &other, new_reference()).await).await.unwrap();

    let ids = |events: Vec<StoredEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let query = |filter: EventFilter| {
        let store = Arc::clone(&db.store);
        async move { ids(store.events(&filter, 100).await.unwrap()) }
    };
    let cases: Vec<(&str, EventFilter, Vec<EventId>)> = vec![
        ("everything", EventFilter::default(), vec![a.id.clone(), b.id.clone(), withdrawn.id.clone(), c.id.clone()]),
        ("one site", EventFilter { site_id: Some(other.id.clone()), ..Default::default() }, vec![c.id.clone()]),
        (
            "a purpose, matched as a whole name",
            EventFilter { purpose: Some(Purpose::Marketing), ..Default::default() },
            vec![a.id.clone()],
        ),
        ("an action", EventFilter { action: Some(Action::Withdrawn), ..Default::default() }, vec![withdrawn.id.clone()]),
        (
            "a subject",
            EventFilter { subjects: Some(vec![b.subject_id.clone()]), ..Default::default() },
            vec![b.id.clone(), withdrawn.id.clone()],
        ),
        (
            "a subject or a reference",
            EventFilter {
                subjects: Some(vec![c.subject_id.clone()]),
                references: Some(vec![a.reference.clone()]),
                ..Default::default()
            },
            vec![a.id.clone(), c.id.clone()],
        ),
        ("a person nobody knows", EventFilter { subjects: Some(vec![]), references: Some(vec![]), ..Default::default() }, vec![]),
        (
            "from is inclusive",
            EventFilter { from: Some(withdrawn.recorded_at), ..Default::default() },
            vec![withdrawn.id.clone(), c.id.clone()],
        ),
        ("to is exclusive", EventFilter { to: Some(b.recorded_at), ..Default::default() }, vec![a.id.clone()]),
        (
            "conditions combine",
            EventFilter { site_id: Some(shop.id.clone()), action: Some(Action::Granted), purpose: Some(Purpose::Utility), ..Default::default() },
            vec![a.id.clone(), b.id.clone()],
        ),
    ];
    for (what, filter, expected) in cases {
        assert_eq!(query(filter).await, expected, "{what}");
    }
}

/// A person can confirm any number of web grants: a filter naming more references or
/// subjects than SQLite binds variables (32,766) still finds the events.
async fn a_filter_with_tens_of_thousands_of_references_still_finds_the_events(db: &mut TestStore) {
    let shop = site(&db.store, "Many References Shop").await;
    let wanted = db.store.append(grant(&db.store, &shop, new_reference()).await).await.expect("the grant");
    let mut references: Vec<Reference> = (0..40_000).map(|_| new_reference()).collect();
    references.push(wanted.reference.clone());
    let mut subjects: Vec<String> = (0..40_000).map(|i| format!("sub_{i:032x}")).collect();
    subjects.push(wanted.subject_id.clone());
    let by_reference = EventFilter { site_id: Some(shop.id.clone()), references: Some(references.clone()), subjects: Some(Vec::new()), ..EventFilter::default() };
    let found = db.store.events(&by_reference, 10).await.expect("events by 40,001 references");
    assert_eq!(found.iter().map(|e| &e.id).collect::<Vec<_>>(), [&wanted.id]);
    let by_subject = EventFilter { site_id: Some(shop.id.clone()), subjects: Some(subjects), ..EventFilter::default() };
    let found = db.store.events(&by_subject, 10).await.expect("events by 40,001 subjects");
    assert_eq!(found.iter().map(|e| &e.id).collect::<Vec<_>>(), [&wanted.id]);
    // And a short list, bound one variable each, still does too.
    let short = EventFilter { site_id: Some(shop.id.clone()), references: Some(references[39_990..].to_vec()), ..EventFilter::default() };
    assert_eq!(db.store.events(&short, 10).await.expect("events by 11 references").len(), 1);
}

async fn events_page_in_log_order_after_a_cursor(db: &mut TestStore) {
    let shop = site(&db.store, "Paging Shop").await;
    let other = site(&db.store, "Other Paging Shop").await;
    let mut appended = Vec::new();
    for i in 0..25 {
        let at = if i % 2 == 0 { &shop } else { &other };
        appended.push(db.store.append(grant(&db.store, at, new_reference()).await).await.unwrap());
    }
    // Site by site (by site id), each site's events in seq order.
    let mut expected = appended.clone();
    expected.sort_by(|x, y| (x.site_id.as_str(), x.seq).cmp(&(y.site_id.as_str(), y.seq)));
    let expected: Vec<_> = expected.into_iter().map(|e| e.id).collect();
    let mut seen = Vec::new();
    let mut filter = EventFilter::default();
    let ours = |e: &StoredEvent| e.site_id == shop.id || e.site_id == other.id;
    loop {
        let page = db.store.events(&filter, 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        filter.after = Some(LogPosition::of(last));
        seen.extend(page.into_iter().filter(ours).map(|e| e.id));
    }
    assert_eq!(seen, expected, "pages follow log order, with nothing lost or repeated");
    let cursor = LogPosition::of(&appended[0]).to_cursor();
    assert_eq!(LogPosition::parse_cursor(&cursor), Some(LogPosition::of(&appended[0])));
    for bad in ["", "evt_0190", "site_abc", "site_abc.x", "site_.1", "site_a b.1", "site_abc.-1", "site_abc.99999999999999999999"] {
        assert_eq!(LogPosition::parse_cursor(bad), None, "{bad:?}");
    }
}

async fn an_event_that_commits_after_a_later_id_is_not_skipped_by_the_cursor(db: &mut TestStore) {
    // Ids are made before the writer commits: here the earlier id commits second.
    let shop = site(&db.store, "Late Commit Shop").await;
    let early = grant(&db.store, &shop, new_reference()).await;
    let late = grant(&db.store, &shop, new_reference()).await;
    assert!(early.id.as_str() < late.id.as_str());
    let first = db.store.append(late).await.unwrap();
    let filter = EventFilter { site_id: Some(shop.id.clone()), ..Default::default() };
    let page = db.store.events(&filter, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![first.id.clone()]);
    let second = db.store.append(early).await.unwrap();
    let next = db.store.events(&EventFilter { after: Some(LogPosition::of(&page[0])), ..filter }, 10).await.unwrap();
    assert_eq!(next.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![second.id], "the late commit is on the next page");
}

async fn a_log_longer_than_one_read_chunk_is_read_whole_and_in_order(db: &mut TestStore) {
    // Verification reads a log in chunks of a few thousand rows; 9,000 spans three.
    let shop = site(&db.store, "Long Log Shop").await;
    for _ in 0..(9_000 / 100) {
        let mut appends = Vec::new();
        for _ in 0..100 {
            let store = db.store.clone();
            let event = grant(&store, &shop, new_reference()).await;
            appends.push(tokio::spawn(async move { store.append(event).await.unwrap() }));
        }
        for append in appends {
            append.await.unwrap();
        }
    }
    let mut rows = db.store.raw_events(&shop.id);
    let mut seqs = Vec::new();
    while let Some(batch) = futures::StreamExt::next(&mut rows).await {
        seqs.extend(batch.unwrap().into_iter().map(|e| e.seq));
    }
    assert_eq!(seqs, (0..9_000).collect::<Vec<i64>>(), "every row once, in seq order");
}

async fn times_keep_their_microseconds(db: &mut TestStore) {
    let shop = site(&db.store, "Clock Shop").await;
    let mut event = grant(&db.store, &shop, new_reference()).await;
    event.recorded_at = Timestamp::from_microsecond(1_772_532_000_123_457).unwrap();
    let stored = db.store.append(event).await.unwrap();
    let read = db.store.event(&stored.id).await.unwrap().unwrap();
    assert_eq!(read.recorded_at.as_microsecond(), 1_772_532_000_123_457);
    assert_eq!(ledger::recompute_leaf_hash(&read), read.leaf_hash);
}

async fn acknowledged_events_survive_reopening_the_store(db: &mut TestStore) {
    let shop = site(&db.store, "Durable Shop").await;
    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        acknowledged.push(db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap());
    }
    db.reopen().await;
    assert_eq!(all_events(&db.store).await, acknowledged);
    let next = db.store.append(grant(&db.store, &shop, new_reference()).await).await.unwrap();
    assert_eq!(next.seq, 20, "the log continues where it was");
    assert_eq!(db.store.site_by_id(&shop.id).await.unwrap().as_ref(), Some(&shop));
}

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let mut db = super::TestStore::new(super::Backend::Sqlite).await;
                    super::$name(&mut db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let mut db = super::TestStore::new(super::Backend::Postgres).await;
                    super::$name(&mut db).await;
                }
            )+
        }
    };
}

conformance!(
    sites_are_found_by_key_and_id_and_listed_oldest_first,
    site_origins_are_replaced_and_an_unknown_site_is_not_found,
    notices_get_the_next_version_per_language_and_current_is_the_newest,
    notices_refuse_raw_updates_and_deletes,
    tokens_are_found_by_hash_listed_and_revoked_once,
    a_lookup_gives_one_subject_per_site_and_keeps_the_first_key,
    a_status_is_refused_rather_than_derived_from_a_cut_off_history,
    a_web_consent_confirmed_after_the_first_read_is_found_and_erased,
    an_appended_event_reads_back_exactly_with_its_new_subject,
    concurrent_appends_give_each_site_a_gap_free_seq,
    a_reused_reference_is_a_conflict_and_the_rest_of_its_batch_is_stored,
    a_withdrawal_reuses_its_grants_reference,
    withdrawals_at_once_end_each_purpose_exactly_once,
    an_event_of_an_unknown_site_is_refused_alone,
    consent_events_refuse_raw_updates_and_deletes,
    events_filter_by_site_person_reference_purpose_action_and_time,
    a_filter_with_tens_of_thousands_of_references_still_finds_the_events,
    events_page_in_log_order_after_a_cursor,
    an_event_that_commits_after_a_later_id_is_not_skipped_by_the_cursor,
    a_log_longer_than_one_read_chunk_is_read_whole_and_in_order,
    times_keep_their_microseconds,
    acknowledged_events_survive_reopening_the_store,
);

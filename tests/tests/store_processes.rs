//! The store under real processes: two `cornetta serve` on one PostgreSQL database writing
//! in parallel keep each site's log one gap-free, correctly ordered sequence; and a server
//! killed (SIGKILL) right after acknowledging consents has every one of them after restart,
//! on SQLite and on PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cornetta_server::ledger;
use cornetta_server::store::{DatabaseUrl, DynStore, EventFilter, StoredEvent};
use cornetta_shared::api::ConsentCreated;
use cornetta_tests::load::{Budget, ConsentTarget, run_writers};
use cornetta_tests::pg::TestDatabase;
use cornetta_tests::{Server, client, wait_for};

const UNLIMITED: [&str; 2] = ["--public-writes-per-minute", "100000000"];

async fn all_events(url: &DatabaseUrl) -> Vec<StoredEvent> {
    let store: DynStore = cornetta_server::cli::open_store(url).await.expect("the store opens");
    store.events(&EventFilter::default(), 1_000_000).await.expect("events")
}

/// Per site: seqs are exactly 0..n (no gap, no duplicate), and each leaf recomputes (it
/// commits to its seq, so a leaf stored under another position would not).
fn assert_logs_are_whole(events: &[StoredEvent]) {
    let mut by_site: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for event in events {
        assert_eq!(ledger::recompute_leaf_hash(event), event.leaf_hash, "leaf hash of {} (seq {})", event.id, event.seq);
        by_site.entry(&event.site_id).or_default().push(event);
    }
    for (site, log) in by_site {
        let mut seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..log.len() as u64).collect::<Vec<_>>(), "site {site}: seqs must be 0..n, no gap, no duplicate");
    }
}

fn assert_all_stored(created: &[ConsentCreated], stored: &[StoredEvent]) {
    let ids: HashSet<&str> = stored.iter().map(|e| e.id.as_str()).collect();
    let missing: Vec<&str> = created.iter().map(|c| c.id.as_str()).filter(|id| !ids.contains(id)).collect();
    assert!(missing.is_empty(), "{} acknowledged consents are missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
}

fn create_site(server: &Server, business: &str) -> String {
    let out = server.cli(&["site", "create", "--business", business, "--phone", "+393331234567", "--origin", "http://127.0.0.1:8081"]);
    assert!(out.status.success(), "site create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn two_servers_on_one_postgres_keep_every_sites_log_gap_free_under_parallel_writes() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url.clone();
    // One data directory: both processes must share the master key, as a real deployment
    // behind a load balancer would.
    let data = tempfile::tempdir().unwrap();
    let a = Server::builder().data_dir(data.path()).args(["--database-url", url.as_str()]).args(UNLIMITED).start().unwrap();
    let b = Server::builder().data_dir(data.path()).args(["--database-url", url.as_str()]).args(UNLIMITED).start().unwrap();
    assert!(b.site_key.is_none(), "the second process finds the default site instead of making another");
    let first = ConsentTarget::discover(&client(), &a.url, a.site_key.as_deref().unwrap()).await.unwrap();
    let second_key = create_site(&a, "Second Shop");
    let second = ConsentTarget::discover(&client(), &b.url, &second_key).await.unwrap();

    // 2 × 16 clients: 8 per (server, site) pair, so both processes write both logs.
    let targets = [first.clone(), first.on(&b.url), second.clone(), second.on(&a.url)];
    let outcome = run_writers(&targets, 8, Budget { per_writer: 25, time: Duration::from_secs(120) }).await;
    assert_eq!(outcome.failures, 0, "every write succeeds: {:?}", outcome.first_failure);
    assert_eq!(outcome.created.len(), 32 * 25);

    let stored = all_events(&DatabaseUrl::Postgres(url)).await;
    assert_eq!(stored.len(), outcome.created.len(), "nothing more was stored than was acknowledged");
    assert_all_stored(&outcome.created, &stored);
    assert_logs_are_whole(&stored);
    let sites: HashSet<&str> = stored.iter().map(|e| e.site_id.as_str()).collect();
    assert_eq!(sites.len(), 2);
}

/// 32 writers post until the first failure; the server is SIGKILLed once 400 consents
/// were acknowledged, restarted, and must have every acknowledged one.
async fn write_until_killed(mut server: Server, database: DatabaseUrl) {
    let target = ConsentTarget::discover(&client(), &server.url, server.site_key.as_deref().unwrap()).await.unwrap();
    let acknowledged: Arc<Mutex<Vec<ConsentCreated>>> = Arc::default();
    let writers: Vec<_> = (0..32)
        .map(|_| {
            let target = target.clone();
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                let client = client();
                for _ in 0..2000 {
                    match target.post(&client).await {
                        Ok(created) => acknowledged.lock().unwrap().push(created),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let count = || acknowledged.lock().unwrap().len();
    wait_for(Duration::from_secs(120), || async { count() >= 400 }).await.expect("400 consents are acknowledged");
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() < 32 * 2000, "the kill happened while writers were still writing");

    server.restart().unwrap();
    let health: serde_json::Value = client().get(server.at("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let stored = all_events(&database).await;
    assert_all_stored(&acknowledged, &stored);
    assert_logs_are_whole(&stored);
    // After the restart the log continues with the next seq.
    let next = target.on(&server.url).post(&client()).await.unwrap();
    let after = all_events(&database).await;
    let event = after.iter().find(|e| e.id == next.id).expect("the new consent is stored");
    assert_eq!(event.seq, stored.len() as u64);
}

#[tokio::test]
async fn every_acknowledged_consent_survives_a_sigkill_on_sqlite() {
    let server = Server::builder().args(UNLIMITED).start().unwrap();
    let database = DatabaseUrl::Sqlite(server.data_dir.join("cornetta.db"));
    write_until_killed(server, database).await;
}

#[tokio::test]
async fn every_acknowledged_consent_survives_a_sigkill_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str()]).args(UNLIMITED).start().unwrap();
    write_until_killed(server, DatabaseUrl::Postgres(db.url.clone())).await;
}

//! `cornetta-bench ledger`: builds a database of a million consent events (bulk inserted,
//! with real encrypted evidence and real leaf hashes), then measures `cornetta ledger
//! verify`, status lookups over HTTP at 64 clients, and the CSV export next to
//! `sqlite3 -csv` on the same rows. Loopback only; every loop is bounded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cornetta_server::consents::Evidence;
use cornetta_server::keys::Keyring;
use cornetta_server::ledger::LeafFields;
use cornetta_server::store::sqlite::{SqliteSettings, SqliteStore};
use cornetta_shared::{Lang, PhoneNumber};
use futures::StreamExt;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use crate::bench::raw_http;
use crate::{Server, client, cornetta_bin};

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct LedgerBench {
    pub events: u64,
    pub clients: usize,
    pub status_requests: usize,
    pub dir: Option<PathBuf>,
}

impl Default for LedgerBench {
    fn default() -> Self {
        Self { events: 1_000_000, clients: 64, status_requests: 20_000, dir: None }
    }
}

/// Each person makes four events: a widget grant (its own subject), the WhatsApp
/// confirmation binding it to their number, a grant made with their number (a form), and a
/// withdrawal of marketing by reference.
const EVENTS_PER_PERSON: u64 = 4;

fn phone_of(person: u64) -> String {
    format!("+39333{person:07}")
}

/// Base time of the generated log: 2026-01-01T00:00:00Z, one event every 10 ms.
const T0_MICROS: i64 = 1_767_225_600_000_000;

pub async fn run(args: LedgerBench) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("cornetta-bench-ledger-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let persons = args.events / EVENTS_PER_PERSON;
    let db = dir.join("cornetta.db");
    println!("ledger bench: {} events ({} persons) in {}", persons * EVENTS_PER_PERSON, persons, db.display());
    let site_key = if db.exists() { existing_site(&db).await? } else { build(&dir, persons).await? };

    // 1. verify, as the command line runs it. The binary is found (and built, the first
    // time) before the clock starts: a build inside the timing once read as a 180 s verify.
    let bin = cornetta_bin();
    let started = Instant::now();
    let out = Command::new(bin).args(["ledger", "verify", "--site", &site_key, "--data-dir"]).arg(&dir).env("CORNETTA_LOG", "warn").output()?;
    let verify_secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("ledger verify failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    println!("verify: {:.2} s wall for `cornetta ledger verify --site {site_key}` ({})", verify_secs, text.trim());

    // 2. status lookups over HTTP.
    let server = Server::builder().data_dir(&dir).args(["--checkpoint-interval", "0"]).env("CORNETTA_LOG", "warn").start()?;
    let auditor = server.token("auditor");
    status_bench(&server, &auditor, &site_key, persons, args.clients, args.status_requests).await?;

    // 3. export: a fresh process, so its peak memory is the export's.
    let mut server = server;
    server.restart()?;
    export_bench(&server, &auditor, &site_key, &db, persons * EVENTS_PER_PERSON).await?;
    Ok(())
}

async fn existing_site(db: &Path) -> anyhow::Result<String> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    let key: String = sqlx::query_scalar("SELECT key FROM sites ORDER BY created_at LIMIT 1").fetch_one(&mut conn).await?;
    println!("reusing the database built earlier");
    Ok(key)
}

/// Creates the schema and the site through the server's own code, then bulk-inserts the
/// events and subjects directly (one transaction, multi-row inserts), each event with its
/// real leaf hash and evidence encrypted with its subject's key.
async fn build(dir: &Path, persons: u64) -> anyhow::Result<String> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)?;
    let db = dir.join("cornetta.db");
    let store: cornetta_server::store::DynStore = Arc::new(SqliteStore::open(&db, SqliteSettings::default()).await?);
    let phone = PhoneNumber::from_e164("+393331234567")?;
    let (site, notices) = cornetta_server::sites::create(&store, "Acme Shop", vec![phone], vec!["http://127.0.0.1:8081".into()], Lang::EN).await?;
    let notice = notices.into_iter().find(|n| n.lang == Lang::EN).context("an English notice")?;
    let (master, signing) = cornetta_server::keys::default_paths(dir);
    let keys = Keyring::load_or_create(&master, &signing)?;
    drop(store);

    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("PRAGMA synchronous = OFF").execute(&mut conn).await?;
    sqlx::query("BEGIN").execute(&mut conn).await?;
    let rows_per_statement = 400u64;
    let mut seq = 0u64;
    let mut person = 0u64;
    while person < persons {
        let batch_end = (person + rows_per_statement / EVENTS_PER_PERSON).min(persons);
        let mut events = Vec::new();
        let mut subjects = Vec::new();
        for p in person..batch_end {
            make_person(&keys, &site.id, &notice, p, &mut seq, &mut events, &mut subjects);
        }
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO subjects (id, site_id, lookup, wrapped_key, created_at) ");
        q.push_values(&subjects, |mut b, s: &(String, Option<String>, Vec<u8>, i64)| {
            b.push_bind(&s.0).push_bind(&site.id).push_bind(&s.1).push_bind(&s.2).push_bind(s.3);
        });
        q.build().execute(&mut conn).await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO consent_events (id, site_id, seq, action, method, reference, subject_id, purposes, notice_id, notice_sha256,
                 personal, details, actor, recorded_at, leaf_hash) ",
        );
        q.push_values(&events, |mut b, e: &Row| {
            b.push_bind(&e.id)
                .push_bind(&site.id)
                .push_bind(e.seq as i64)
                .push_bind(e.action)
                .push_bind(e.method)
                .push_bind(&e.reference)
                .push_bind(&e.subject_id)
                .push_bind(e.purposes)
                .push_bind(e.notice.then(|| notice.id.as_str().to_owned()))
                .push_bind(e.notice.then(|| notice.sha256.clone()))
                .push_bind(&e.personal)
                .push_bind("{}")
                .push_bind(e.actor)
                .push_bind(e.recorded_at)
                .push_bind(&e.leaf_hash);
        });
        q.build().execute(&mut conn).await?;
        person = batch_end;
    }
    sqlx::query("COMMIT").execute(&mut conn).await?;
    conn.close().await?;
    let built = started.elapsed().as_secs_f64();

    // A signed checkpoint over the whole log, through the server's code, so verify checks one.
    let store: cornetta_server::store::DynStore = Arc::new(SqliteStore::open(&db, SqliteSettings::default()).await?);
    let ledger = cornetta_server::ledger::Ledger::new();
    let t = Instant::now();
    let checkpoint = ledger.sign_checkpoint(&store, &keys, &site).await?;
    println!(
        "built {} events in {:.1} s ({:.0} MB); first checkpoint (tree of {}) signed in {:.2} s",
        seq,
        built,
        std::fs::metadata(&db)?.len() as f64 / 1e6,
        checkpoint.tree_size,
        t.elapsed().as_secs_f64()
    );
    Ok(site.key.to_string())
}

struct Row {
    id: String,
    seq: u64,
    action: &'static str,
    method: &'static str,
    reference: String,
    subject_id: String,
    purposes: &'static str,
    notice: bool,
    personal: Option<Vec<u8>>,
    actor: &'static str,
    recorded_at: i64,
    leaf_hash: String,
}

fn reference_of(person: u64, which: u64) -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut n = person * 2 + which;
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % 30) as usize] as char;
            n /= 30;
            c
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn make_person(
    keys: &Keyring,
    site_id: &str,
    notice: &cornetta_server::store::Notice,
    p: u64,
    seq: &mut u64,
    events: &mut Vec<Row>,
    subjects: &mut Vec<(String, Option<String>, Vec<u8>, i64)>,
) {
    let phone = PhoneNumber::from_e164(&phone_of(p)).expect("generated numbers are E.164");
    let widget_subject = format!("sub_w{p:020}");
    let phone_subject = format!("sub_p{p:020}");
    let (widget_key, widget_wrapped) = keys.new_subject_key(&widget_subject);
    let (phone_key, phone_wrapped) = keys.new_subject_key(&phone_subject);
    let at = T0_MICROS + (*seq as i64) * 10_000;
    subjects.push((widget_subject.clone(), None, widget_wrapped, at));
    subjects.push((phone_subject.clone(), Some(keys.phone_lookup(&phone)), phone_wrapped, at));
    let widget_ref = reference_of(p, 0);
    let form_ref = reference_of(p, 1);
    let page = Evidence {
        page_url: Some(format!("https://shop.example/products/{p}?utm_source=\"news\",letter")),
        ip: Some("203.0.113.0/24".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36".into()),
        ..Evidence::default()
    };
    let with_phone = Evidence { phone: Some(phone.to_string()), ..page.clone() };
    // (action, method, subject, reference, purposes, names the notice, sealed evidence, actor)
    let script = [
        ("granted", "widget", &widget_subject, &widget_ref, "marketing,utility", true, Some((&widget_key, page.clone())), "widget"),
        ("confirmed", "whatsapp", &phone_subject, &widget_ref, "", false, Some((&phone_key, Evidence { phone: Some(phone.to_string()), ..Evidence::default() })), "whatsapp"),
        ("granted", "form", &phone_subject, &form_ref, "marketing,utility", true, Some((&phone_key, with_phone)), "widget"),
        ("withdrawn", "widget", &widget_subject, &widget_ref, "marketing", true, Some((&widget_key, Evidence { reason: Some("too many messages".into()), ..Evidence::default() })), "widget"),
    ];
    for (action, method, subject, reference, purposes, notice_ref, sealed, actor) in script {
        let id = format!("evt_{:032x}", (at as u128) << 32 | u128::from(*seq as u32));
        let personal = sealed.map(|(key, ev)| key.seal(&serde_json::to_vec(&ev).expect("evidence serialises"), id.as_bytes()));
        let recorded_at = T0_MICROS + (*seq as i64) * 10_000;
        let leaf = LeafFields {
            id: &id,
            site_id,
            seq: *seq,
            action,
            method,
            reference,
            subject_id: subject,
            purposes,
            notice_id: notice_ref.then_some(notice.id.as_str()),
            notice_sha256: notice_ref.then_some(notice.sha256.as_str()),
            personal: personal.as_deref(),
            details: "{}",
            actor,
            recorded_at_micros: recorded_at,
        }
        .leaf_hash();
        events.push(Row {
            id,
            seq: *seq,
            action,
            method,
            reference: reference.clone(),
            subject_id: subject.to_owned(),
            purposes,
            notice: notice_ref,
            personal,
            actor,
            recorded_at,
            leaf_hash: hex::encode(leaf),
        });
        *seq += 1;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn status_bench(server: &Server, auditor: &str, site: &str, persons: u64, clients: usize, total: usize) -> anyhow::Result<()> {
    let http = client();
    // Check the answer once.
    let url = server.at(&format!("/v1/subjects/{}/status?site={site}&purpose=utility", phone_of(persons / 2)));
    let answer: serde_json::Value = http.get(&url).bearer_auth(auditor).send().await?.json().await?;
    if answer["purposes"][0]["consented"] != true {
        bail!("status of a person with a utility grant says no consent: {answer}");
    }
    let site_key = site.to_owned();
    let status_of = move |n: u64| {
        let person = n % persons;
        // A moment inside the log: after the person's events, or before some.
        let at = jiff::Timestamp::from_microsecond(T0_MICROS + (person * EVENTS_PER_PERSON + 2) as i64 * 10_000).expect("in range");
        format!("/v1/subjects/{}/status?site={site_key}&at={at}", phone_of(person))
    };
    let lookups = timed_loop(server, auditor, clients, total, status_of).await?;
    lookups.print("status", "lookups", clients);
    // The same clients on a route that reads no store and answers a few hundred bytes:
    // what HTTP alone costs on this machine, the floor under any lookup's latency.
    let floor = timed_loop(server, auditor, clients, total, |_| "/v1/ledger/public-key".to_owned()).await?;
    floor.print("http floor (GET /v1/ledger/public-key)", "requests", clients);
    Ok(())
}

/// What one timed loop measured.
struct Timed {
    latencies: Vec<Duration>,
    elapsed: f64,
    /// CPU seconds of the server and of this process over the loop.
    cpu: Option<(f64, f64)>,
}

impl Timed {
    fn print(&self, what: &str, unit: &str, clients: usize) {
        let all = &self.latencies;
        let rate = all.len() as f64 / self.elapsed;
        println!(
            "{what}: {} {unit} at {clients} clients over HTTP in {:.1} s ({rate:.0}/s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            all.len(),
            self.elapsed,
            percentile(all, 0.50).as_secs_f64() * 1e3,
            percentile(all, 0.99).as_secs_f64() * 1e3,
            all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        // What bounds these figures on this machine. With `clients` requests always in
        // flight, the mean latency is clients / rate (Little's law), so a p99 of 5 ms needs
        // at least clients / 5 ms answers/s; and the CPU each costs, server and client
        // together, caps the rate at cores / cost.
        if let Some((server, client)) = self.cpu {
            let n = all.len().max(1) as f64;
            let (server_us, client_us) = (server / n * 1e6, client / n * 1e6);
            let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
            println!(
                "{what}: CPU per request: server {server_us:.0} µs, bench client {client_us:.0} µs; {cores} cores cap the rate at {:.0}/s; \
                 a p99 of 5 ms at {clients} clients needs at least {:.0}/s",
                cores / ((server_us + client_us) / 1e6),
                clients as f64 / 0.005
            );
        }
    }
}

/// `total` GETs of `path_of(n)` over `clients` keep-alive connections of the lean client
/// (`raw_http`: on these two cores the client's CPU is taken from the server), each
/// connection opened and warmed by one request before the clock starts (opening a
/// connection is not a lookup). Any answer but 200 fails the run.
async fn timed_loop<P>(server: &Server, bearer: &str, clients: usize, total: usize, path_of: P) -> anyhow::Result<Timed>
where
    P: Fn(u64) -> String + Clone + Send + 'static,
{
    let base = server.at("");
    let mut connections = Vec::new();
    for _ in 0..clients {
        let mut connection = raw_http::Connection::open(&base).await?;
        let answer = connection.get(&path_of(0), bearer).await?;
        if answer.status != 200 {
            bail!("a warm-up request answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body));
        }
        connections.push(connection);
    }
    let per_client = total / clients;
    let deadline = Instant::now() + Duration::from_secs(120);
    let server_pid = server.pid().context("the server's pid")?.to_string();
    let cpu_before = (cpu_seconds(&server_pid), cpu_seconds("self"));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut connection) in connections.into_iter().enumerate() {
        let token = bearer.to_owned();
        let path_of = path_of.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut state = (c as u64 + 1) * 0x9E37_79B9_7F4A_7C15;
            for _ in 0..per_client {
                if Instant::now() > deadline {
                    break;
                }
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let path = path_of(state);
                let t = Instant::now();
                let answer = connection.get(&path, &token).await?;
                if answer.status != 200 {
                    bail!("GET {path} answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body));
                }
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = (cpu_seconds(&server_pid), cpu_seconds("self"));
    latencies.sort_unstable();
    let cpu = match (cpu_before, cpu_after) {
        ((Some(s0), Some(c0)), (Some(s1), Some(c1))) => Some((s1 - s0, c1 - c0)),
        _ => None,
    };
    Ok(Timed { latencies, elapsed, cpu })
}

fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime and stime fields 14 and 15 (clock ticks).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Peak resident memory of a process so far (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn export_bench(server: &Server, auditor: &str, site: &str, db: &Path, expected: u64) -> anyhow::Result<()> {
    let pid = server.pid().context("the server's pid")?;
    let before = peak_rss_mb(pid).unwrap_or(0.0);
    let out_path = db.with_file_name("export.csv");
    let started = Instant::now();
    let response = client()
        .get(server.at(&format!("/v1/consents/export?format=csv&site={site}")))
        .bearer_auth(auditor)
        .timeout(Duration::from_secs(600))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("export answered {}", response.status());
    }
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&out_path).await?);
    let mut body = response.bytes_stream();
    let mut bytes = 0u64;
    let mut lines = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    let ours = started.elapsed().as_secs_f64();
    let after = peak_rss_mb(pid).unwrap_or(0.0);
    // Quoted fields may hold newlines; the generated ones do not, so lines = rows + header.
    if lines != expected + 1 {
        bail!("the export has {lines} lines, expected {} rows and a header", expected);
    }
    println!(
        "export: {} rows, {:.0} MB CSV over HTTP in {:.2} s; server peak RSS {:.0} MB before, {:.0} MB after",
        expected,
        bytes as f64 / 1e6,
        ours,
        before,
        after
    );

    // sqlite3 -csv on the same rows (raw columns: the evidence stays ciphertext there).
    let sql_out = db.with_file_name("sqlite3.csv");
    let query = format!("SELECT * FROM consent_events WHERE site_id = (SELECT id FROM sites WHERE key = '{site}') ORDER BY id");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg("sqlite3")
        .args(["-csv", "-header"])
        .arg(db)
        .arg(&query)
        .stdout(std::fs::File::create(&sql_out)?)
        .stderr(std::process::Stdio::piped())
        .output()?;
    let theirs = started.elapsed().as_secs_f64();
    if !status.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&status.stderr));
    }
    let their_rss_kb: f64 = String::from_utf8_lossy(&status.stderr).trim().lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
    println!(
        "export: `sqlite3 -csv -header` of the same rows: {:.2} s, {:.0} MB, peak RSS {:.0} MB; ratio ours/sqlite3 = {:.2}",
        theirs,
        std::fs::metadata(&sql_out)?.len() as f64 / 1e6,
        their_rss_kb / 1024.0,
        ours / theirs
    );
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&sql_out);
    Ok(())
}

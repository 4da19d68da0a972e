//! `cornetta-bench store`: durable consent writes per second over HTTP, on SQLite
//! (`synchronous=FULL`, and `OFF` as the no-fsync ceiling) and on PostgreSQL behind two
//! server processes, next to pgbench's one-row insert and the disk's own fsync rate.
//!
//! This disk's flush latency swings between ~70 µs and ~4 ms every few seconds, so absolute
//! numbers from different moments mean little: every round measures everything once,
//! rounds interleave, and the goals are judged on ratios within one round.
//! Load goes only to 127.0.0.1 and every measurement is bounded in time.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Server;
use crate::load::{Budget, ConsentTarget, run_writers};
use crate::pg::TestDatabase;

const UNLIMITED: [&str; 2] = ["--public-writes-per-minute", "1000000000"];

/// Command-line options of `cornetta-bench store`.
#[derive(Debug, Clone)]
struct Options {
    seconds: f64,
    rounds: usize,
}

impl Options {
    /// `None` when only help was asked for.
    fn parse(args: &[String]) -> anyhow::Result<Option<Self>> {
        let mut options = Self { seconds: 4.0, rounds: 3 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--seconds" => {
                    options.seconds = value("--seconds")?.parse().context("--seconds: expected a number of seconds, e.g. 4")?;
                }
                "--rounds" => options.rounds = value("--rounds")?.parse().context("--rounds: expected a whole number, e.g. 3")?,
                "--help" | "-h" => {
                    println!("cornetta-bench store [--seconds S (per measurement, default 4)] [--rounds R (default 3)]");
                    println!("PostgreSQL: CORNETTA_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test)");
                    return Ok(None);
                }
                other => bail!("unknown option {other:?}; try cornetta-bench store --help"),
            }
        }
        if !(0.5..=60.0).contains(&options.seconds) || !(1..=20).contains(&options.rounds) {
            bail!("--seconds must be 0.5 to 60 and --rounds 1 to 20");
        }
        Ok(Some(options))
    }
}

/// write + fdatasync of one 4 KiB block, overwritten in place, for `time`: the rate at
/// which this disk can make anything durable.
fn fsync_rate(dir: &Path, time: Duration) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let block = [0x5au8; 4096];
    file.write_all(&block)?;
    file.sync_all()?;
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < time {
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()?;
        count += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).ok();
    Ok(rate)
}

/// pgbench's rate for a one-row INSERT at `clients` connections on a database of its own.
fn pgbench(url: &str, dir: &Path, clients: usize, time: Duration) -> anyhow::Result<f64> {
    let script = dir.join("one-row-insert.sql");
    std::fs::write(&script, "INSERT INTO bench_rows (site_id, payload) VALUES ('site', md5(random()::text));\n")?;
    let seconds = time.as_secs().max(1).to_string();
    let out = std::process::Command::new("pgbench")
        .args(["--no-vacuum", "--client", &clients.to_string(), "--jobs", "2", "--time", &seconds, "--file"])
        .arg(&script)
        .arg(url)
        .output()
        .context("running pgbench (it comes with PostgreSQL: apt-get install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr));
    }
    // "tps = 12345.678901 (without initial connection time)"
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = ").and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok()))
        .with_context(|| format!("no tps line in pgbench's output:\n{stdout}"))
}

/// One round's figures (writes or transactions per second).
#[derive(Debug, Clone, Default)]
struct Round {
    fsync_before: f64,
    fsync_after: f64,
    sqlite: [f64; 3],
    sqlite_off: [f64; 3],
    pg: [f64; 3],
    pgbench_64: f64,
}

const CLIENTS: [usize; 3] = [1, 16, 64];

async fn writes_per_second(targets: &[ConsentTarget], writers_each: usize, time: Duration) -> anyhow::Result<f64> {
    let outcome = run_writers(targets, writers_each, Budget { per_writer: u64::MAX, time }).await;
    if outcome.failures > 0 {
        bail!("{} writes failed, e.g. {}", outcome.failures, outcome.first_failure.unwrap_or_default());
    }
    Ok(outcome.per_second())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(options) = Options::parse(args)? else { return Ok(()) };
    let time = Duration::from_secs_f64(options.seconds);
    let scratch = tempfile::Builder::new().prefix("cornetta-bench-store-").tempdir()?;
    println!("cornetta-bench store: {} rounds, {:.1} s per measurement, load on 127.0.0.1 only", options.rounds, options.seconds);

    let http = crate::client();
    let sqlite = Server::builder().args(UNLIMITED).start()?;
    let sqlite_off = Server::builder().args(UNLIMITED).args(["--sqlite-synchronous", "off"]).start()?;
    let pg_db = TestDatabase::create().await?;
    let pg_data = tempfile::Builder::new().prefix("cornetta-bench-pg-").tempdir()?;
    let pg_a = Server::builder().data_dir(pg_data.path()).args(["--database-url", pg_db.url.as_str()]).args(UNLIMITED).start()?;
    let pg_b = Server::builder().data_dir(pg_data.path()).args(["--database-url", pg_db.url.as_str()]).args(UNLIMITED).start()?;
    let bench_db = TestDatabase::create().await?;
    {
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&bench_db.url).await?;
        sqlx::raw_sql(
            "CREATE TABLE bench_rows (id BIGSERIAL PRIMARY KEY, site_id TEXT NOT NULL, payload TEXT NOT NULL,
                                      recorded_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut conn)
        .await?;
    }

    let key = |server: &Server| server.site_key.clone().context("the server made no default site");
    let sqlite_target = ConsentTarget::discover(&http, &sqlite.url, &key(&sqlite)?).await?;
    let sqlite_off_target = ConsentTarget::discover(&http, &sqlite_off.url, &key(&sqlite_off)?).await?;
    let pg_target = ConsentTarget::discover(&http, &pg_a.url, &key(&pg_a)?).await?;
    let pg_targets = [pg_target.clone(), pg_target.on(&pg_b.url)];

    // Warm up: connections, prepared statements, page cache.
    let warm = Duration::from_secs(1);
    writes_per_second(std::slice::from_ref(&sqlite_target), 16, warm).await?;
    writes_per_second(std::slice::from_ref(&sqlite_off_target), 16, warm).await?;
    writes_per_second(&pg_targets, 8, warm).await?;

    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        let mut r = Round { fsync_before: fsync_rate(scratch.path(), time / 2)?, ..Round::default() };
        for (i, clients) in CLIENTS.into_iter().enumerate() {
            r.sqlite[i] = writes_per_second(std::slice::from_ref(&sqlite_target), clients, time).await?;
            r.sqlite_off[i] = writes_per_second(std::slice::from_ref(&sqlite_off_target), clients, time).await?;
            // One client on one server; otherwise half the clients on each of the two.
            r.pg[i] = if clients == 1 {
                writes_per_second(&pg_targets[..1], 1, time).await?
            } else {
                writes_per_second(&pg_targets, clients / 2, time).await?
            };
        }
        r.pgbench_64 = pgbench(&bench_db.url, scratch.path(), 64, time)?;
        r.fsync_after = fsync_rate(scratch.path(), time / 2)?;
        print_round(round, &r);
        rounds.push(r);
    }
    print_summary(&rounds);
    Ok(())
}

fn sqlite_goal(r: &Round) -> (f64, bool) {
    let bar = (20.0 * r.sqlite[0]).min(0.8 * r.sqlite_off[2]);
    (bar, r.sqlite[2] >= bar)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn print_round(round: usize, r: &Round) {
    println!();
    println!("round {round}: fsync {:.0}/s before, {:.0}/s after (write+fdatasync of 4 KiB)", r.fsync_before, r.fsync_after);
    println!("  {:<34} {:>10} {:>10} {:>10}", "durable consent writes/s", "1 client", "16", "64");
    println!("  {:<34} {:>10.0} {:>10.0} {:>10.0}", "SQLite synchronous=FULL", r.sqlite[0], r.sqlite[1], r.sqlite[2]);
    println!("  {:<34} {:>10.0} {:>10.0} {:>10.0}", "SQLite synchronous=OFF (not durable)", r.sqlite_off[0], r.sqlite_off[1], r.sqlite_off[2]);
    println!("  {:<34} {:>10.0} {:>10.0} {:>10.0}", "PostgreSQL, 2 servers (1; 2x8; 2x32)", r.pg[0], r.pg[1], r.pg[2]);
    println!("  {:<34} {:>10} {:>10} {:>10.0}", "pgbench one-row INSERT", "", "", r.pgbench_64);
    let (bar, met) = sqlite_goal(r);
    println!(
        "  SQLite 64 / 1 client = {:.1}x; 64 FULL / 64 OFF = {:.0} %; goal {:.0} >= min(20x1 = {:.0}, 80% OFF = {:.0}) = {:.0}: {}",
        r.sqlite[2] / r.sqlite[0],
        100.0 * r.sqlite[2] / r.sqlite_off[2],
        r.sqlite[2],
        20.0 * r.sqlite[0],
        0.8 * r.sqlite_off[2],
        bar,
        verdict(met)
    );
    println!(
        "  PostgreSQL 2x32 / pgbench 64 = {:.2}; goal {:.0} >= {:.0}: {}",
        r.pg[2] / r.pgbench_64,
        r.pg[2],
        r.pgbench_64,
        verdict(r.pg[2] >= r.pgbench_64)
    );
}

fn print_summary(rounds: &[Round]) {
    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!();
    println!("median of {} rounds:", rounds.len());
    println!("  fsync/s: {:.0}", med(&|r| (r.fsync_before + r.fsync_after) / 2.0));
    for (i, clients) in CLIENTS.into_iter().enumerate() {
        println!(
            "  {clients:>2} clients: SQLite FULL {:.0}/s, SQLite OFF {:.0}/s, PostgreSQL {:.0}/s",
            med(&|r| r.sqlite[i]),
            med(&|r| r.sqlite_off[i]),
            med(&|r| r.pg[i])
        );
    }
    println!("  pgbench 64 clients: {:.0}/s", med(&|r| r.pgbench_64));
    println!("  ratio SQLite 64/1: {:.1}x; SQLite FULL/OFF at 64: {:.0} %", med(&|r| r.sqlite[2] / r.sqlite[0]), med(&|r| 100.0 * r.sqlite[2] / r.sqlite_off[2]));
    println!("  ratio PostgreSQL 2x32 / pgbench 64: {:.2}", med(&|r| r.pg[2] / r.pgbench_64));
    let sqlite_met = rounds.iter().filter(|r| sqlite_goal(r).1).count();
    let pg_met = rounds.iter().filter(|r| r.pg[2] >= r.pgbench_64).count();
    println!("  SQLite goal met in {sqlite_met} of {} rounds; PostgreSQL goal met in {pg_met} of {} rounds", rounds.len(), rounds.len());
}

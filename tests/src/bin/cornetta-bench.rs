//! `cornetta-bench`: measures Cornetta's figures on this machine and prints them, one
//! subcommand per area (`cargo xtask bench` runs it in release mode). Each area's code lives
//! in `cornetta_tests::bench::<area>`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cornetta-bench", about = "Measure Cornetta's figures (loopback only, bounded)")]
struct Cli {
    #[command(subcommand)]
    command: Area,
}

#[derive(Debug, Subcommand)]
enum Area {
    /// Durable consent writes/s at 1, 16 and 64 clients: SQLite FULL/OFF, PostgreSQL with two
    /// servers, pgbench's one-row insert, and the disk's fsync rate, in one run.
    Store {
        /// Options of the store bench (`--seconds S`, `--rounds R`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The consent ledger: verify over N events, status lookups at C clients, export vs sqlite3.
    Ledger {
        /// Events in the generated log (4 per person).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Concurrent HTTP clients for status lookups.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Status lookups in total.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Keep (and reuse) the generated database in this directory.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// QR codes/s and bytes (SVG, PNG) next to Node's qrcode and Python's segno, and
    /// short-link redirects/s with p99 latency.
    Qr {
        /// Fewer iterations and a shorter load test.
        #[arg(long)]
        quick: bool,
    },
    /// The widget in headless Chromium against the example shop: bytes before interaction
    /// and in full (brotli), long tasks, layout shift, launcher and click-to-panel times,
    /// next to the budgets; and each built file's raw/gzip/brotli size.
    Widget {
        /// Page views per measurement.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Area::Store { args } => cornetta_tests::bench::store::run(&args).await,
        Area::Widget { runs } => cornetta_tests::bench::widget::run(runs.max(1)).await,
        Area::Qr { quick } => cornetta_tests::bench::qr::run(quick).await,
        Area::Ledger { events, clients, requests, dir } => {
            cornetta_tests::bench::ledger::run(cornetta_tests::bench::ledger::LedgerBench { events, clients, status_requests: requests, dir }).await
        }
    }
}

//! `cornetta-bench`: measures Cornetta's figures on this machine and prints them, one
//! subcommand per area (`cargo xtask bench` runs it in release mode).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cornetta-bench", about = "Measure Cornetta's figures (loopback only, bounded)")]
struct Cli {
    #[command(subcommand)]
    command: Area,
}

#[derive(Debug, Subcommand)]
enum Area {
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Area::Ledger { events, clients, requests, dir } => {
            cornetta_tests::bench::ledger::run(cornetta_tests::bench::ledger::LedgerBench { events, clients, status_requests: requests, dir }).await
        }
    }
}

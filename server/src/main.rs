//! The `cornetta` binary: reads the command line, starts logging, runs the command.

use clap::Parser;

/// mimalloc: under many concurrent requests glibc's malloc spent a fifth of the CPU time in
/// its arena locks and consolidation (`perf` of `cornetta-bench ledger`'s status lookups).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cornetta_server::cli::Cli::parse();
    cornetta_server::telemetry::init();
    match cornetta_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

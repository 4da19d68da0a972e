//! The `cornetta` binary: reads the command line, starts logging, runs the command.

use clap::Parser;

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

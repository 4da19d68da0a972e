//! `cornetta-bench SUBCOMMAND`: prints measured figures (`cargo xtask bench` runs it in
//! release mode). Each area's code lives in `cornetta_tests::bench::<area>`.

const USAGE: &str = "usage: cornetta-bench store [--seconds S] [--rounds R]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("store") => cornetta_tests::bench::store::run(&args[1..]).await,
        Some(other) => Err(anyhow::anyhow!("unknown subcommand {other:?}; {USAGE}")),
        None => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

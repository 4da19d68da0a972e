//! `cargo xtask`: the one place that knows how to set up, build, run, test and bench
//! Cornetta. The README's two commands are `cargo xtask run` and `cargo xtask test`.
//!
//! Each step installs what it needs when it can (the wasm target, the matching
//! wasm-bindgen-cli, npm packages, Chromium) and otherwise says exactly what is missing.

mod setup;
mod widget;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  run       build the widget and start `cornetta serve` with the example shop page
  test      install what tests need, build the widget, run every test (what CI runs)
  widget    build the widget into widget/dist (wasm32, wasm-bindgen, wasm-opt)
  bench     run the benchmarks and print their figures
  setup     install the toolchain pieces (wasm target, wasm-bindgen-cli, npm packages, Chromium)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("widget") => widget::build().map(|_| ()),
        Some("bench") => bench(&args[1..]),
        Some("setup") => setup::all(),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Where cargo builds: `CARGO_TARGET_DIR` when set, else a directory outside the clone so
/// that a fresh clone (CI) reuses what an earlier build compiled.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    home.join(".cache").join("cornetta").join("target")
}

/// A `cargo` command with our target directory.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// Runs a command, failing with its description when it fails.
pub(crate) fn status(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd.status().map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed with {status}")) }
}

fn run(extra: &[String]) -> Result {
    setup::widget_toolchain()?;
    widget::build()?;
    eprintln!("xtask: starting Cornetta; open http://127.0.0.1:8081/ for the example shop");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--package", "cornetta-server", "--bin", "cornetta", "--", "serve", "--demo-addr", "127.0.0.1:8081"]);
    cmd.args(extra);
    status(&mut cmd)
}

fn test(extra: &[String]) -> Result {
    let started = std::time::Instant::now();
    setup::all()?;
    setup::check_postgres()?;
    widget::build()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--exclude", "cornetta-widget", "--no-fail-fast"]);
    cmd.args(extra);
    // The widget's host-side logic (templates, references, links) is tested in
    // cornetta-shared; its behaviour in real Chromium by tests/tests/browser_*.rs.
    status(&mut cmd)?;
    // Lints after the tests, so that a failing test is what a run reports first: clippy with
    // warnings as errors, on the host crates and on the widget for its wasm target.
    let mut lint = cargo();
    lint.args(["clippy", "--workspace", "--exclude", "cornetta-widget", "--all-targets", "--quiet", "--", "-D", "warnings"]);
    status(&mut lint)?;
    let mut lint = cargo();
    lint.args(["clippy", "--package", "cornetta-widget", "--target", "wasm32-unknown-unknown", "--quiet", "--", "-D", "warnings"]);
    status(&mut lint)?;
    eprintln!("xtask: all tests passed, and clippy found nothing, in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn bench(extra: &[String]) -> Result {
    setup::widget_toolchain()?;
    widget::build()?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--package", "cornetta-tests", "--bin", "cornetta-bench", "--"]);
    cmd.args(extra);
    status(&mut cmd)
}

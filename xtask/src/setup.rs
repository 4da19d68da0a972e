//! Installing what the build and the tests need, or saying precisely what is missing.

use std::path::Path;
use std::process::Command;

use crate::{Result, root, status};

/// Everything: the widget toolchain and the browser for the browser tests.
pub(crate) fn all() -> Result {
    widget_toolchain()?;
    browser()
}

/// The wasm32 target, wasm-bindgen-cli at the exact version in Cargo.lock, and the npm
/// packages (wasm-opt from `binaryen`, `axe-core` for the accessibility test).
pub(crate) fn widget_toolchain() -> Result {
    wasm_target()?;
    wasm_bindgen_cli()?;
    npm_packages()
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wasm_target() -> Result {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == "wasm32-unknown-unknown") => Ok(()),
        Some(_) => status(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"])),
        None => {
            // No rustup: the target may still come with the toolchain.
            let sysroot = output(Command::new("rustc").args(["--print", "sysroot"])).unwrap_or_default();
            if Path::new(sysroot.trim()).join("lib/rustlib/wasm32-unknown-unknown").exists() {
                Ok(())
            } else {
                Err("the wasm32-unknown-unknown target is missing and rustup is not available to add it; install rustup or the target".into())
            }
        }
    }
}

/// The wasm-bindgen version Cargo.lock pins.
pub(crate) fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.trim().strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry; run `cargo generate-lockfile`".into())
}

fn wasm_bindgen_cli() -> Result {
    let want = locked_wasm_bindgen()?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!("xtask: installing wasm-bindgen-cli {want} (it must match the wasm-bindgen crate exactly; ~4 min)");
    // Not `--locked`: the registry lacks one of its locked transitive versions.
    status(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
        "install",
        "wasm-bindgen-cli",
        "--version",
        &format!("={want}"),
    ]))
}

fn npm_packages() -> Result {
    let root = root();
    if !root.join("package.json").exists() {
        return Ok(());
    }
    let stamp = root.join("node_modules/.package-lock.json");
    let lock = root.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp).and_then(|m| m.modified()), std::fs::metadata(&lock).and_then(|m| m.modified())) {
        (Ok(installed), Ok(locked)) => installed >= locked,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    if output(Command::new("npm").arg("--version")).is_none() {
        return Err("npm is missing: install Node.js 20 and npm (Debian: apt-get install -y nodejs npm)".into());
    }
    status(Command::new("npm").current_dir(&root).args(["ci", "--no-audit", "--no-fund"]))
}

/// Chromium and ChromeDriver from Debian's packages.
pub(crate) fn browser() -> Result {
    let have = |bin: &str| output(Command::new(bin).arg("--version")).is_some();
    if have("chromium") && have("chromedriver") {
        return Ok(());
    }
    let root_user = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0");
    if !root_user || output(Command::new("apt-get").arg("--version")).is_none() {
        return Err("the browser tests need Chromium and ChromeDriver: apt-get install -y chromium chromium-driver (as root)".into());
    }
    eprintln!("xtask: installing chromium and chromium-driver from Debian's packages");
    status(Command::new("apt-get").args(["update", "-qq"]))?;
    status(Command::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "-qq", "chromium", "chromium-driver"]))
}

/// The PostgreSQL the conformance suite uses: `CORNETTA_TEST_PG_URL`, by default
/// postgres://postgres@127.0.0.1:5432/test.
pub(crate) fn check_postgres() -> Result {
    let url = std::env::var("CORNETTA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let host_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let host_port = if host_port.contains(':') { host_port } else { format!("{host_port}:5432") };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host_port).ok().and_then(|mut a| a.next());
    let reachable = || addr.is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).is_ok());
    if reachable() {
        return check_postgres_role(&url);
    }
    // A local Debian cluster that is merely stopped (e.g. after a crash) can be started.
    if let Some(clusters) = output(Command::new("pg_lsclusters").arg("--no-header")) {
        for line in clusters.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [version, name, _port, "down", ..] = fields.as_slice() {
                eprintln!("xtask: PostgreSQL cluster {version}/{name} is down; starting it");
                let _ = status(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", version, name, "start"]));
            }
        }
        for _ in 0..50 {
            if reachable() {
                return check_postgres_role(&url);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Err(format!(
        "PostgreSQL is not reachable at {host_port} (from {url}); start it (Debian: pg_ctlcluster 15 main start) or set CORNETTA_TEST_PG_URL to a server whose user may create databases"
    ))
}

/// The tests create and drop a database each: the user must log in and may create
/// databases. Checked with `psql` when it is installed (the tests say so too, later).
fn check_postgres_role(url: &str) -> Result {
    let query = "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user";
    let out = match Command::new("psql").arg(url).args(["-tAc", query]).output() {
        Ok(out) => out,
        Err(_) => return Ok(()),
    };
    if !out.status.success() {
        return Err(format!(
            "PostgreSQL answers but {url} does not let the tests in: {}; create the user and database (e.g. `createuser -s postgres; createdb -O postgres test` as the postgres OS user) or set CORNETTA_TEST_PG_URL",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if String::from_utf8_lossy(&out.stdout).trim() != "t" {
        return Err(format!("the user of {url} may not create databases, which each test does; `ALTER ROLE <user> CREATEDB` or set CORNETTA_TEST_PG_URL"));
    }
    Ok(())
}

//! Helpers for Cornetta's cross-part tests: run the real `cornetta` binary on a loopback
//! port with its own data directory, and talk to it over HTTP.
//!
//! `Server::start()` gives a server on a fresh SQLite file; `Server::builder()` sets flags,
//! environment, a PostgreSQL URL or the example shop. Logs go to a file in the data
//! directory and are printed only when `CORNETTA_TEST_LOG=1`.

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub mod bench;
pub mod load;
pub mod pg;
pub mod qr;
pub mod refusals;
pub mod site_admin;
pub mod withdrawal;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".."))
}

/// The `cornetta` binary next to this test executable, built once per test process
/// (`cargo build` is a no-op when it is fresh). `CORNETTA_BIN` overrides.
pub fn cornetta_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CORNETTA_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test exe>, or target/<profile>/<bin> for the bench: the
        // binary is in target/<profile>/.
        let exe = std::env::current_exe().expect("the test knows its own path");
        let exe_dir = exe.parent().expect("an executable lives in a directory");
        let profile_dir = if exe_dir.file_name().is_some_and(|n| n == "deps") { exe_dir.parent().unwrap_or(exe_dir) } else { exe_dir };
        let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(repo_root()).env("CARGO_TARGET_DIR", target_dir).args(["build", "--quiet", "--package", "cornetta-server", "--bin", "cornetta"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the cornetta binary failed");
        profile_dir.join("cornetta")
    })
    .clone()
}

/// Runs `cornetta` with arguments (a CLI command, not the server) and returns its output.
pub fn cornetta(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cornetta_bin())
        .args(args)
        .env("CORNETTA_DATA_DIR", data_dir)
        .env("CORNETTA_LOG", "warn")
        .current_dir(data_dir)
        .output()
        .expect("cornetta runs")
}

/// How to start a server.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    demo: bool,
    demo_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
}

impl Builder {
    /// Adds command-line arguments to `cornetta serve`.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Also serve the example shop page (on its own port: another origin).
    pub fn with_demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// Serve the pages of `dir` as the "shop" instead of examples/shop (test pages with other
    /// script tags; `{{CORNETTA_URL}}` and `{{SITE_KEY}}` are filled in the same way).
    pub fn with_demo_dir(mut self, dir: &Path) -> Self {
        self.demo = true;
        self.demo_dir = Some(dir.to_owned());
        self
    }

    /// Use (and keep) this data directory instead of a fresh one.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    pub fn start(self) -> anyhow::Result<Server> {
        let (temp, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new().prefix("cornetta-test-").tempdir()?;
                let path = temp.path().to_owned();
                (Some(temp), path)
            }
        };
        let mut server = Server {
            url: String::new(),
            demo_url: None,
            site_key: None,
            data_dir,
            _temp: temp,
            child: Mutex::new(None),
            builder: self,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running `cornetta serve` process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The example shop's URL, with `with_demo`.
    pub demo_url: Option<String>,
    /// The default site's key, when this start created it.
    pub site_key: Option<String>,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    child: Mutex<Option<Child>>,
    builder: Builder,
}

impl Server {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server on a fresh SQLite file.
    pub fn start() -> anyhow::Result<Server> {
        Builder::default().start()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log_path = self.data_dir.join("server.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut cmd = Command::new(cornetta_bin());
        cmd.current_dir(&self.data_dir)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .arg("--widget-dir")
            .arg(repo_root().join("widget/dist"))
            .env("CORNETTA_LOG", std::env::var("CORNETTA_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::piped())
            .stderr(log);
        if self.builder.demo {
            let dir = self.builder.demo_dir.clone().unwrap_or_else(|| repo_root().join("examples/shop"));
            cmd.args(["--demo-addr", "127.0.0.1:0", "--demo-dir"]).arg(dir);
        }
        cmd.args(&self.builder.args);
        for (k, v) in &self.builder.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting cornetta serve")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if std::env::var_os("CORNETTA_TEST_LOG").is_some() {
                    eprintln!("[cornetta] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    // stdout closed (the process exited) or the deadline passed.
                    let exited = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    match exited {
                        Some(status) => bail!("cornetta serve exited ({status}) before listening; its log:\n{log}"),
                        None => bail!("cornetta serve did not start within 60 s; its log:\n{log}"),
                    }
                }
            };
            if let Some(key) = line.split("site key ").nth(1).and_then(|rest| rest.split([',', ' ', ')']).next()) {
                self.site_key = Some(key.to_owned());
            }
            if let Some(demo) = line.strip_prefix("Example shop page: ") {
                self.demo_url = Some(demo.trim_end_matches('/').to_owned());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.url = url.unwrap_or_default();
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Child::id)
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Kills the process at once (SIGKILL): what a crash or power cut looks like to it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same data directory (a new port).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.site_key = None;
        self.spawn()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Runs a `cornetta` CLI command against this server's data directory (and its
    /// `--database-url`, when the server was given one).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut full: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if let Some(pair) = self.builder.args.windows(2).find(|w| w[0] == "--database-url") {
            full.extend(pair.iter().cloned());
        }
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        cornetta(&self.data_dir, &full)
    }

    /// A new token with `role`, through the CLI; returns the secret.
    pub fn token(&self, role: &str) -> String {
        let out = self.cli(&["token", "create", "--role", role]);
        assert!(out.status.success(), "token create failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("CORNETTA_TEST_LOG").is_some() {
            eprintln!("--- server log ({}) ---\n{}", self.data_dir.display(), self.log());
        }
    }
}

/// An HTTP client for tests (no proxy, short timeouts).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().user_agent("cornetta-tests").timeout(Duration::from_secs(30)).build().expect("a reqwest client")
}

/// Waits until `check` holds, polling every 25 ms, for at most `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("condition not met within {timeout:?}")
}

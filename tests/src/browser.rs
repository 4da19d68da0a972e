//! Real headless Chromium for the browser tests and the widget bench: starts its own
//! chromedriver on a free port with a fresh profile, opens a WebDriver session (fantoccini),
//! and always tears both down, also when an assertion fails (Drop kills the chromedriver's
//! process group, which holds Chromium too).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Chromium's flags for tests: headless, no sandbox (containers), nothing that calls home.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
];

const CAPTURE_CONSOLE: &str = r#"(function () {
  var log = window.__cornettaTestLog = [];
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () {
      log.push(level + ": " + Array.prototype.map.call(arguments, String).join(" "));
      return original.apply(console, arguments);
    };
  });
  window.addEventListener("error", function (e) { log.push("uncaught: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { log.push("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) { log.push("csp: " + e.violatedDirective + " " + e.blockedURI); });
})();"#;

/// How the browser should look to the page.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    pub width: u32,
    pub height: u32,
    /// Emulate a phone: touch, a mobile user agent, device pixel ratio 3.
    pub mobile: bool,
    /// `navigator.languages`, e.g. "ar" or "it-IT,it".
    pub lang: Option<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self { width: 1280, height: 800, mobile: false, lang: None }
    }
}

/// A chromedriver + Chromium pair with one WebDriver session.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the browser tests write screenshots: tests/output/ (gitignored).
pub fn output_dir() -> PathBuf {
    let dir = crate::repo_root().join("tests/output");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

impl Browser {
    pub async fn start() -> anyhow::Result<Browser> {
        Self::start_with(BrowserOptions::default()).await
    }

    pub async fn start_with(options: BrowserOptions) -> anyhow::Result<Browser> {
        let chromium = which("chromium").or_else(|| which("chromium-browser")).or_else(|| which("google-chrome"));
        let driver_bin = which("chromedriver");
        let (Some(chromium), Some(driver_bin)) = (chromium, driver_bin) else {
            bail!("the browser tests need Chromium and ChromeDriver: run `cargo xtask setup` (apt-get install -y chromium chromium-driver)");
        };
        let profile = tempfile::Builder::new().prefix("cornetta-chromium-").tempdir()?;
        let port = free_port()?;
        let mut driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Drop can kill chromedriver and every Chromium
            // process it started in one go.
            .process_group(0)
            .spawn()
            .context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                ready = true;
                break;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                bail!("chromedriver exited at start with {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !ready {
            kill_group(&mut driver);
            bail!("chromedriver did not listen on port {port} within 5 s");
        }
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", options.width, options.height));
        if let Some(lang) = &options.lang {
            args.push(format!("--lang={}", lang.split(',').next().unwrap_or("en")));
        }
        let mut chrome = json!({ "binary": chromium, "args": args });
        if let Some(lang) = &options.lang {
            chrome["prefs"] = json!({ "intl.accept_languages": lang });
        }
        if options.mobile {
            chrome["mobileEmulation"] = json!({
                "deviceMetrics": { "width": options.width, "height": options.height, "pixelRatio": 3.0, "touch": true, "mobile": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"
            });
        }
        let mut caps = Capabilities::new();
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector).capabilities(caps).connect(&url).await {
            Ok(client) => client,
            Err(err) => {
                kill_group(&mut driver);
                bail!("could not open a WebDriver session: {err}");
            }
        };
        Ok(Browser { client, driver, profile })
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        kill_group(&mut self.driver);
    }

    /// A Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`): media
    /// emulation, scripts that run before the page's own, performance metrics.
    pub async fn cdp(&self, cmd: &str, params: Value) -> anyhow::Result<Value> {
        Ok(self.client.issue_cmd(Cdp { cmd: cmd.to_owned(), params }).await?)
    }

    /// Runs `source` in every new document before its scripts (e.g. to record console errors).
    pub async fn before_each_page(&self, source: &str) -> anyhow::Result<()> {
        self.cdp("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source })).await?;
        Ok(())
    }

    /// Records the page's console errors and warnings, uncaught errors and unhandled
    /// rejections (from every new document on), for [`Browser::console`].
    pub async fn capture_console(&self) -> anyhow::Result<()> {
        self.before_each_page(CAPTURE_CONSOLE).await
    }

    /// What [`Browser::capture_console`] recorded on the current page, one line each.
    pub async fn console(&self) -> Vec<String> {
        match self.client.execute("return window.__cornettaTestLog || [];", vec![]).await {
            Ok(Value::Array(lines)) => lines.into_iter().filter_map(|l| l.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    }

    /// Emulates `prefers-color-scheme` and other media features.
    pub async fn emulate_media(&self, features: &[(&str, &str)]) -> anyhow::Result<()> {
        let features: Vec<Value> = features.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
        self.cdp("Emulation.setEmulatedMedia", json!({ "features": features })).await?;
        Ok(())
    }

    /// The widget's shadow root on the current page, once its host element exists.
    pub async fn widget(&self) -> anyhow::Result<fantoccini::elements::ShadowRoot> {
        let host = self.wait_for_element(Locator::Css("cornetta-widget"), Duration::from_secs(15)).await?;
        Ok(host.shadow_root().await?)
    }

    /// Waits for an element of the page (not inside a shadow root).
    pub async fn wait_for_element(&self, locator: Locator<'_>, timeout: Duration) -> anyhow::Result<Element> {
        Ok(self.client.wait().at_most(timeout).every(Duration::from_millis(25)).for_element(locator).await?)
    }

    /// Waits until `script` (a function body returning a value) returns something truthy,
    /// and returns it.
    pub async fn wait_for_js(&self, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let value = self.client.execute(script, vec![]).await?;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!("") && value != json!(0);
            if truthy {
                return Ok(value);
            }
            if std::time::Instant::now() > deadline {
                bail!("the page never satisfied `{script}` within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Saves a PNG screenshot as tests/output/<name>.png and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = output_dir().join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver's process group (chromedriver and the Chromium it started), by id.
fn kill_group(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill").args(["-KILL", "--"]).arg(format!("-{}", child.id())).stderr(Stdio::null()).status();
    let _ = child.kill();
    let _ = child.wait();
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(bin)).find(|p| p.is_file())
}

/// `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

/// Runs axe-core (node_modules/axe-core, from the npm registry) on what the JS expression
/// `context` names (`document`: the whole page; axe walks open shadow roots) and returns
/// its violations, each with the nodes and why they fail.
pub async fn axe(client: &Client, context: &str) -> anyhow::Result<Vec<Value>> {
    let path = crate::repo_root().join("node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).with_context(|| format!("{}: axe-core is installed by `cargo xtask setup` (npm ci)", path.display()))?;
    let loaded = client.execute(&format!("{source}\n;return typeof window.axe;"), vec![]).await?;
    if loaded != "object" {
        bail!("axe-core did not load: {loaded}");
    }
    let script = "var done = arguments[arguments.length - 1];
         axe.run(CONTEXT, { resultTypes: ['violations'] })
           .then(function (r) { done(r.violations.map(function (v) { return { id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(function (n) { return n.target.join(' ') + ': ' + n.failureSummary; }) }; })); })
           .catch(function (e) { done([{ id: 'axe-error', help: String(e) }]); });"
        .replace("CONTEXT", context);
    let result = client.execute_async(&script, vec![]).await?;
    Ok(result.as_array().cloned().unwrap_or_default())
}

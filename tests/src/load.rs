//! Consent writes over HTTP, as the widget sends them: shared by the store tests (parallel
//! writers, crashes) and `cornetta-bench store`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cornetta_shared::api::{ConsentCreated, WidgetConfig};

/// The origin the default site allows (`cornetta serve --default-origins`' default).
pub const DEFAULT_ORIGIN: &str = "http://127.0.0.1:8081";

/// Where and as whom to post consents: a server, its site and the notice it shows.
#[derive(Debug, Clone)]
pub struct ConsentTarget {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub site_key: String,
    pub notice_id: String,
    /// An origin the site allows.
    pub origin: String,
}

impl ConsentTarget {
    /// Reads the site's English notice from the widget configuration route.
    pub async fn discover(client: &reqwest::Client, url: &str, site_key: &str) -> anyhow::Result<Self> {
        let response = client.get(format!("{url}/v1/sites/{site_key}/widget?lang=en")).header("Origin", DEFAULT_ORIGIN).send().await?;
        if !response.status().is_success() {
            bail!("widget configuration answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        let config: WidgetConfig = response.json().await?;
        let notice = config.notice.context("the site has no notice")?;
        Ok(Self { url: url.to_owned(), site_key: site_key.to_owned(), notice_id: notice.id.to_string(), origin: DEFAULT_ORIGIN.to_owned() })
    }

    /// The same site and notice on another server (another process on the same database).
    pub fn on(&self, url: &str) -> Self {
        Self { url: url.to_owned(), ..self.clone() }
    }

    /// Posts one utility grant; `Ok` only for 201 Created.
    pub async fn post(&self, client: &reqwest::Client) -> anyhow::Result<ConsentCreated> {
        let body = serde_json::json!({
            "site": self.site_key,
            "notice": self.notice_id,
            "purposes": ["utility"],
            "page_url": "https://shop.example/checkout",
        });
        let response = client
            .post(format!("{}/v1/consents", self.url))
            .header("Origin", &self.origin)
            .header("User-Agent", "cornetta-load/1")
            .json(&body)
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!("POST /v1/consents answered {}: {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(response.json().await?)
    }
}

/// What a run of concurrent writers did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every consent answered 201, in no particular order.
    pub created: Vec<ConsentCreated>,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.created.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How long and how much a run may write.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Each writer stops after this many consents…
    pub per_writer: u64,
    /// …or once this much time has passed.
    pub time: Duration,
}

/// Runs `writers` concurrent clients per target, each posting until its budget is spent.
pub async fn run_writers(targets: &[ConsentTarget], writers: usize, budget: Budget) -> Outcome {
    let start = Instant::now();
    let deadline = start + budget.time;
    let mut tasks = Vec::new();
    for target in targets {
        for _ in 0..writers {
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                // One connection per writer, kept alive, as a browser per visitor would.
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("a reqwest client");
                let mut outcome = Outcome::default();
                for _ in 0..budget.per_writer {
                    if Instant::now() >= deadline {
                        break;
                    }
                    match target.post(&client).await {
                        Ok(created) => outcome.created.push(created),
                        Err(err) => {
                            outcome.failures += 1;
                            outcome.first_failure.get_or_insert_with(|| format!("{err:#}"));
                        }
                    }
                }
                outcome
            }));
        }
    }
    let mut total = Outcome::default();
    for task in tasks {
        match task.await {
            Ok(outcome) => {
                total.created.extend(outcome.created);
                total.failures += outcome.failures;
                if total.first_failure.is_none() {
                    total.first_failure = outcome.first_failure;
                }
            }
            Err(err) => {
                total.failures += 1;
                total.first_failure.get_or_insert_with(|| format!("a writer panicked: {err}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

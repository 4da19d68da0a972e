//! The `cornetta` command line: `serve`, `qr`, `site`, `token`, `whatsapp`. Every flag also reads the
//! environment variable named in its help (`--addr` ↔ `CORNETTA_ADDR`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use cornetta_shared::{Lang, PhoneNumber, Region, SiteKey};
use secrecy::ExposeSecret;
use sqlx::sqlite::SqliteSynchronous;

use crate::assets::Assets;
use crate::keys::Keyring;
use crate::limits::{LimitSettings, RateLimits};
use crate::state::{AppState, Settings};
use crate::store::postgres::{PostgresSettings, PostgresStore};
use crate::store::sqlite::{SqliteSettings, SqliteStore};
use crate::store::{DatabaseUrl, DynStore, Role};

#[derive(Debug, Parser)]
#[command(name = "cornetta", version, about = "Consent-first WhatsApp click-to-chat: server, QR codes and consent ledger")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (API, widget files, and optionally the example shop page).
    Serve(ServeArgs),
    /// Write the QR code of a wa.me link to a PNG or SVG file, offline.
    Qr(QrArgs),
    /// Create, list and update sites (tenants).
    #[command(subcommand)]
    Site(SiteCommand),
    /// Create, list and revoke bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Verify the consent ledger and sign checkpoints, offline against the database.
    #[command(subcommand)]
    Ledger(crate::ledger::cli::LedgerCommand),
    /// Verify a consent receipt offline.
    #[command(subcommand)]
    Receipt(crate::ledger::cli::ReceiptCommand),
    /// Erase a person's data (GDPR Art. 17).
    #[command(subcommand)]
    Subject(crate::ledger::cli::SubjectCommand),
    /// Configure the WhatsApp Cloud API webhook: Meta apps, numbers, opt-out keywords.
    #[command(subcommand)]
    Whatsapp(crate::whatsapp::cli::WhatsappCommand),
}

/// Where data lives; shared by every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite file and the key files; created if missing.
    #[arg(long, env = "CORNETTA_DATA_DIR", default_value = "cornetta-data")]
    pub data_dir: PathBuf,
    /// `sqlite://FILE` (default: cornetta.db in the data directory) or `postgres://…`.
    #[arg(long, env = "CORNETTA_DATABASE_URL", value_parser = DatabaseUrl::parse)]
    pub database_url: Option<DatabaseUrl>,
    /// The master key file (wraps per-subject keys); default: DATA_DIR/master.key.
    #[arg(long, env = "CORNETTA_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The ledger's Ed25519 signing key file; default: DATA_DIR/ledger-signing.key.
    #[arg(long, env = "CORNETTA_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "CORNETTA_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The URL people reach this server at (default: http://ADDR).
    #[arg(long, env = "CORNETTA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Region (ISO 3166 code, e.g. IT) for national phone numbers when a request names none.
    #[arg(long, env = "CORNETTA_REGION", value_parser = |s: &str| Region::parse(s).map_err(|e| e.to_string()))]
    pub region: Option<Region>,
    /// The built widget (`cargo xtask widget` writes it here).
    #[arg(long, env = "CORNETTA_WIDGET_DIR", default_value = "widget/dist")]
    pub widget_dir: PathBuf,
    /// Also serve the example shop page on this address (another origin, as a merchant's
    /// site would be).
    #[arg(long, env = "CORNETTA_DEMO_ADDR")]
    pub demo_addr: Option<SocketAddr>,
    /// The example shop's files.
    #[arg(long, env = "CORNETTA_DEMO_DIR", default_value = "examples/shop")]
    pub demo_dir: PathBuf,
    /// Origins the default site (created on an empty database) allows, comma-separated.
    #[arg(long, env = "CORNETTA_DEFAULT_ORIGINS", value_delimiter = ',', default_value = "http://127.0.0.1:8081,http://localhost:8081")]
    pub default_origins: Vec<String>,
    /// Take the client address from X-Forwarded-For (only behind a proxy you control).
    #[arg(long, env = "CORNETTA_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// UNSAFE, for `cornetta-bench store` only: `off` makes SQLite skip fsync, so an
    /// acknowledged consent can be lost on power failure. `full` (the default) is durable.
    #[arg(long, env = "CORNETTA_SQLITE_SYNCHRONOUS", hide = true, default_value = "full", value_parser = parse_sqlite_synchronous)]
    pub sqlite_synchronous: SqliteSynchronous,
    /// Consents and withdrawals per minute from one client address.
    #[arg(long, env = "CORNETTA_PUBLIC_WRITES_PER_MINUTE", default_value_t = LimitSettings::default().public_writes_per_minute)]
    pub public_writes_per_minute: u32,
    /// Links, QR codes and widget configurations per minute from one client address.
    #[arg(long, env = "CORNETTA_PUBLIC_READS_PER_MINUTE", default_value_t = LimitSettings::default().public_reads_per_minute)]
    pub public_reads_per_minute: u32,
    /// Unknown short-link codes (`/q/…`) per minute from one client address, to make
    /// guessing codes slow.
    #[arg(long, env = "CORNETTA_SHORT_LINK_MISSES_PER_MINUTE", default_value_t = 30)]
    pub short_link_misses_per_minute: u32,
    /// Seconds between scheduled ledger checkpoints (each site whose log grew gets a signed
    /// checkpoint); 0 turns the schedule off.
    #[arg(long, env = "CORNETTA_CHECKPOINT_INTERVAL", default_value_t = 600)]
    pub checkpoint_interval: u64,
    /// The jurisdiction consent receipts name (e.g. EU, IT).
    #[arg(long, env = "CORNETTA_JURISDICTION", default_value = "EU")]
    pub jurisdiction: String,
}

#[derive(Debug, Clone, Args)]
pub struct QrArgs {
    /// The WhatsApp number, international (+39 333 1234567) or national with --region.
    #[arg(long, required_unless_present = "batch")]
    pub phone: Option<String>,
    /// The prefilled message.
    #[arg(long)]
    pub text: Option<String>,
    /// Region for a national number (also for the rows of --batch).
    #[arg(long)]
    pub region: Option<String>,
    /// Output file; its extension (.png or .svg) picks the format (.zip with --batch).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Edge length: pixels (512) or a printed size (3cm, 30mm, 1.5in).
    #[arg(long)]
    pub size: Option<String>,
    /// Print resolution for a printed size (default 300).
    #[arg(long)]
    pub dpi: Option<String>,
    /// Quiet zone in modules (default 4).
    #[arg(long)]
    pub margin: Option<String>,
    /// Error correction: L, M, Q or H (default M; H with --label).
    #[arg(long)]
    pub ecc: Option<String>,
    /// Colour of the dark modules, #rrggbb.
    #[arg(long)]
    pub fg: Option<String>,
    /// Background colour, #rrggbb.
    #[arg(long)]
    pub bg: Option<String>,
    /// Leave a blank centre area for a label or logo (needs error correction H).
    #[arg(long)]
    pub label: bool,
    /// Make a ZIP of codes from a CSV of name,phone,text rows (plus links.csv and errors.csv).
    #[arg(long, value_name = "FILE.csv")]
    pub batch: Option<PathBuf>,
    /// With --batch: svg, png or both.
    #[arg(long, default_value = "both")]
    pub format: String,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site; prints its public key. Notices in every built-in language are published.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The business's name, shown in every notice.
        #[arg(long)]
        business: String,
        /// A WhatsApp number (repeatable; the first is the default).
        #[arg(long = "phone", required = true)]
        phones: Vec<String>,
        /// An origin allowed to embed the widget, e.g. https://shop.example (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Region for national numbers.
        #[arg(long)]
        region: Option<String>,
        /// The language used when the visitor's is not available.
        #[arg(long, default_value = "en")]
        lang: String,
    },
    /// List sites.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a site's allowed origins.
    Update {
        #[command(flatten)]
        store: StoreArgs,
        /// The site's public key.
        key: String,
        #[arg(long = "add-origin")]
        add_origins: Vec<String>,
        #[arg(long = "remove-origin")]
        remove_origins: Vec<String>,
    },
    /// Print every notice version the site ever published, with the exact text its SHA-256
    /// covers: what visitors were shown, and when.
    Notices {
        #[command(flatten)]
        store: StoreArgs,
        /// The site's public key.
        key: String,
        /// Only this language (e.g. en, it).
        #[arg(long)]
        lang: Option<String>,
        /// Publish a new version first, from a JSON file:
        /// {"lang": "en", "intro": "…", "purposes": [{"purpose": "utility", "label": "…"}], "privacy_url": "https://…"}.
        /// Visitors are shown it from their next request; consents keep the version they were given on.
        #[arg(long, value_name = "FILE.json")]
        publish: Option<PathBuf>,
    },
    /// Show or replace a site's widget settings (agents, hours, greeting, message…); the
    /// JSON shape is documented in widget/README.md.
    Widget {
        #[command(flatten)]
        store: StoreArgs,
        /// The site's public key.
        key: String,
        /// Replace the settings with this JSON file (without it, print the current ones).
        #[arg(long)]
        set_file: Option<PathBuf>,
        /// Region for national numbers in the file.
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the secret once (stdout), to keep somewhere safe.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// admin, auditor or marketer.
        #[arg(long)]
        role: String,
        /// Limit the token to one site (its public key); default: every site.
        #[arg(long)]
        site: Option<String>,
        /// A name to recognise it by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id (tok_…).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
}

impl StoreArgs {
    pub fn database_url(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| DatabaseUrl::Sqlite(self.data_dir.join("cornetta.db")))
    }

    pub fn keyring(&self) -> anyhow::Result<Keyring> {
        let (master, signing) = crate::keys::default_paths(&self.data_dir);
        Keyring::load_or_create(self.master_key_file.as_deref().unwrap_or(&master), self.signing_key_file.as_deref().unwrap_or(&signing))
    }
}

fn parse_sqlite_synchronous(input: &str) -> Result<SqliteSynchronous, String> {
    match input {
        "full" => Ok(SqliteSynchronous::Full),
        "off" => Ok(SqliteSynchronous::Off),
        other => Err(format!("{other:?}: expected full (durable) or off (unsafe, for benchmarks only)")),
    }
}

/// Opens the store `--database-url` names.
pub async fn open_store(url: &DatabaseUrl) -> anyhow::Result<DynStore> {
    open_store_with(url, SqliteSettings::default()).await
}

/// Opens the store `--database-url` names, with SQLite settings (ignored for PostgreSQL).
pub async fn open_store_with(url: &DatabaseUrl, sqlite: SqliteSettings) -> anyhow::Result<DynStore> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let store = SqliteStore::open(path, sqlite)
                .await
                .with_context(|| format!("opening the SQLite database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres(url) => {
            let store = PostgresStore::open(url, PostgresSettings::default())
                .await
                .context("connecting to PostgreSQL (is it running, and does the database in --database-url exist?)")?;
            Ok(Arc::new(store))
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Qr(args) => qr(args),
        Command::Site(command) => site(command).await,
        Command::Token(command) => token(command).await,
        Command::Ledger(command) => crate::ledger::cli::run(command).await,
        Command::Receipt(command) => crate::ledger::cli::run_receipt(command),
        Command::Subject(command) => crate::ledger::cli::run_subject(command).await,
        Command::Whatsapp(command) => crate::whatsapp::cli::run(command).await,
    }
}

/// Builds the application state for `serve` (also used by tests that run in-process).
/// `local` is the address the server is bound to (its real port when `--addr` said 0).
pub async fn build_state(args: &ServeArgs, local: SocketAddr) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&args.store.data_dir)
        .with_context(|| format!("creating the data directory {}", args.store.data_dir.display()))?;
    if args.sqlite_synchronous != SqliteSynchronous::Full {
        tracing::warn!("--sqlite-synchronous is not full: acknowledged consents can be lost on power failure (benchmarks only)");
    }
    let store = open_store_with(&args.store.database_url(), SqliteSettings { synchronous: args.sqlite_synchronous }).await?;
    let keys = args.store.keyring()?;
    let origins = args
        .default_origins
        .iter()
        .map(|o| crate::sites::parse_origin(o).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(site) = crate::sites::ensure_default(&store, origins).await? {
        println!(
            "Created the default site \"{}\" (site key {}, allowed origins: {}).",
            site.business_name,
            site.key,
            site.allowed_origins.join(", ")
        );
    }
    let studio = Arc::new(crate::campaigns::scans::Studio::new(args.short_link_misses_per_minute));
    studio.scans.spawn_flusher(store.clone());
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{local}")).trim_end_matches('/').to_owned();
    Ok(AppState {
        store,
        keys: Arc::new(keys),
        settings: Arc::new(Settings {
            default_region: args.region,
            public_url,
            trust_forwarded_for: args.trust_forwarded_for,
            jurisdiction: args.jurisdiction.clone(),
        }),
        assets: Arc::new(Assets::load(&args.widget_dir)),
        limits: Arc::new(RateLimits::new(LimitSettings {
            public_writes_per_minute: args.public_writes_per_minute,
            public_reads_per_minute: args.public_reads_per_minute,
        })),
        studio,
        ledger: Arc::new(crate::ledger::Ledger::new()),
    })
}

async fn serve(mut args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr()?;
    // The example shop listens first, so that the default site can allow its real origin
    // (also when its port is 0, as in tests).
    let demo_listener = match args.demo_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
            let origin = format!("http://{}", listener.local_addr()?);
            if !args.default_origins.contains(&origin) {
                args.default_origins.push(origin);
            }
            Some(listener)
        }
        None => None,
    };
    let state = build_state(&args, local).await?;
    if let Some(why) = state.assets.missing() {
        tracing::warn!("{why}");
    }
    let limits = state.limits.clone();
    let studio = state.studio.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.forget_quiet();
            studio.misses.forget_quiet();
        }
    });
    let (flush_store, flush_studio) = (state.store.clone(), state.studio.clone());
    if args.checkpoint_interval > 0 {
        let interval = std::time::Duration::from_secs(args.checkpoint_interval);
        tokio::spawn(crate::ledger::log::run_schedule(state.ledger.clone(), state.store.clone(), state.keys.clone(), interval));
    }
    if let Some(demo_listener) = demo_listener {
        let demo = crate::demo::router(&state, &args.demo_dir).await?;
        println!("Example shop page: http://{}/", demo_listener.local_addr()?);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(demo_listener, demo).await {
                tracing::error!(error = %err, "the example shop server stopped");
            }
        });
    }
    println!("Cornetta {} listening on http://{local} (store: {})", env!("CARGO_PKG_VERSION"), state.store.backend());
    let app = crate::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    // Scan counts still in memory are written before the process ends.
    flush_studio.scans.flush(&flush_store).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn qr(args: QrArgs) -> anyhow::Result<()> {
    use crate::qr::options::{RawOptions, RenderOptions};
    use crate::qr::Format;
    let flag = |param: &str| match param {
        "format" => "--format".to_owned(),
        other => format!("--{other}"),
    };
    let region = args.region.as_deref().map(Region::parse).transpose().map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    let raw = |format: Option<&'static str>| RawOptions {
        format,
        size: args.size.as_deref(),
        dpi: args.dpi.as_deref(),
        margin: args.margin.as_deref(),
        ecc: args.ecc.as_deref(),
        fg: args.fg.as_deref(),
        bg: args.bg.as_deref(),
        label: args.label.then_some("true"),
    };
    if let Some(batch) = &args.batch {
        let formats: Vec<Format> = match args.format.to_ascii_lowercase().as_str() {
            "both" => vec![Format::Png, Format::Svg],
            "png" => vec![Format::Png],
            "svg" => vec![Format::Svg],
            other => bail!("--format {other:?}: expected svg, png or both"),
        };
        let options = RenderOptions::parse(&raw(Some(formats[0].extension())), formats[0])
            .map_err(|e| anyhow::anyhow!("{}: {}", flag(e.param), e.message))?;
        if formats.contains(&Format::Png) {
            let png = RenderOptions { format: Format::Png, ..options };
            png.size.pixels().map_err(|e| anyhow::anyhow!("--size: {}", e.message))?;
        }
        let csv = std::fs::read(batch).with_context(|| format!("reading {}", batch.display()))?;
        let out = crate::qr::batch::run(&csv, region, &options, &formats).map_err(|e| anyhow::anyhow!("{}: {e}", batch.display()))?;
        write_file(&args.output, &out.zip)?;
        eprintln!("Wrote {} ({} bytes): {} codes, links in links.csv.", args.output.display(), out.zip.len(), out.produced);
        if !out.errors.is_empty() {
            for e in &out.errors {
                eprintln!("{}:{}: {}", batch.display(), e.line, e.message);
            }
            bail!("{} rows of {} could not be made into codes (listed above and in errors.csv); the other rows were written", out.errors.len(), batch.display());
        }
        return Ok(());
    }
    let format = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::parse)
        .with_context(|| format!("{}: the output file must end in .png or .svg", args.output.display()))?;
    let options = RenderOptions::parse(&raw(Some(format.extension())), format).map_err(|e| anyhow::anyhow!("{}: {}", flag(e.param), e.message))?;
    let phone = args.phone.as_deref().context("--phone is required (or --batch FILE.csv)")?;
    let phone = PhoneNumber::parse(phone, region).map_err(|e| anyhow::anyhow!("--phone: {e}"))?;
    let link = cornetta_shared::WaLink::new(phone, args.text.as_deref()).map_err(|e| anyhow::anyhow!("--text: {e}"))?;
    let rendered = options.render(link.url())?;
    write_file(&args.output, &rendered.bytes)?;
    eprintln!("Wrote {} ({} bytes) for {}", args.output.display(), rendered.bytes.len(), link.url());
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

async fn open(store: &StoreArgs) -> anyhow::Result<DynStore> {
    std::fs::create_dir_all(&store.data_dir).with_context(|| format!("creating the data directory {}", store.data_dir.display()))?;
    open_store(&store.database_url()).await
}

/// Opens the store of a database that must already exist (verification must not create one).
pub async fn open_existing(store: &StoreArgs) -> anyhow::Result<DynStore> {
    let url = store.database_url();
    if let DatabaseUrl::Sqlite(path) = &url
        && !path.exists() {
            bail!("there is no database at {}; pass --data-dir or --database-url sqlite://FILE", path.display());
        }
    open_store(&url).await
}

async fn find_site(store: &DynStore, key: &str) -> anyhow::Result<crate::store::Site> {
    let key = SiteKey::parse(key)?;
    store.site_by_key(&key).await?.with_context(|| format!("no site has the key {key}; `cornetta site list` shows them"))
}

/// A JSON file given on the command line (`--set-file`, `--publish`), read as `what`: a NUL
/// character is refused as the API refuses it, and a parse error names the file and `shape`.
fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path, what: &str, shape: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if crate::http::json_has_nul(text.as_bytes()) {
        anyhow::bail!("{}: a value holds a NUL character (\\u0000), which no {what} may contain; remove it", path.display());
    }
    serde_json::from_str(&text).with_context(|| format!("{} is not valid {what} JSON ({shape})", path.display()))
}

async fn site(command: SiteCommand) -> anyhow::Result<()> {
    match command {
        SiteCommand::Create { store, business, phones, origins, region, lang } => {
            let db = open(&store).await?;
            let region = region.as_deref().map(Region::parse).transpose().map_err(|e| anyhow::anyhow!("--region: {e}"))?;
            let phones = phones
                .iter()
                .map(|p| PhoneNumber::parse(p, region).map_err(|e| anyhow::anyhow!("--phone: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let origins = origins
                .iter()
                .map(|o| crate::sites::parse_origin(o).map_err(|e| anyhow::anyhow!("--origin: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let lang = Lang::parse(&lang).map_err(|e| anyhow::anyhow!("--lang: {e}"))?;
            let (site, notices) = crate::sites::create(&db, &business, phones, origins, lang).await?;
            eprintln!("Created site \"{}\" with {} notices; embed it with data-site=\"{}\".", site.business_name, notices.len(), site.key);
            println!("{}", site.key);
        }
        SiteCommand::List { store } => {
            let db = open(&store).await?;
            for site in db.list_sites().await? {
                let phones: Vec<String> = site.phones.iter().map(PhoneNumber::to_string).collect();
                println!("{}  {}  phones={}  origins={}", site.key, site.business_name, phones.join(","), site.allowed_origins.join(","));
            }
        }
        SiteCommand::Update { store, key, add_origins, remove_origins } => {
            let db = open(&store).await?;
            let site = find_site(&db, &key).await?;
            let mut origins = site.allowed_origins.clone();
            for o in &add_origins {
                origins.push(crate::sites::parse_origin(o).map_err(|e| anyhow::anyhow!("--add-origin: {e}"))?);
            }
            for o in &remove_origins {
                let o = crate::sites::parse_origin(o).map_err(|e| anyhow::anyhow!("--remove-origin: {e}"))?;
                origins.retain(|x| *x != o);
            }
            let origins = crate::sites::set_origins(&db, &site.id, origins).await?;
            println!("{}  origins={}", site.key, origins.join(","));
        }
        SiteCommand::Notices { store, key, lang, publish } => {
            let lang = lang.as_deref().map(Lang::parse).transpose().map_err(|e| anyhow::anyhow!("--lang: {e}"))?;
            let db = open(&store).await?;
            let site = find_site(&db, &key).await?;
            if let Some(path) = publish {
                let body: crate::http::sites::PublishNotice =
                    read_json_file(&path, "notice", r#"{"lang", "intro", "purposes": [{"purpose", "label"}], "privacy_url"?}"#)?;
                let new = crate::notice::prepare(&site.id, body.lang, &body.intro, body.purposes, body.privacy_url)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let published = db.publish_notice(new).await?;
                eprintln!("published {} version {} of site {}", published.lang, published.version, site.key);
            }
            let all = db.notices(&site.id).await?;
            for n in all.iter().filter(|n| lang.is_none_or(|l| n.lang == l)) {
                let current = if crate::notice::is_current(n, &all) { "  current" } else { "" };
                println!("{}  {}  v{}  published {}  sha256 {}{current}", n.id, n.lang, n.version, n.published_at, n.sha256);
                for line in n.canonical_text.lines() {
                    println!("    {line}");
                }
            }
        }
        SiteCommand::Widget { store, key, set_file, region } => {
            let db = open(&store).await?;
            let site = find_site(&db, &key).await?;
            let Some(path) = set_file else {
                println!("{}", serde_json::to_string_pretty(&crate::widget_settings::stored(&site))?);
                return Ok(());
            };
            let region = region.as_deref().map(Region::parse).transpose().map_err(|e| anyhow::anyhow!("--region: {e}"))?;
            let settings: cornetta_shared::widget::WidgetSettings = read_json_file(&path, "widget settings", "see widget/README.md")?;
            let settings = crate::widget_settings::check(settings, region).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            db.update_site_widget(&site.id, serde_json::to_value(&settings)?).await?;
            eprintln!("Updated the widget settings of {}; pages pick them up when a visitor next opens the chat.", site.key);
        }
    }
    Ok(())
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { store, role, site, name } => {
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let db = open(&store).await?;
            let site = match site {
                Some(key) => Some(find_site(&db, &key).await?),
                None => None,
            };
            let name = if name.is_empty() { format!("{role} token") } else { name };
            let issued = crate::tokens::issue(&db, &name, role, site.as_ref().map(|s| s.id.clone())).await?;
            eprintln!(
                "Created {} token {} for {}. The secret is shown only now:",
                role,
                issued.info.id,
                site.as_ref().map_or("every site".to_owned(), |s| format!("site {}", s.key))
            );
            println!("{}", issued.secret.expose_secret());
        }
        TokenCommand::List { store } => {
            let db = open(&store).await?;
            let sites = db.list_sites().await?;
            for info in db.list_tokens().await? {
                let key = info.site_id.as_ref().and_then(|id| sites.iter().find(|s| &s.id == id)).map(|s| &s.key);
                println!("{}", crate::tokens::describe(&info, key));
            }
        }
        TokenCommand::Revoke { store, id } => {
            let db = open(&store).await?;
            if !db.revoke_token(&id).await? {
                bail!("no unrevoked token has the id {id}; `cornetta token list` shows them");
            }
            println!("Revoked {id}.");
        }
    }
    Ok(())
}

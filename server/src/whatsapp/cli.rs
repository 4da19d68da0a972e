//! `cornetta whatsapp …`: configure Meta apps (verify token, app secret), map Meta's phone
//! number ids to sites' numbers, and set a site's opt-out keywords and reply.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cornetta_shared::{PhoneNumber, Region, SiteKey};
use secrecy::SecretString;

use super::{apps, optout};
use crate::cli::{StoreArgs, open_store};
use crate::error::ApiError;
use crate::store::whatsapp::{OptOutSettings, PhoneNumberId};
use crate::store::{DynStore, Site};

#[derive(Debug, Subcommand)]
pub enum WhatsappCommand {
    /// Meta apps: the verify token and app secret of the app whose webhook points here.
    #[command(subcommand)]
    App(AppCommand),
    /// Business numbers: which site a Meta phone number id belongs to.
    #[command(subcommand)]
    Number(NumberCommand),
    /// Show or change a site's opt-out keywords and confirmation reply.
    OptOut(OptOutArgs),
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Add a Meta app; prints its id. The app secret is stored encrypted with the master key.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The string you enter as "Verify token" in the App Dashboard (WhatsApp → Configuration).
        #[arg(long, env = "CORNETTA_WHATSAPP_VERIFY_TOKEN", hide_env_values = true)]
        verify_token: String,
        /// A file holding the app secret (App settings → Basic → App secret); `-` reads stdin.
        #[arg(long, env = "CORNETTA_WHATSAPP_APP_SECRET_FILE")]
        app_secret_file: PathBuf,
        /// A name to recognise the app by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List Meta apps (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a Meta app (after removing its numbers).
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        /// The app's id (waa_…).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NumberCommand {
    /// Map a Meta phone number id to one of a site's numbers.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The site's public key.
        #[arg(long)]
        site: String,
        /// The number's id at Meta (WhatsApp Manager → Phone numbers, or API Setup).
        #[arg(long)]
        phone_number_id: String,
        /// The number itself; must be one of the site's numbers.
        #[arg(long)]
        phone: String,
        /// Region for a national number.
        #[arg(long)]
        region: Option<String>,
        /// The Meta app serving the number (needed when several are configured).
        #[arg(long)]
        app: Option<String>,
    },
    /// List mapped numbers.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a mapping; messages to that number are then ignored.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        phone_number_id: String,
    },
}

#[derive(Debug, Args)]
pub struct OptOutArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The site's public key.
    #[arg(long)]
    pub site: String,
    /// Replace the keywords with these (repeatable).
    #[arg(long = "keyword")]
    pub keywords: Vec<String>,
    /// Add a keyword to those in force (repeatable).
    #[arg(long = "add-keyword")]
    pub add_keywords: Vec<String>,
    /// Remove a keyword from those in force (repeatable).
    #[arg(long = "remove-keyword")]
    pub remove_keywords: Vec<String>,
    /// Go back to the built-in keywords.
    #[arg(long, conflicts_with = "keywords")]
    pub reset_keywords: bool,
    /// Text to confirm an opt-out with (handed to whatever sends messages).
    #[arg(long)]
    pub reply: Option<String>,
    /// No confirmation text.
    #[arg(long, conflicts_with = "reply")]
    pub no_reply: bool,
}

/// CLI errors say what failed; an internal error keeps its cause.
fn cli_error(err: ApiError) -> anyhow::Error {
    match err {
        ApiError::Internal(inner) => inner,
        other => anyhow::anyhow!("{other}"),
    }
}

async fn open(store: &StoreArgs) -> anyhow::Result<DynStore> {
    std::fs::create_dir_all(&store.data_dir).with_context(|| format!("creating the data directory {}", store.data_dir.display()))?;
    open_store(&store.database_url()).await
}

async fn find_site(store: &DynStore, key: &str) -> anyhow::Result<Site> {
    let key = SiteKey::parse(key).map_err(|e| anyhow::anyhow!("--site: {e}"))?;
    store.site_by_key(&key).await?.with_context(|| format!("no site has the key {key}; `cornetta site list` shows them"))
}

fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("reading the app secret from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("--app-secret-file {}: cannot read it; put the app secret alone in that file", path.display()))?;
    }
    apps::parse_app_secret(&text).map_err(|e| anyhow::anyhow!("--app-secret-file {}: {e}", path.display()))
}

pub async fn run(command: WhatsappCommand) -> anyhow::Result<()> {
    match command {
        WhatsappCommand::App(command) => app(command).await,
        WhatsappCommand::Number(command) => number(command).await,
        WhatsappCommand::OptOut(args) => opt_out(args).await,
    }
}

async fn app(command: AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Add { store, verify_token, app_secret_file, name } => {
            let verify_token = apps::parse_verify_token(&verify_token).map_err(|e| anyhow::anyhow!("--verify-token: {e}"))?;
            let app_secret = read_secret_file(&app_secret_file)?;
            let name = apps::parse_app_name(name.as_deref()).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let keys = store.keyring()?;
            let db = open(&store).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            let app = apps::add_app(wa, &keys, name, &verify_token, &app_secret).await.map_err(cli_error)?;
            eprintln!(
                "Added Meta app \"{}\". Point its WhatsApp webhook at <public URL>/v1/webhooks/whatsapp with the same verify token, \
                 then map numbers with `cornetta whatsapp number add --site … --phone-number-id … --phone …`.",
                app.name
            );
            println!("{}", app.id);
        }
        AppCommand::List { store } => {
            let db = open(&store).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            let numbers = wa.list_numbers().await?;
            for app in wa.list_apps().await? {
                let count = numbers.iter().filter(|n| n.app_id == app.id).count();
                println!("{}  {}  numbers={}  created={}", app.id, app.name, count, app.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"));
            }
        }
        AppCommand::Remove { store, id } => {
            let db = open(&store).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            if !wa.remove_app(&id).await.map_err(|e| cli_error(e.into()))? {
                bail!("no Meta app has the id {id}; `cornetta whatsapp app list` shows them");
            }
            println!("Removed {id}.");
        }
    }
    Ok(())
}

async fn number(command: NumberCommand) -> anyhow::Result<()> {
    match command {
        NumberCommand::Add { store, site, phone_number_id, phone, region, app } => {
            let phone_number_id = PhoneNumberId::parse(phone_number_id.trim()).map_err(|e| anyhow::anyhow!("--phone-number-id: {e}"))?;
            let region = region.as_deref().map(Region::parse).transpose().map_err(|e| anyhow::anyhow!("--region: {e}"))?;
            let phone = PhoneNumber::parse(&phone, region).map_err(|e| anyhow::anyhow!("--phone: {e}"))?;
            let db = open(&store).await?;
            let site = find_site(&db, &site).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            let number = apps::add_number(wa, &site, phone_number_id, phone, app.as_deref()).await.map_err(cli_error)?;
            println!("{}  site={}  phone={}  app={}", number.phone_number_id, site.key, number.phone, number.app_id);
        }
        NumberCommand::List { store } => {
            let db = open(&store).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            let sites = db.list_sites().await?;
            for number in wa.list_numbers().await? {
                let key = sites.iter().find(|s| s.id == number.site_id).map_or("?".to_owned(), |s| s.key.to_string());
                println!("{}  site={}  phone={}  app={}", number.phone_number_id, key, number.phone, number.app_id);
            }
        }
        NumberCommand::Remove { store, phone_number_id } => {
            let id = PhoneNumberId::parse(phone_number_id.trim()).map_err(|e| anyhow::anyhow!("phone number id: {e}"))?;
            let db = open(&store).await?;
            let wa = apps::tables(&db).map_err(cli_error)?;
            if !wa.remove_number(&id).await? {
                bail!("no number has the phone number id {id}; `cornetta whatsapp number list` shows them");
            }
            println!("Removed {id}.");
        }
    }
    Ok(())
}

async fn opt_out(args: OptOutArgs) -> anyhow::Result<()> {
    let db = open(&args.store).await?;
    let site = find_site(&db, &args.site).await?;
    let wa = apps::tables(&db).map_err(cli_error)?;
    let mut settings = wa.opt_out_settings(&site.id).await?;
    let changing = !args.keywords.is_empty()
        || !args.add_keywords.is_empty()
        || !args.remove_keywords.is_empty()
        || args.reset_keywords
        || args.reply.is_some()
        || args.no_reply;
    if changing {
        let mut keywords = if args.reset_keywords {
            None
        } else if args.keywords.is_empty() {
            settings.keywords.clone()
        } else {
            Some(optout::parse_keywords(&args.keywords).map_err(|e| anyhow::anyhow!("--keyword: {e}"))?)
        };
        if !args.add_keywords.is_empty() || !args.remove_keywords.is_empty() {
            let mut list = keywords.unwrap_or_else(optout::default_keywords);
            for k in optout::parse_keywords(&args.add_keywords).map_err(|e| anyhow::anyhow!("--add-keyword: {e}"))? {
                if !list.contains(&k) {
                    list.push(k);
                }
            }
            let remove = optout::parse_keywords(&args.remove_keywords).map_err(|e| anyhow::anyhow!("--remove-keyword: {e}"))?;
            list.retain(|k| !remove.contains(k));
            keywords = Some(optout::parse_keywords(&list).map_err(|e| anyhow::anyhow!("keywords: {e}"))?);
        }
        if keywords.as_ref().is_some_and(Vec::is_empty) {
            bail!("that leaves site {} without opt-out keywords; people must be able to opt out on WhatsApp (use --reset-keywords for the built-in list)", site.key);
        }
        let reply = match (&args.reply, args.no_reply) {
            (Some(text), _) => Some(optout::parse_reply(text).map_err(|e| anyhow::anyhow!("--reply: {e}"))?),
            (None, true) => None,
            (None, false) => settings.reply.clone(),
        };
        settings = OptOutSettings { keywords, reply };
        wa.set_opt_out_settings(&site.id, settings.clone()).await?;
    }
    let custom = settings.keywords.is_some();
    println!("site={}  keywords={}  ({})", site.key, apps::keywords_in_force(&settings).join(", "), if custom { "the site's own" } else { "built-in" });
    println!("reply={}", settings.reply.as_deref().unwrap_or("(none)"));
    Ok(())
}

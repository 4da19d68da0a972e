//! The ledger's commands: `cornetta ledger verify|checkpoint`, offline against the database.

use anyhow::{Context, bail};
use clap::Subcommand;
use cornetta_shared::SiteKey;

use super::Ledger;
use super::checkpoint::parse_public_key;
use super::verify::{SiteReport, verify_site};
use crate::cli::StoreArgs;
use crate::store::{DynStore, Site};

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every site's log from the database and check its signed checkpoints;
    /// names the first event that no longer matches. Exits non-zero when anything fails.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this site (its public key).
        #[arg(long)]
        site: Option<String>,
        /// The key checkpoints must be signed with (verifier key, hex or base64); default:
        /// the one of the signing key file.
        #[arg(long)]
        public_key: Option<String>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint of every site's log (or one site's) now; prints the signed notes.
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        site: Option<String>,
    },
}

pub(crate) async fn sites(db: &DynStore, key: Option<&str>) -> anyhow::Result<Vec<Site>> {
    match key {
        Some(key) => {
            let key = SiteKey::parse(key).map_err(|e| anyhow::anyhow!("--site: {e}"))?;
            let site = db.site_by_key(&key).await?.with_context(|| format!("no site has the key {key}; `cornetta site list` shows them"))?;
            Ok(vec![site])
        }
        None => Ok(db.list_sites().await?),
    }
}

/// A report as a person reads it.
pub fn describe(report: &SiteReport) -> String {
    let mut out = String::new();
    if report.ok {
        out.push_str(&format!(
            "site {}: OK: {} events, root {}, {} checkpoints verified ({} ms)\n",
            report.site, report.events, report.root, report.checkpoints_verified, report.elapsed_ms
        ));
        return out;
    }
    out.push_str(&format!("site {}: FAILED: {} events read, {} checkpoints verified\n", report.site, report.events, report.checkpoints_verified));
    if let Some(p) = &report.first_problem {
        out.push_str(&format!("  first problem: {} at seq {}: {}\n", kind_name(p.kind), p.seq, p.message));
        out.push_str(&format!("  {} rows do not match their leaf hash or position\n", report.rows_not_matching));
    }
    for c in &report.checkpoints_failed {
        out.push_str(&format!("  checkpoint {} (tree size {}, signed {}) does not verify: {}\n", c.id, c.tree_size, c.signed_at, c.reason));
    }
    for n in &report.notices_failed {
        out.push_str(&format!("  notice {}: {}\n", n.notice, n.reason));
    }
    out
}

fn kind_name(kind: super::verify::ProblemKind) -> &'static str {
    use super::verify::ProblemKind::*;
    match kind {
        Edited => "edited",
        Deleted => "deleted",
        Inserted => "inserted",
        Reordered => "reordered",
    }
}

pub async fn run(command: LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Verify { store, site, public_key, json } => {
            let db = crate::cli::open_existing(&store).await?;
            let key = match public_key {
                Some(k) => parse_public_key(&k).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?,
                None => store.keyring()?.verifying_key(),
            };
            let mut failed = Vec::new();
            let mut reports = Vec::new();
            for site in sites(&db, site.as_deref()).await? {
                let report = verify_site(&db, &site, &key).await?;
                if !report.ok {
                    failed.push(report.site.clone());
                }
                if !json {
                    print!("{}", describe(&report));
                }
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            if !failed.is_empty() {
                bail!("the ledger of {} does not verify (see above)", failed.join(", "));
            }
        }
        LedgerCommand::Checkpoint { store, site } => {
            let db = crate::cli::open_existing(&store).await?;
            let keys = store.keyring()?;
            let ledger = Ledger::new();
            for site in sites(&db, site.as_deref()).await? {
                let checkpoint = ledger.sign_checkpoint(&db, &keys, &site).await?;
                eprintln!("Signed checkpoint {} of site {} at tree size {}:", checkpoint.id, site.key, checkpoint.tree_size);
                print!("{}", checkpoint.note);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a consent receipt (the JSON of GET /v1/consents/{id}/receipt) offline: the
    /// event gives its leaf hash, the proof leads to the signed checkpoint, the checkpoint is
    /// signed by the public key. Exits non-zero, naming what failed, when it does not hold.
    Verify {
        /// The receipt file.
        file: std::path::PathBuf,
        /// The ledger's public key as published by GET /v1/ledger/public-key (verifier key,
        /// hex or base64), or a file holding it.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Erase a person (GDPR Art. 17): destroy the keys of their number's records (and of the
    /// web consents confirmed to it), and record an `erased` event; the log still verifies.
    Erase {
        #[command(flatten)]
        store: StoreArgs,
        /// The person's number, international (+39 333 1234567) or national with --region.
        phone: String,
        /// Only at this site (its public key); default: every site.
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        region: Option<String>,
    },
}

pub fn run_receipt(command: ReceiptCommand) -> anyhow::Result<()> {
    let ReceiptCommand::Verify { file, public_key } = command;
    let key_text = match std::fs::read_to_string(&public_key) {
        Ok(text) => text,
        Err(_) => public_key.clone(),
    };
    let key = parse_public_key(&key_text).map_err(|e| anyhow::anyhow!("--public-key: {e}"))?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading the receipt {}", file.display()))?;
    let receipt: crate::receipt::Receipt =
        serde_json::from_str(&text).with_context(|| format!("{} is not a Cornetta consent receipt", file.display()))?;
    match receipt.verify(&key) {
        Ok(v) => {
            println!(
                "OK: event {} ({}) is entry {} of the log of site {}, included in the checkpoint of tree size {} signed at {}",
                v.event, receipt.action, v.leaf_index, v.site, v.checkpoint.size, v.checkpoint.time
            );
            Ok(())
        }
        Err(err) => bail!("the receipt {} does not verify: {err}", file.display()),
    }
}

pub async fn run_subject(command: SubjectCommand) -> anyhow::Result<()> {
    let SubjectCommand::Erase { store, phone, site, region } = command;
    let region = region.as_deref().map(cornetta_shared::Region::parse).transpose().map_err(|e| anyhow::anyhow!("--region: {e}"))?;
    let phone = cornetta_shared::PhoneNumber::parse(&phone, region).map_err(|e| anyhow::anyhow!("PHONE: {e}"))?;
    let db = crate::cli::open_existing(&store).await?;
    let keys = store.keyring()?;
    let site = match site {
        Some(key) => sites(&db, Some(&key)).await?.pop(),
        None => None,
    };
    let erasure = crate::erasure::erase_phone(&db, &keys, &phone, site.as_ref(), "cli").await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if erasure.subjects_erased.is_empty() && erasure.events.is_empty() {
        bail!("there are no records of {phone:?} to erase{}", site.map(|s| format!(" at site {}", s.key)).unwrap_or_default());
    }
    println!("Erased {} subject key(s); recorded {} erased event(s):", erasure.subjects_erased.len(), erasure.events.len());
    for event in &erasure.events {
        println!("{}", event.id);
    }
    Ok(())
}

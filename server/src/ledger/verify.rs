//! Ledger verification: recompute every leaf hash of a site's log from the stored rows,
//! rebuild the Merkle tree, check every signed checkpoint against it, and name the first
//! event whose stored content no longer matches.
//!
//! What can be named, and how:
//! - an edited field: the row's recomputed leaf hash differs from its stored one;
//! - a deleted row: a gap in `seq` (or, when later rows were renumbered to close the gap,
//!   rows whose content is that of the next position);
//! - an inserted row: a second row claiming a position, or a row followed by an event
//!   whose leaf is that of the position before (the log was shifted to make room);
//! - a reordered row: a row whose leaf hash belongs to another position.
//!
//! Every leaf commits to its site and position (`seq`), so moving a row is always a
//! content change. An attacker who also rewrites the stored leaf hashes makes rows match
//! again; the signed checkpoints then fail from the first one after the change, which
//! bounds where it is (the report says between which tree sizes).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, origin_for};
use super::merkle::{Frontier, Hash};
use crate::store::{DynStore, RawEvent, Site, StoreResult, StoredCheckpoint};

/// How far from its position verification looks for the position a moved row came from.
const MOVE_WINDOW: u64 = 64;

/// What happened to the first event that no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Edited,
    Deleted,
    Inserted,
    Reordered,
}

/// The first problem in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The position (`seq`) where the log stops matching.
    pub seq: u64,
    /// The event named: the edited, inserted or moved row, or for a deletion the row now
    /// standing where the deleted one was.
    pub event: Option<String>,
    pub message: String,
}

/// A checkpoint that no longer verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFailure {
    pub id: String,
    pub tree_size: u64,
    pub signed_at: String,
    pub reason: String,
}

/// A notice whose stored text no longer has the hash events recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeFailure {
    pub notice: String,
    pub reason: String,
}

/// The outcome of verifying one site's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteReport {
    pub site: String,
    pub ok: bool,
    /// Rows read.
    pub events: u64,
    /// Root (hex) of the tree recomputed from the stored content.
    pub root: String,
    pub first_problem: Option<Problem>,
    /// Rows that did not match (the first one is described above).
    pub rows_not_matching: u64,
    pub checkpoints_verified: u64,
    pub checkpoints_failed: Vec<CheckpointFailure>,
    pub notices_failed: Vec<NoticeFailure>,
    pub elapsed_ms: u64,
}

/// What was wrong with one row, before the neighbours tell what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RowIssue {
    /// Claims a position already taken.
    Duplicate { seq: i64 },
    /// Stands after a gap.
    Gap { seq: i64 },
    /// Content matches no position near its own.
    Edited,
    /// Content is that of another position.
    MovedFrom(u64),
}

#[derive(Debug, Clone)]
struct Flagged {
    position: u64,
    id: String,
    issue: RowIssue,
    /// The row before it, if it matched.
    previous_ok: Option<String>,
}

fn leaf_at(row: &RawEvent, seq: u64) -> Hash {
    row.leaf_fields(seq).leaf_hash()
}

fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok().map(|()| out)
}

/// The position whose leaf hash `stored` is for this row, searching near `position`.
fn origin_of(row: &RawEvent, stored: &Hash, position: u64, window: u64) -> Option<u64> {
    (1..=window).flat_map(|d| [position.checked_add(d), position.checked_sub(d)]).flatten().find(|q| leaf_at(row, *q) == *stored)
}

/// Verifies every site.
pub async fn verify_all(store: &DynStore, key: &VerifyingKey) -> StoreResult<Vec<SiteReport>> {
    let mut reports = Vec::new();
    for site in store.list_sites().await? {
        reports.push(verify_site(store, &site, key).await?);
    }
    Ok(reports)
}

/// Verifies one site's log: rows, tree, checkpoints and notices.
pub async fn verify_site(store: &DynStore, site: &Site, key: &VerifyingKey) -> StoreResult<SiteReport> {
    let started = Instant::now();
    let mut checkpoints_failed = Vec::new();
    // (size, root, id, signed_at) of the checkpoints whose signature holds, by size.
    let mut expected: Vec<(u64, Hash, StoredCheckpoint)> = Vec::new();
    for c in store.checkpoints(&site.id, None, u32::MAX).await? {
        match check_note(&c, site, key) {
            Ok(cp) => expected.push((cp.size, cp.root, c)),
            Err(reason) => checkpoints_failed.push(failure(&c, reason)),
        }
    }
    expected.sort_by_key(|(size, _, c)| (*size, c.id.clone()));
    let mut next_checkpoint = 0;
    let mut checkpoints_verified = 0;
    let mut frontier = Frontier::new();
    let mut check_checkpoints = |frontier: &Frontier, failed: &mut Vec<CheckpointFailure>, last_good: &mut Option<u64>| {
        while let Some((size, root, c)) = expected.get(next_checkpoint) {
            if *size != frontier.size() {
                break;
            }
            if frontier.root() == *root {
                checkpoints_verified += 1;
                *last_good = Some(*size);
            } else {
                let since = last_good.map_or("the start of the log".to_owned(), |s| format!("tree size {s} (the last checkpoint that verifies)"));
                failed.push(failure(c, format!("the log's root at tree size {size} is not the signed one: events changed between {since} and {size}")));
            }
            next_checkpoint += 1;
        }
    };
    let mut last_good = None;
    check_checkpoints(&frontier, &mut checkpoints_failed, &mut last_good);

    let mut first: Option<Flagged> = None;
    let mut after_first: Option<Flagged> = None;
    let mut rows_not_matching = 0u64;
    let mut previous_ok: Option<String> = None;
    let mut notices: HashMap<String, HashSet<Option<String>>> = HashMap::new();
    let mut last_notice: Option<(String, Option<String>)> = None;

    let mut rows = store.raw_events(&site.id);
    while let Some(batch) = rows.next().await {
        for row in batch? {
            let position = frontier.size();
            let stored = parse_hash(&row.leaf_hash);
            let recomputed = leaf_at(&row, position);
            let issue = if row.seq < position as i64 {
                Some(RowIssue::Duplicate { seq: row.seq })
            } else if row.seq > position as i64 {
                Some(RowIssue::Gap { seq: row.seq })
            } else if stored == Some(recomputed) {
                None
            } else {
                // Only the first problem row and the one after it are explained.
                let explain = first.is_none() || (after_first.is_none() && first.as_ref().is_some_and(|f| f.position + 1 == position));
                let window = if first.is_none() { MOVE_WINDOW } else { 1 };
                match stored.filter(|_| explain).and_then(|h| origin_of(&row, &h, position, window)) {
                    Some(q) => Some(RowIssue::MovedFrom(q)),
                    None => Some(RowIssue::Edited),
                }
            };
            match issue {
                None => previous_ok = Some(row.id.clone()),
                Some(issue) => {
                    rows_not_matching += 1;
                    let flagged = Flagged { position, id: row.id.clone(), issue, previous_ok: previous_ok.take() };
                    if first.is_none() {
                        first = Some(flagged);
                    } else if after_first.is_none() && first.as_ref().is_some_and(|f| f.position + 1 == position) {
                        after_first = Some(flagged);
                    }
                }
            }
            if let Some(notice) = &row.notice_id {
                let same = last_notice.as_ref().is_some_and(|(n, h)| n == notice && *h == row.notice_sha256);
                if !same {
                    notices.entry(notice.clone()).or_default().insert(row.notice_sha256.clone());
                    last_notice = Some((notice.clone(), row.notice_sha256.clone()));
                }
            }
            frontier.push(recomputed);
            check_checkpoints(&frontier, &mut checkpoints_failed, &mut last_good);
        }
    }
    for (size, _, c) in &expected[next_checkpoint..] {
        checkpoints_failed.push(failure(c, format!("the checkpoint covers {size} events but the log has only {}: events were deleted", frontier.size())));
    }
    let notices_failed = check_notices(store, notices).await?;
    let first_problem = first.map(|f| explain(f, after_first));
    Ok(SiteReport {
        site: site.key.to_string(),
        ok: first_problem.is_none() && checkpoints_failed.is_empty() && notices_failed.is_empty(),
        events: frontier.size(),
        root: hex::encode(frontier.root()),
        first_problem,
        rows_not_matching,
        checkpoints_verified,
        checkpoints_failed,
        notices_failed,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn failure(c: &StoredCheckpoint, reason: String) -> CheckpointFailure {
    CheckpointFailure { id: c.id.clone(), tree_size: c.tree_size, signed_at: c.signed_at.to_string(), reason }
}

/// A stored checkpoint's note, signature-checked and matched against its columns.
fn check_note(c: &StoredCheckpoint, site: &Site, key: &VerifyingKey) -> Result<Checkpoint, String> {
    let cp = Checkpoint::open(&c.note, key).map_err(|e| e.to_string())?;
    if cp.origin != origin_for(site.key.as_str()) {
        return Err(format!("the checkpoint is for log {:?}, not this site's", cp.origin));
    }
    if cp.size != c.tree_size || cp.root != c.root_hash {
        return Err("the stored tree size or root differs from what the signed note says".into());
    }
    Ok(cp)
}

/// Turns the first flagged row (and the one after it) into the problem reported.
fn explain(f: Flagged, next: Option<Flagged>) -> Problem {
    let p = f.position;
    let id = f.id.clone();
    match f.issue {
        RowIssue::Duplicate { seq } => Problem {
            kind: ProblemKind::Inserted,
            seq: p,
            event: Some(id.clone()),
            message: format!("event {id} claims seq {seq}, which another event already has: it was inserted"),
        },
        RowIssue::Gap { seq } => Problem {
            kind: ProblemKind::Deleted,
            seq: p,
            event: Some(id.clone()),
            message: if seq as u64 == p + 1 {
                format!("there is no event at seq {p}: it was deleted (the next stored event is {id} at seq {seq})")
            } else {
                format!("there are no events at seq {p} to {}: they were deleted (the next stored event is {id} at seq {seq})", seq - 1)
            },
        },
        RowIssue::Edited => Problem {
            kind: ProblemKind::Edited,
            seq: p,
            event: Some(id.clone()),
            message: format!("the stored content of event {id} (seq {p}) no longer matches its leaf hash: a field was changed"),
        },
        RowIssue::MovedFrom(q) if q + 1 == p && f.previous_ok.is_some() => {
            let inserted = f.previous_ok.unwrap_or_default();
            Problem {
                kind: ProblemKind::Inserted,
                seq: p - 1,
                event: Some(inserted.clone()),
                message: format!("event {inserted} at seq {} was inserted: the event after it, {id}, belongs at seq {q}", p - 1),
            }
        }
        RowIssue::MovedFrom(q) if q == p + 1 => match next {
            Some(Flagged { issue: RowIssue::MovedFrom(back), id: other, .. }) if back == p => Problem {
                kind: ProblemKind::Reordered,
                seq: p,
                event: Some(id.clone()),
                message: format!("events {id} and {other} swapped places: {id} belongs at seq {q}"),
            },
            _ => Problem {
                kind: ProblemKind::Deleted,
                seq: p,
                event: Some(id.clone()),
                message: format!("the event at seq {p} was deleted and the later ones renumbered: {id}, now at seq {p}, belongs at seq {q}"),
            },
        },
        RowIssue::MovedFrom(q) => Problem {
            kind: ProblemKind::Reordered,
            seq: p,
            event: Some(id.clone()),
            message: format!("event {id} is stored at seq {p} but belongs at seq {q}: the log was reordered"),
        },
    }
}

async fn check_notices(store: &DynStore, notices: HashMap<String, HashSet<Option<String>>>) -> StoreResult<Vec<NoticeFailure>> {
    let mut failed = Vec::new();
    let mut ids: Vec<_> = notices.into_iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, hashes) in ids {
        let notice = match cornetta_shared::NoticeId::parse(&id) {
            Ok(nid) => store.notice(&nid).await?,
            Err(_) => None,
        };
        let Some(notice) = notice else {
            failed.push(NoticeFailure { notice: id, reason: "events name this notice but it is not stored".into() });
            continue;
        };
        let actual = crate::notice::sha256_hex(&notice.canonical_text);
        if actual != notice.sha256 {
            failed.push(NoticeFailure { notice: id, reason: "the stored notice text no longer has the stored SHA-256: the text was changed".into() });
        } else if hashes.iter().any(|h| h.as_deref() != Some(actual.as_str())) {
            failed.push(NoticeFailure { notice: id, reason: "events recorded another SHA-256 for this notice than its stored text has".into() });
        }
    }
    Ok(failed)
}

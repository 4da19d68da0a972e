//! The ledger service: each site's Merkle tree as the server sees it (roots, inclusion and
//! consistency proofs over the stored leaf hashes) and its signed checkpoints.
//!
//! The tree of full 256-leaf blocks is cached per site and grows as the log does; it is
//! refreshed from the store on every use, so several server processes on one PostgreSQL
//! database each see every event. Below a block, proofs read the leaf hashes they need
//! from the store (one indexed range query per block).

use std::collections::HashMap;

use tokio::sync::Mutex;

use super::checkpoint::Checkpoint;
use super::merkle::{self, BLOCK_LEAVES, BlockTree, Hash, TreeView};
use crate::keys::Keyring;
use crate::store::{DynStore, Site, StoreError, StoreResult, StoredCheckpoint};

/// Blocks read per query while catching up with a grown log.
const BLOCKS_PER_READ: u64 = 64;

/// Per-site cached trees.
#[derive(Debug, Default)]
pub struct Ledger {
    trees: Mutex<HashMap<String, BlockTree>>,
}

/// A proof and the tree it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub tree_size: u64,
    pub root: Hash,
    pub hashes: Vec<Hash>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// The hashes of the given leaf ranges in the site's tree of `size` leaves.
    async fn hashes(&self, store: &DynStore, site_id: &str, size: u64, ranges: &[(u64, u64)]) -> StoreResult<Vec<Hash>> {
        let mut trees = self.trees.lock().await;
        let tree = trees.entry(site_id.to_owned()).or_default();
        // Catch up with full blocks up to `size`.
        let full = size / BLOCK_LEAVES;
        while tree.blocks() < full {
            let from = tree.covered();
            let blocks = (full - tree.blocks()).min(BLOCKS_PER_READ);
            let leaves = store.leaf_hashes(site_id, from, from + blocks * BLOCK_LEAVES).await?;
            for chunk in leaves.chunks(BLOCK_LEAVES as usize) {
                tree.push_block(chunk);
            }
        }
        let mut needed = Vec::new();
        for &(a, b) in ranges {
            TreeView::blocks_needed(tree, a, b, &mut needed);
        }
        let mut blocks = HashMap::new();
        for block in needed {
            let from = block * BLOCK_LEAVES;
            let to = (from + BLOCK_LEAVES).min(size);
            blocks.insert(block, store.leaf_hashes(site_id, from, to).await?);
        }
        let view = TreeView { tree, size, blocks: &blocks };
        ranges
            .iter()
            .map(|&(a, b)| view.range_hash(a, b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// The root of the site's tree at `size` (the empty tree's root for 0).
    pub async fn root(&self, store: &DynStore, site_id: &str, size: u64) -> StoreResult<Hash> {
        if size == 0 {
            return Ok(merkle::empty_root());
        }
        Ok(self.hashes(store, site_id, size, &[(0, size)]).await?[0])
    }

    /// The inclusion proof of position `index` in the tree of `size` leaves.
    pub async fn inclusion(&self, store: &DynStore, site_id: &str, index: u64, size: u64) -> StoreResult<Proof> {
        check_size(store, site_id, size).await?;
        if index >= size {
            return Err(StoreError::Invalid(format!("position {index} is not in a tree of {size} events")));
        }
        let mut ranges = merkle::inclusion_ranges(size, index);
        ranges.push((0, size));
        let mut hashes = self.hashes(store, site_id, size, &ranges).await?;
        let root = hashes.pop().expect("the root was asked for last");
        Ok(Proof { tree_size: size, root, hashes })
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    pub async fn consistency(&self, store: &DynStore, site_id: &str, old: u64, new: u64) -> StoreResult<Proof> {
        check_size(store, site_id, new).await?;
        if old == 0 || old > new {
            return Err(StoreError::Invalid(format!("a consistency proof needs 0 < from ≤ to (from {old}, to {new})")));
        }
        let mut ranges = merkle::consistency_ranges(old, new);
        ranges.push((0, new));
        let mut hashes = self.hashes(store, site_id, new, &ranges).await?;
        let root = hashes.pop().expect("the root was asked for last");
        Ok(Proof { tree_size: new, root, hashes })
    }

    /// Signs and stores a checkpoint of the site's log as it is now.
    pub async fn sign_checkpoint(&self, store: &DynStore, keys: &Keyring, site: &Site) -> StoreResult<StoredCheckpoint> {
        let size = store.tree_size(&site.id).await?;
        let root = self.root(store, &site.id, size).await?;
        let signed_at = crate::consents::now();
        let note = Checkpoint::new(site.key.as_str(), size, root, signed_at).sign(keys.signing_key());
        let checkpoint = StoredCheckpoint {
            id: format!("ckp_{}", uuid::Uuid::now_v7().simple()),
            site_id: site.id.clone(),
            tree_size: size,
            root_hash: root,
            signed_at,
            note,
        };
        store.add_checkpoint(checkpoint.clone()).await?;
        tracing::info!(site = %site.key, tree_size = size, "signed a ledger checkpoint");
        Ok(checkpoint)
    }

    /// The newest checkpoint if it includes position `seq`, else a new one signed now.
    pub async fn checkpoint_covering(&self, store: &DynStore, keys: &Keyring, site: &Site, seq: u64) -> StoreResult<StoredCheckpoint> {
        if let Some(latest) = store.checkpoints(&site.id, None, 1).await?.into_iter().next()
            && latest.tree_size > seq {
                return Ok(latest);
            }
        self.sign_checkpoint(store, keys, site).await
    }

    /// Signs a checkpoint for every site whose log grew since its newest checkpoint; the
    /// scheduled task calls this. Returns how many were signed.
    pub async fn checkpoint_grown_sites(&self, store: &DynStore, keys: &Keyring) -> StoreResult<usize> {
        let mut signed = 0;
        for site in store.list_sites().await? {
            let size = store.tree_size(&site.id).await?;
            let latest = store.checkpoints(&site.id, None, 1).await?.into_iter().next();
            if size > 0 && latest.is_none_or(|c| c.tree_size < size) {
                self.sign_checkpoint(store, keys, &site).await?;
                signed += 1;
            }
        }
        Ok(signed)
    }
}

async fn check_size(store: &DynStore, site_id: &str, size: u64) -> StoreResult<()> {
    let current = store.tree_size(site_id).await?;
    if size > current {
        return Err(StoreError::Invalid(format!("the log has {current} events; a tree of {size} does not exist yet")));
    }
    Ok(())
}

/// Runs the checkpoint schedule until the process ends: every `interval`, a checkpoint for
/// each site whose log grew.
pub async fn run_schedule(ledger: std::sync::Arc<Ledger>, store: DynStore, keys: std::sync::Arc<Keyring>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(err) = ledger.checkpoint_grown_sites(&store, &keys).await {
            tracing::error!(error = %err, "the scheduled ledger checkpoint failed; retrying at the next interval");
        }
    }
}

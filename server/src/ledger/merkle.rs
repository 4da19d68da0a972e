//! The Merkle tree of a site's log (RFC 6962 §2.1, RFC 9162 §2.1): roots over leaf hashes,
//! and the node hashes that inclusion and consistency proofs are made of.
//!
//! Which nodes a proof contains is decided by the `ct-merkle` crate
//! (`indices_for_inclusion_proof`, `indices_for_consistency_proof`, which name nodes by
//! their index in an RFC 9420 array-based tree); proofs are verified with its `RootHash`
//! methods. What this module adds is where the node hashes come from: a log of a million
//! events does not fit a `ct_merkle::mem_backed_tree::MemoryBackedTree` (it keeps every
//! leaf's data), so we keep the hashes of full 256-leaf blocks and above ([`BlockTree`]) and
//! read the few leaf hashes below that from the store when a proof needs them.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 node or leaf hash.
pub type Hash = [u8; 32];

/// log2 of the leaves in a block: the smallest subtree [`BlockTree`] keeps.
pub const BLOCK_LEVEL: u32 = 8;
/// Leaves in a block.
pub const BLOCK_LEAVES: u64 = 1 << BLOCK_LEVEL;

/// RFC 6962 §2.1: the hash of an empty tree is the hash of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// RFC 6962 §2.1: `MTH({d}) = SHA-256(0x00 || d)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 §2.1: an interior node is `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The Merkle Tree Hash of a list of leaf hashes, by RFC 6962's recursive definition:
/// split at the largest power of two smaller than the length.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// A streaming root: push leaf hashes in order, ask for the root of what was pushed so far.
/// Keeps one hash per set bit of the size (the "compact range" of RFC 9162 terms), so a
/// million leaves cost 20 hashes of memory and one node hash per leaf on average.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees the leaves so far split into, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit of the size");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// RFC 6962 MTH of the leaves pushed so far: the peaks folded from the right.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else { return empty_root() };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The hashes of every full, aligned block of [`BLOCK_LEAVES`] leaves of a log and of every
/// full subtree above them. Subtrees never change once full (the log is append-only), so
/// this only grows.
#[derive(Debug, Clone, Default)]
pub struct BlockTree {
    /// `levels[k][i]`: the root of leaves `i·2^(8+k) .. (i+1)·2^(8+k)`.
    levels: Vec<Vec<Hash>>,
}

impl BlockTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Full blocks known.
    pub fn blocks(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Leaves covered by the full blocks known.
    pub fn covered(&self) -> u64 {
        self.blocks() * BLOCK_LEAVES
    }

    /// Appends the next full block, given its 256 leaf hashes.
    pub fn push_block(&mut self, leaves: &[Hash]) {
        assert_eq!(leaves.len() as u64, BLOCK_LEAVES, "a block has exactly {BLOCK_LEAVES} leaves");
        let mut hash = root_of(leaves);
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let len = self.levels[level].len();
            if len % 2 == 1 {
                break;
            }
            hash = node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1]);
            level += 1;
        }
    }

    /// The cached root of the aligned subtree `start .. start + 2^level` (level ≥ 8).
    fn full_subtree(&self, start: u64, level: u32) -> Option<Hash> {
        let k = level.checked_sub(BLOCK_LEVEL)? as usize;
        self.levels.get(k)?.get(usize::try_from(start >> level).ok()?).copied()
    }
}

/// A block of leaf hashes that a computation needs and was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("leaf block {0} is needed and was not loaded")]
pub struct MissingBlock(pub u64);

/// A view of a log of `size` leaves: the cached full subtrees plus whichever blocks of leaf
/// hashes were loaded for this computation (block number → its leaf hashes, the last one
/// possibly partial).
#[derive(Debug)]
pub struct TreeView<'a> {
    pub tree: &'a BlockTree,
    pub size: u64,
    pub blocks: &'a HashMap<u64, Vec<Hash>>,
}

impl TreeView<'_> {
    /// The hash of the RFC 6962 subtree over leaves `start..end`.
    pub fn range_hash(&self, start: u64, end: u64) -> Result<Hash, MissingBlock> {
        debug_assert!(start < end && end <= self.size);
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) && n >= BLOCK_LEAVES
            && let Some(hash) = self.tree.full_subtree(start, n.trailing_zeros()) {
                return Ok(hash);
            }
        let block = start / BLOCK_LEAVES;
        if block == (end - 1) / BLOCK_LEAVES {
            let leaves = self.blocks.get(&block).ok_or(MissingBlock(block))?;
            let from = (start % BLOCK_LEAVES) as usize;
            let to = from + n as usize;
            let slice = leaves.get(from..to).ok_or(MissingBlock(block))?;
            return Ok(root_of(slice));
        }
        let k = split_point(n);
        Ok(node_hash(&self.range_hash(start, start + k)?, &self.range_hash(start + k, end)?))
    }

    /// The blocks [`range_hash`](Self::range_hash) of `start..end` will read.
    pub fn blocks_needed(tree: &BlockTree, start: u64, end: u64, out: &mut Vec<u64>) {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) && n >= BLOCK_LEAVES && tree.full_subtree(start, n.trailing_zeros()).is_some() {
            return;
        }
        let block = start / BLOCK_LEAVES;
        if block == (end - 1) / BLOCK_LEAVES {
            if !out.contains(&block) {
                out.push(block);
            }
            return;
        }
        let k = split_point(n);
        Self::blocks_needed(tree, start, start + k, out);
        Self::blocks_needed(tree, start + k, end, out);
    }

    pub fn root(&self) -> Result<Hash, MissingBlock> {
        if self.size == 0 { Ok(empty_root()) } else { self.range_hash(0, self.size) }
    }
}

/// The leaf range an array-tree node index covers in a tree of `size` leaves (RFC 9420
/// §C array-based trees, as `ct-merkle` numbers nodes: leaf `i` is node `2i`, a node's level
/// is its number of trailing one bits). In a left-balanced tree an existing node at level
/// `k` is exactly the RFC 6962 subtree over its `2^k` leaves cut at `size`.
pub fn node_range(index: u64, size: u64) -> (u64, u64) {
    let level = index.trailing_ones();
    let start = (index >> (level + 1)) << level;
    (start, (start + (1u64 << level)).min(size))
}

/// The leaf ranges whose hashes form the inclusion proof of leaf `index` in a tree of
/// `size` leaves, in proof order (RFC 9162 §2.1.3.1).
pub fn inclusion_ranges(size: u64, index: u64) -> Vec<(u64, u64)> {
    ct_merkle::indices_for_inclusion_proof(size, index).into_iter().map(|i| node_range(i, size)).collect()
}

/// The leaf ranges (in the tree of `new_size` leaves) whose hashes form the consistency
/// proof from `old_size` to `new_size` (RFC 9162 §2.1.4.1). `0 < old_size ≤ new_size`.
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<(u64, u64)> {
    ct_merkle::indices_for_consistency_proof(old_size, new_size - old_size).into_iter().map(|i| node_range(i, new_size)).collect()
}

/// Verifies that `leaf_data` (whose leaf hash is `SHA-256(0x00 || leaf_data)`) is leaf
/// `index` of the tree with `root` and `size`, given the proof hashes.
pub fn verify_inclusion(leaf_data: &[u8], index: u64, size: u64, root: &Hash, proof: &[Hash]) -> Result<(), ct_merkle::InclusionVerifError> {
    let root = ct_merkle::RootHash::<Sha256>::new((*root).into(), size);
    let proof = ct_merkle::InclusionProof::<Sha256>::from_digests(proof.iter().map(|h| (*h).into()).collect::<Vec<_>>().iter());
    root.verify_inclusion(&leaf_data, index, &proof)
}

/// Verifies that the tree `(old_size, old_root)` is a prefix of `(new_size, new_root)`.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ct_merkle::ConsistencyVerifError> {
    let old = ct_merkle::RootHash::<Sha256>::new((*old_root).into(), old_size);
    let new = ct_merkle::RootHash::<Sha256>::new((*new_root).into(), new_size);
    let proof = ct_merkle::ConsistencyProof::<Sha256>::from_digests(proof.iter().map(|h| (*h).into()).collect::<Vec<_>>().iter());
    new.verify_consistency(&old, &proof)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ct_merkle::mem_backed_tree::MemoryBackedTree;

    use super::*;

    /// The leaves of transparency-dev/merkle's reference tree (`testonly/reference_test.go`;
    /// the same as `ct-merkle`'s known-answer tests).
    const LEAVES: &[&str] = &["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    fn b64(s: &str) -> Hash {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap().try_into().unwrap()
    }

    fn reference_leaves() -> Vec<Hash> {
        LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).unwrap())).collect()
    }

    /// A view with every block loaded, so any range can be computed.
    fn full_view(leaves: &[Hash]) -> (BlockTree, HashMap<u64, Vec<Hash>>) {
        let mut tree = BlockTree::new();
        let mut blocks = HashMap::new();
        for (i, chunk) in leaves.chunks(BLOCK_LEAVES as usize).enumerate() {
            if chunk.len() as u64 == BLOCK_LEAVES {
                tree.push_block(chunk);
            }
            blocks.insert(i as u64, chunk.to_vec());
        }
        (tree, blocks)
    }

    fn proof(leaves: &[Hash], ranges: Vec<(u64, u64)>) -> Vec<Hash> {
        let (tree, blocks) = full_view(leaves);
        let view = TreeView { tree: &tree, size: leaves.len() as u64, blocks: &blocks };
        ranges.into_iter().map(|(a, b)| view.range_hash(a, b).unwrap()).collect()
    }

    // Vectors from transparency-dev/merkle testdata/inclusion/*/happy-path.json and
    // testdata/consistency/*/happy-path.json (base64, as published).
    #[test]
    fn roots_match_the_transparency_dev_reference_tree() {
        let leaves = reference_leaves();
        let roots = [
            (1, "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="),
            (2, "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="),
            (3, "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc="),
            (5, "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ="),
            (6, "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8="),
            (7, "3bib5AOAnjJXUNPSY814kpwpQreUKjS3fhIslZSnTIw="),
            (8, "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="),
        ];
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        for (size, root) in roots {
            assert_eq!(root_of(&leaves[..size]), b64(root), "root of {size}");
            let mut f = Frontier::new();
            leaves[..size].iter().for_each(|l| f.push(*l));
            assert_eq!(f.root(), b64(root), "streamed root of {size}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_transparency_dev_vectors() {
        let leaves = reference_leaves();
        let vectors: [(u64, usize, &[&str]); 5] = [
            (0, 1, &[]),
            (0, 8, &["lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=", "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=", "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="]),
            (5, 8, &["vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=", "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="]),
            (2, 3, &["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="]),
            (1, 5, &["bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=", "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=", "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="]),
        ];
        for (index, size, want) in vectors {
            let want: Vec<Hash> = want.iter().map(|h| b64(h)).collect();
            let got = proof(&leaves[..size], inclusion_ranges(size as u64, index));
            assert_eq!(got, want, "inclusion of {index} in {size}");
            let root = root_of(&leaves[..size]);
            verify_inclusion(&hex::decode(LEAVES[index as usize]).unwrap(), index, size as u64, &root, &got).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_the_transparency_dev_vectors() {
        let leaves = reference_leaves();
        let vectors: [(usize, usize, &[&str]); 5] = [
            (1, 1, &[]),
            (1, 8, &["lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=", "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=", "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="]),
            (6, 8, &["DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=", "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=", "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="]),
            (2, 5, &["Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=", "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="]),
            (6, 7, &["DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=", "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=", "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc="]),
        ];
        for (old, new, want) in vectors {
            let want: Vec<Hash> = want.iter().map(|h| b64(h)).collect();
            let got = proof(&leaves[..new], consistency_ranges(old as u64, new as u64));
            assert_eq!(got, want, "consistency {old} → {new}");
            verify_consistency(old as u64, &root_of(&leaves[..old]), new as u64, &root_of(&leaves[..new]), &got).unwrap();
        }
    }

    /// Random leaves across block boundaries: every proof equals the one `ct-merkle`'s
    /// in-memory tree makes, and verifies.
    #[test]
    fn proofs_from_cached_blocks_equal_ct_merkles_in_memory_tree() {
        let data: Vec<Vec<u8>> = (0..1100u32).map(|i| i.to_be_bytes().repeat((i % 5) as usize + 1)).collect();
        let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut reference = MemoryBackedTree::<Sha256, Vec<u8>>::new();
        let sizes = [1u64, 2, 3, 255, 256, 257, 511, 512, 513, 700, 1024, 1100];
        let mut pushed = 0;
        for size in sizes {
            while pushed < size {
                reference.push(data[pushed as usize].clone());
                pushed += 1;
            }
            let (tree, blocks) = full_view(&leaves[..size as usize]);
            let view = TreeView { tree: &tree, size, blocks: &blocks };
            let root = view.root().unwrap();
            assert_eq!(&root[..], &reference.root().as_bytes()[..], "root of {size}");
            for index in [0, size / 3, size / 2, size - 1] {
                let ours: Vec<u8> = inclusion_ranges(size, index).into_iter().flat_map(|(a, b)| view.range_hash(a, b).unwrap()).collect();
                assert_eq!(ours, reference.prove_inclusion(index as usize).as_bytes(), "inclusion {index} of {size}");
            }
            for old in [1, size / 2, size - 1].into_iter().filter(|o| *o > 0) {
                let ours: Vec<u8> = consistency_ranges(old, size).into_iter().flat_map(|(a, b)| view.range_hash(a, b).unwrap()).collect();
                assert_eq!(ours, reference.prove_consistency((size - old) as usize).as_bytes(), "consistency {old} → {size}");
            }
        }
    }

    #[test]
    fn a_view_reads_only_the_blocks_it_asks_for() {
        let leaves: Vec<Hash> = (0..1000u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let (tree, all) = full_view(&leaves);
        let size = 1000;
        let mut needed = Vec::new();
        for (a, b) in inclusion_ranges(size, 300) {
            TreeView::blocks_needed(&tree, a, b, &mut needed);
        }
        needed.sort_unstable();
        // The leaf's own block and the partial last block; full blocks come from the cache.
        assert_eq!(needed, vec![1, 3]);
        let some: HashMap<u64, Vec<Hash>> = needed.iter().map(|b| (*b, all[b].clone())).collect();
        let view = TreeView { tree: &tree, size, blocks: &some };
        let proof: Vec<Hash> = inclusion_ranges(size, 300).into_iter().map(|(a, b)| view.range_hash(a, b).unwrap()).collect();
        verify_inclusion(&300u32.to_be_bytes(), 300, size, &root_of(&leaves), &proof).unwrap();
        let none = HashMap::new();
        let bare = TreeView { tree: &tree, size, blocks: &none };
        assert_eq!(bare.range_hash(0, 1000), Err(MissingBlock(3)));
    }
}

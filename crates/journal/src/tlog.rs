//! The Merkle tree of the transparency log of runs, as RFC 6962 (and RFC 9162) define it:
//! leaves hashed `SHA-256(0x00 ‖ leaf)`, nodes `SHA-256(0x01 ‖ left ‖ right)`, the tree of
//! `n` leaves split at the largest power of two below `n`.
//!
//! A log keeps only its perfect subtrees ([`Nodes`]: level 0 is the leaves, level `l` the
//! hash of `2^l` leaves starting at a multiple of `2^l`); appending a leaf adds it and the
//! subtrees it completes. Every hash a root or a proof needs is made of `O(log n)` of them, so
//! nothing is ever recomputed from all the leaves.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The hash of a leaf's bytes.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(leaf)
        .finalize()
        .into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The perfect subtrees of a log, as it stores them.
pub trait Nodes {
    /// The hash of the `2^level` leaves starting at leaf `index << level`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, String>;
}

/// The subtrees `compute` (a root, a proof, an append) reads, in the order it reads them,
/// found by running it over made-up hashes: which subtrees it reads depends on the sizes and
/// indexes alone, never on what they hold. A store that pays a round trip per read fetches
/// them all at once, then runs `compute` over what it fetched.
pub fn nodes_read<T>(compute: impl FnOnce(&dyn Nodes) -> Result<T, String>) -> Vec<(u32, u64)> {
    struct Reads(std::cell::RefCell<Vec<(u32, u64)>>);
    impl Nodes for Reads {
        fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
            self.0.borrow_mut().push((level, index));
            Ok([0; 32])
        }
    }
    let reads = Reads(Default::default());
    // Over made-up hashes the result means nothing; only the reads are wanted.
    let _ = compute(&reads);
    reads.0.into_inner()
}

/// A log kept in memory: the leaves a verifier holds, rebuilt into their tree.
#[derive(Debug, Default, Clone)]
pub struct MemoryLog {
    nodes: std::collections::HashMap<(u32, u64), Hash>,
    size: u64,
}

impl MemoryLog {
    /// Appends the leaf hashed `leaf`.
    pub fn append(&mut self, leaf: Hash) {
        let made = completed(self, self.size, leaf).expect("a memory log holds every subtree");
        for (level, index, hash) in made {
            self.nodes.insert((level, index), hash);
        }
        self.size += 1;
    }

    /// How many leaves it holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Every perfect subtree, by (level, index).
    pub fn nodes(&self) -> &std::collections::HashMap<(u32, u64), Hash> {
        &self.nodes
    }
}

/// Subtrees held in memory by (level, index): a whole log's, or those fetched for one
/// computation (see `nodes_read`).
impl Nodes for std::collections::HashMap<(u32, u64), Hash> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
        self.get(&(level, index))
            .copied()
            .ok_or_else(|| format!("the log has no node {level}/{index}"))
    }
}

impl Nodes for MemoryLog {
    fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
        self.nodes.node(level, index)
    }
}

/// The perfect subtrees a leaf appended at `index` with `hash` completes, as (level, index,
/// hash), the leaf first: what a log stores when it appends.
pub fn completed(
    nodes: &dyn Nodes,
    index: u64,
    hash: Hash,
) -> Result<Vec<(u32, u64, Hash)>, String> {
    let mut made = vec![(0, index, hash)];
    let (mut level, mut at, mut current) = (0, index, hash);
    while at % 2 == 1 {
        let left = nodes.node(level, at - 1)?;
        current = node_hash(&left, &current);
        level += 1;
        at /= 2;
        made.push((level, at, current));
    }
    Ok(made)
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The hash of leaves `start..end` (at least one).
fn subtree(nodes: &dyn Nodes, start: u64, end: u64) -> Result<Hash, String> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return nodes.node(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split(n);
    Ok(node_hash(
        &subtree(nodes, start, start + k)?,
        &subtree(nodes, start + k, end)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root(nodes: &dyn Nodes, size: u64) -> Result<Hash, String> {
    match size {
        0 => Ok(Sha256::digest([]).into()),
        size => subtree(nodes, 0, size),
    }
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 6962 §2.1.1).
pub fn inclusion_proof(nodes: &dyn Nodes, index: u64, size: u64) -> Result<Vec<Hash>, String> {
    if index >= size {
        return Err(format!("leaf {index} is not in a tree of {size}"));
    }
    fn path(nodes: &dyn Nodes, m: u64, start: u64, end: u64) -> Result<Vec<Hash>, String> {
        let n = end - start;
        if n == 1 {
            return Ok(Vec::new());
        }
        let k = split(n);
        let (mut proof, sibling) = match m < k {
            true => (
                path(nodes, m, start, start + k)?,
                subtree(nodes, start + k, end)?,
            ),
            false => (
                path(nodes, m - k, start + k, end)?,
                subtree(nodes, start, start + k)?,
            ),
        };
        proof.push(sibling);
        Ok(proof)
    }
    path(nodes, index, 0, size)
}

/// The proof that the tree of `new` leaves extends the tree of its first `old` (RFC 6962
/// §2.1.2).
pub fn consistency_proof(nodes: &dyn Nodes, old: u64, new: u64) -> Result<Vec<Hash>, String> {
    if old > new {
        return Err(format!("a tree of {old} cannot extend to one of {new}"));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    fn subproof(
        nodes: &dyn Nodes,
        m: u64,
        (start, end): (u64, u64),
        whole: bool,
    ) -> Result<Vec<Hash>, String> {
        let n = end - start;
        if m == n {
            return match whole {
                true => Ok(Vec::new()),
                false => Ok(vec![subtree(nodes, start, end)?]),
            };
        }
        let k = split(n);
        let (mut proof, sibling) = match m <= k {
            true => (
                subproof(nodes, m, (start, start + k), whole)?,
                subtree(nodes, start + k, end)?,
            ),
            false => (
                subproof(nodes, m - k, (start + k, end), false)?,
                subtree(nodes, start, start + k)?,
            ),
        };
        proof.push(sibling);
        Ok(proof)
    }
    subproof(nodes, old, (0, new), true)
}

/// Whether `proof` shows the leaf hashed `leaf` at `index` in the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f % 2 == 1 || f == s {
            r = node_hash(p, &r);
            while f % 2 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows the tree of `new` leaves (root `new_root`) extends the tree of its
/// first `old` (root `old_root`) (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    (old, old_root): (u64, &Hash),
    (new, new_root): (u64, &Hash),
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f % 2 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f % 2 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f % 2 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests;

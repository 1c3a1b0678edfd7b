//! The tree against RFC 6962 proof vectors published by another implementation, and against
//! an independent implementation (the `ct-merkle` crate) on trees of many sizes.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ct_merkle::CtMerkleTree;
use serde_json::Value;

use super::*;

fn vectors(kind: &str) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tlog")
        .join(kind);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(found.len() >= 4, "vectors in {}", dir.display());
    found
}

/// A base64 hash, or `None` when it is not 32 bytes (a vector's deliberately wrong value).
fn hash(value: &Value) -> Option<Hash> {
    STANDARD.decode(value.as_str()?).ok()?.try_into().ok()
}

fn proof(value: &Value) -> Option<Vec<Hash>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

#[test]
fn inclusion_vectors_verify_as_published() {
    for (name, v) in vectors("inclusion") {
        let accepted = match (hash(&v["leafHash"]), hash(&v["root"]), proof(&v["proof"])) {
            (Some(leaf), Some(root), Some(path)) => verify_inclusion(
                &leaf,
                v["leafIdx"].as_u64().unwrap(),
                v["treeSize"].as_u64().unwrap(),
                &path,
                &root,
            ),
            _ => false,
        };
        assert_eq!(accepted, !v["wantErr"].as_bool().unwrap(), "{name}");
    }
}

#[test]
fn consistency_vectors_verify_as_published() {
    for (name, v) in vectors("consistency") {
        let accepted = match (hash(&v["root1"]), hash(&v["root2"]), proof(&v["proof"])) {
            (Some(old), Some(new), Some(path)) => verify_consistency(
                (v["size1"].as_u64().unwrap(), &old),
                (v["size2"].as_u64().unwrap(), &new),
                &path,
            ),
            _ => false,
        };
        assert_eq!(accepted, !v["wantErr"].as_bool().unwrap(), "{name}");
    }
}

fn flat(proof: &[Hash]) -> Vec<u8> {
    proof.concat()
}

/// Roots and proofs of every size up to 70 (and every leaf and every older size) equal those
/// `ct-merkle` computes from all the leaves in memory, and verify.
#[test]
fn proofs_agree_with_an_independent_implementation() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut reference: CtMerkleTree<sha2::Sha256, Vec<u8>> = CtMerkleTree::new();
    let mut log = MemoryLog::default();
    for size in 1..=70u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let leaf = state.to_le_bytes()[..(state % 8 + 1) as usize].to_vec();
        reference.push(leaf.clone());
        log.append(leaf_hash(&leaf));
        let root = root(&log, size).unwrap();
        assert_eq!(
            &root[..],
            &reference.root().as_bytes()[..],
            "root of {size}"
        );
        for index in 0..size {
            let mine = inclusion_proof(&log, index, size).unwrap();
            let theirs = reference.prove_inclusion(index as usize);
            assert_eq!(
                flat(&mine),
                theirs.as_bytes(),
                "inclusion {index} of {size}"
            );
            let leaf = leaf_hash(&reference.items()[index as usize]);
            assert!(verify_inclusion(&leaf, index, size, &mine, &root));
            let other = leaf_hash(b"not this leaf");
            assert!(!verify_inclusion(&other, index, size, &mine, &root));
        }
        for old in 1..=size {
            let mine = consistency_proof(&log, old, size).unwrap();
            let old_root = super::root(&log, old).unwrap();
            assert!(
                verify_consistency((old, &old_root), (size, &root), &mine),
                "consistency {old} of {size}"
            );
            if old < size {
                let theirs = reference.prove_consistency(old as usize);
                assert_eq!(
                    flat(&mine),
                    theirs.as_bytes(),
                    "consistency {old} of {size}"
                );
                let wrong = leaf_hash(b"another past");
                assert!(!verify_consistency((old, &wrong), (size, &root), &mine));
            }
        }
    }
}

/// Only the subtrees `nodes_read` names, of a log of each size up to 70: roots and proofs
/// computed from them alone equal those computed from the whole log.
#[test]
fn the_subtrees_a_computation_reads_are_known_before_it_runs() {
    /// The subtrees of `log` named in `names`, and no others.
    fn only(log: &MemoryLog, names: Vec<(u32, u64)>) -> MemoryLog {
        let mut part = MemoryLog::default();
        for name in names {
            part.nodes.insert(name, log.node(name.0, name.1).unwrap());
        }
        part
    }
    let mut log = MemoryLog::default();
    for size in 1..=70u64 {
        log.append(leaf_hash(&size.to_le_bytes()));
        let part = only(&log, nodes_read(|n| root(n, size)));
        assert_eq!(root(&part, size), root(&log, size), "root of {size}");
        for index in 0..size {
            let part = only(&log, nodes_read(|n| inclusion_proof(n, index, size)));
            assert_eq!(
                inclusion_proof(&part, index, size),
                inclusion_proof(&log, index, size)
            );
        }
        for old in 1..size {
            let part = only(&log, nodes_read(|n| consistency_proof(n, old, size)));
            assert_eq!(
                consistency_proof(&part, old, size),
                consistency_proof(&log, old, size)
            );
        }
        let leaf = leaf_hash(b"next");
        let part = only(&log, nodes_read(|n| completed(n, size, leaf)));
        assert_eq!(completed(&part, size, leaf), completed(&log, size, leaf));
    }
}

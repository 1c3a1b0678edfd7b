//! Proof of runs: signing a run's statement (against hashing it, the floor any signature
//! pays), appending a signed run to the store's transparency log with a signed checkpoint
//! (against the checkpoint's signature alone; in an empty log and in one of a million runs),
//! and verifying an inclusion proof in a log of a million runs (against hashing one leaf).

use criterion::{Criterion, criterion_group, criterion_main};

use baton::journal::store::{Journal, TransparencyLog};
use baton::journal::tlog::{self, MemoryLog};
use baton::trust::signing::Envelope;
use sha2::{Digest as _, Sha256};

#[allow(dead_code)]
mod common;

use common::{fill_log, key, log_signed_run, signed_envelope, statement};

fn sign_root(c: &mut Criterion) {
    let (key, _) = key();
    let payload = statement();
    let mut group = c.benchmark_group("provenance");
    group.bench_function("sign_statement", |b| {
        b.iter(|| Envelope::sign("application/vnd.in-toto+json", &payload, &key).unwrap())
    });
    group.bench_function("sha256_statement", |b| b.iter(|| Sha256::digest(&payload)));
    group.finish();
}

/// One signed run kept per iteration: its envelope, and with the log its leaf, the subtrees
/// it completes and a signed checkpoint of the log; in an empty log, and in one of a million
/// runs (an append must not cost more as the log grows).
fn log_append(c: &mut Criterion) {
    let (key, public) = key();
    let envelope = signed_envelope(&key);
    let mut group = c.benchmark_group("provenance");
    for (name, runs_before) in [
        ("log_append_checkpoint", 0),
        ("log_append_checkpoint_1m", 1 << 20),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let journal = Journal::open(&path).unwrap();
        fill_log(&path, runs_before);
        let recorder = journal.recorder().unwrap().clone();
        let mut runs = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                runs += 1;
                let run = format!("run-{runs}");
                log_signed_run(&recorder, &journal, &key, &public, &run, &envelope);
            })
        });
        recorder.flush().unwrap();
        assert_eq!(journal.log_head().unwrap().0, runs_before + runs);
    }
    group.finish();
}

fn verify_inclusion(c: &mut Criterion) {
    const SIZE: u64 = 1 << 20;
    let mut log = MemoryLog::default();
    for index in 0..SIZE {
        log.append(tlog::leaf_hash(&index.to_le_bytes()));
    }
    let root = tlog::root(&log, SIZE).unwrap();
    let index: u64 = 777_777;
    let leaf = tlog::leaf_hash(&index.to_le_bytes());
    let proof = tlog::inclusion_proof(&log, index, SIZE).unwrap();
    assert!(tlog::verify_inclusion(&leaf, index, SIZE, &proof, &root));
    let mut group = c.benchmark_group("provenance");
    group.bench_function("verify_inclusion_1m", |b| {
        b.iter(|| tlog::verify_inclusion(&leaf, index, SIZE, &proof, &root))
    });
    group.bench_function("leaf_hash", |b| {
        b.iter(|| tlog::leaf_hash(&index.to_le_bytes()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = sign_root, log_append, verify_inclusion
}
criterion_main!(benches);

//! Proof of runs: signing a run's statement (against hashing it, the floor any signature
//! pays), appending a signed run to the store's transparency log with a signed checkpoint
//! (against the checkpoint's signature alone), and verifying an inclusion proof in a log of a
//! million runs (against hashing one leaf).

use criterion::{Criterion, criterion_group, criterion_main};

use baton::journal::store::{Journal, TransparencyLog};
use baton::journal::tlog::{self, MemoryLog};
use baton::runtime::checkpoint::Checkpoint;
use baton::trust::signing::{Envelope, SigningKey, generate};
use sha2::{Digest as _, Sha256};

/// A statement the size of a run's: a few components and policies.
fn statement() -> Vec<u8> {
    let components: Vec<_> = (0..4)
        .map(|i| {
            serde_json::json!({"name": "component", "digest": {"sha256": format!("{i:064x}")},
                                     "annotations": {"signer": "key baton-dev (sha256:…)"}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "run:01jbench", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"resolvedDependencies": components}},
    }))
    .unwrap()
}

fn key() -> (SigningKey, String) {
    let (private, public) = generate(b"bench").unwrap();
    (
        SigningKey::open(&private, "bench", b"bench").unwrap(),
        public,
    )
}

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
/// it completes and a signed checkpoint of the log.
fn log_append(c: &mut Criterion) {
    let (key, public) = key();
    let envelope = serde_json::to_string(
        &Envelope::sign("application/vnd.in-toto+json", &statement(), &key).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
    let recorder = journal.recorder().unwrap().clone();
    let mut runs = 0u64;
    let mut group = c.benchmark_group("provenance");
    group.bench_function("log_append_checkpoint", |b| {
        b.iter(|| {
            runs += 1;
            let run = format!("run-{runs}");
            recorder.attest(&run, &envelope);
            recorder.flush().unwrap();
            let (size, root) = journal.log_head().unwrap();
            let note = Checkpoint::of(&public, size, root)
                .unwrap()
                .sign(&key, &public)
                .unwrap();
            recorder.checkpoint(size, &note);
        })
    });
    group.finish();
    recorder.flush().unwrap();
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

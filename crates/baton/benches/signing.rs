//! Signature verification: a detached signature over a 200 KB component, and a Sigstore bundle
//! from the conformance suite, each against native SHA-256 of the same bytes (the floor any
//! verification pays). Loading a signed component from the compile cache is in
//! `benches/sandbox.rs` (`load/from_compile_cache`, which verifies first).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

use baton::trust::signing::{PublicKey, SigningKey, generate};
use baton::trust::sigstore::{Signer, verify_bundle};
use sha2::{Digest as _, Sha256};

fn detached(c: &mut Criterion) {
    let (private, public) = generate(b"bench").unwrap();
    let key = SigningKey::open(&private, "bench", b"bench").unwrap();
    let public = PublicKey::parse(&public, "bench").unwrap();
    let component: Vec<u8> = (0..200 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let signature = key.sign(&component).unwrap();
    assert!(public.verifies(&component, &signature));
    let mut group = c.benchmark_group("verify");
    group.bench_function("detached_200k", |b| {
        b.iter(|| public.verifies(&component, &signature))
    });
    group.bench_function("sha256_200k", |b| b.iter(|| Sha256::digest(&component)));
    group.finish();
}

fn sigstore_bundle(c: &mut Criterion) {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/sigstore-bundle-verify");
    let artifact = std::fs::read(suite.join("a.txt")).unwrap();
    let bundle =
        std::fs::read_to_string(suite.join("happy-path-v0.3/bundle.sigstore.json")).unwrap();
    let signer = Signer::Keyless {
        identity: "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main".into(),
        issuer: "https://token.actions.githubusercontent.com".into(),
    };
    verify_bundle(&artifact, &bundle, &signer, None).unwrap();
    let mut group = c.benchmark_group("verify");
    group.bench_function("sigstore_bundle", |b| {
        b.iter(|| verify_bundle(&artifact, &bundle, &signer, None).unwrap())
    });
    group.finish();
}

criterion_group!(benches, detached, sigstore_bundle);
criterion_main!(benches);

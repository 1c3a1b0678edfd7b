//! Components from an OCI registry, and components written in Python, against the same work
//! from a file and in Rust, in one process.
//!
//! - `oci/file`: `Host::load` of a signed ~200 KB component from disk (compile cache warm),
//!   then one `call_tool`: what `baton call FILE` does.
//! - `oci/cached_digest`: the same component named `oci://HOST/REPO@sha256:…`, already in the
//!   pull cache: no request to the registry.
//! - `oci/cached_tag`: named `oci://HOST/REPO:TAG`: the registry (Debian's `docker-registry` on
//!   loopback) is asked what the tag names, and the bytes come from the cache.
//! - `warm_call/rust_calc` and `warm_call/python_greet`: one `call_tool` of a loaded tool, the
//!   reference `calc` and the Python template from `baton new tool --lang python`; their sizes
//!   are printed.
//!
//! Needs `docker-registry` and `componentize-py` on PATH. Run with `cargo xtask bench` (all
//! benchmarks), or `BATON_PLUGIN_DIR=target/plugins cargo bench -p baton --bench registry`.

use std::path::{Path, PathBuf};
use std::process::Command;

use baton::{Host, HostOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use wasm_encoder::{ComponentSection, CustomSection};

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/registry/server.rs"]
mod registry_server;

const PASSWORD: &str = "bench";

/// `baton ARGS...` in `dir`, which must succeed; its standard output.
fn baton(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .current_dir(dir)
        .env("BATON_KEY_PASSWORD", PASSWORD)
        .env("BATON_CACHE_DIR", dir.join("cache"))
        .env("BATON_POLICY", common::trust_policy())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "baton {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `calc` padded to about 200 KB with a custom section, signed with the key in `dir`.
fn padded_calc(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(common::plugin("calc.wasm")).unwrap();
    let padding = vec![0u8; 200_000usize.saturating_sub(bytes.len())];
    CustomSection {
        name: "padding".into(),
        data: padding.into(),
    }
    .append_to_component(&mut bytes);
    let path = dir.join("calc.wasm");
    std::fs::write(&path, bytes).unwrap();
    baton(dir, &["sign", "--key", "baton.key", "calc.wasm"]);
    path
}

/// The Python template tool, built and signed in `dir/greet`.
fn python_tool(dir: &Path) -> PathBuf {
    baton(dir, &["new", "tool", "greet", "--lang", "python"]);
    let project = dir.join("greet");
    std::fs::copy(dir.join("baton.key"), project.join("baton.key")).unwrap();
    baton(&project, &["build"]);
    baton(&project, &["sign", "--key", "baton.key", "greet.wasm"]);
    project.join("greet.wasm")
}

fn benches(c: &mut Criterion) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    baton(dir, &["keygen"]);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "[trust]\nkeys = [\"baton.pub\"]\n").unwrap();
    let calc = padded_calc(dir);
    let registry = registry_server::Registry::start();
    let tag = registry.reference("bench/calc:1.0.0");
    let pinned = baton(dir, &["push", "calc.wasm", &tag]);
    let python = python_tool(dir);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy(), policy],
        cache_dir: Some(dir.join("cache")),
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let input = r#"{"expression": "6 * 7"}"#;
    // Warm the compile and pull caches.
    for path in [calc.to_str().unwrap(), &pinned, &tag] {
        rt.block_on(host.load(Path::new(path))).unwrap();
    }

    let mut group = c.benchmark_group("oci");
    for (name, path) in [
        ("file", calc.to_str().unwrap()),
        ("cached_digest", &pinned),
        ("cached_tag", &tag),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let plugin = host.load(Path::new(path)).await.unwrap();
                host.call_tool(&plugin, input).await.unwrap()
            })
        });
    }
    group.finish();

    let rust = rt
        .block_on(host.load(&common::plugin("calc.wasm")))
        .unwrap();
    let py = rt.block_on(host.load(&python)).unwrap();
    eprintln!(
        "sizes: rust calc {} bytes, python greet {} bytes",
        rust.loaded.size, py.loaded.size
    );
    let mut group = c.benchmark_group("warm_call");
    group.bench_function("rust_calc", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&rust, input).await.unwrap() })
    });
    group.bench_function("python_greet", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&py, r#"{"name": "Ada"}"#).await.unwrap() })
    });
    group.finish();
    drop(registry);
}

criterion_group!(oci, benches);
criterion_main!(oci);

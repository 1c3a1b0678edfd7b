//! The library as an embedder uses it: one `Host` serving many calls, hostile ones included.

use baton::exit;
use baton::limits::LimitExceeded;
use baton::sandbox::SandboxError;
use baton::{Error, Host, HostOptions};

use crate::common::{plugin, trust_policy};

fn host_with_cache(dir: &std::path::Path) -> Host {
    Host::new(HostOptions {
        policies: vec![trust_policy()],
        cache_dir: Some(dir.to_owned()),
        ..HostOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_keeps_serving_after_every_kind_of_containment() {
    let cache = tempfile::tempdir().unwrap();
    let host = host_with_cache(cache.path());
    let calc = host.load(&plugin("calc.wasm")).await.unwrap();
    let hostile = [
        ("testing/spin.wasm", exit::LIMIT),
        ("testing/memory-bomb.wasm", exit::LIMIT),
        ("testing/recursion.wasm", exit::LIMIT),
        ("testing/output-flood.wasm", exit::LIMIT),
        ("testing/panic.wasm", exit::TOOL_FAILED),
        ("testing/bad-json.wasm", exit::TOOL_FAILED),
        ("testing/schema-violation.wasm", exit::TOOL_FAILED),
    ];
    for (name, code) in hostile {
        let tool = host.load(&plugin(name)).await.unwrap();
        let err = host.call_tool(&tool, "{}").await.unwrap_err();
        assert_eq!(exit::code(&err), code, "{name}: {err}");
        // The same host, right after, still serves a well-behaved tool.
        let ok = host
            .call_tool(&calc, r#"{"expression": "40 + 2"}"#)
            .await
            .unwrap_or_else(|e| panic!("calc failed after {name}: {e}"));
        assert_eq!(ok.output["value"], 42.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_typed_errors() {
    let host = Host::new(HostOptions {
        policies: vec![trust_policy()],
        ..HostOptions::default()
    })
    .unwrap();
    let spin = host.load(&plugin("testing/spin.wasm")).await.unwrap();
    let err = host.call_tool(&spin, "{}").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sandbox {
                error: SandboxError::Limit(LimitExceeded::Fuel {
                    limit: 1_000_000_000
                }),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_fuel_and_peak_memory() {
    let host = Host::new(HostOptions {
        policies: vec![trust_policy()],
        ..HostOptions::default()
    })
    .unwrap();
    let calc = host.load(&plugin("calc.wasm")).await.unwrap();
    let small = host
        .call_tool(&calc, r#"{"expression": "1"}"#)
        .await
        .unwrap();
    let long = format!("{{\"expression\": \"{}1\"}}", "1 + ".repeat(2000));
    let big = host.call_tool(&calc, &long).await.unwrap();
    assert_eq!(big.output["value"], 2001.0);
    assert!(small.usage.fuel > 0);
    assert!(big.usage.fuel > small.usage.fuel);
    assert!(small.usage.peak_memory >= 64 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compile_cache_is_written_once_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let entries = || -> Vec<std::path::PathBuf> {
        walk(cache.path())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let first = host_with_cache(cache.path());
    first.load(&plugin("calc.wasm")).await.unwrap();
    let written = entries();
    assert_eq!(written.len(), 1);
    let digest = &first
        .load(&plugin("calc.wasm"))
        .await
        .unwrap()
        .loaded
        .digest;
    assert!(written[0].ends_with(format!("{}.cwasm", digest.hex())));
    let modified = std::fs::metadata(&written[0]).unwrap().modified().unwrap();

    // A second host (as a second process would) loads from the cache without rewriting it.
    let second = host_with_cache(cache.path());
    let calc = second.load(&plugin("calc.wasm")).await.unwrap();
    assert_eq!(
        std::fs::metadata(&written[0]).unwrap().modified().unwrap(),
        modified
    );
    let call = second
        .call_tool(&calc, r#"{"expression": "2 ^ 10"}"#)
        .await
        .unwrap();
    assert_eq!(call.output["value"], 1024.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_cache_entry_is_replaced_not_trusted() {
    let cache = tempfile::tempdir().unwrap();
    let host = host_with_cache(cache.path());
    host.load(&plugin("text-stats.wasm")).await.unwrap();
    let entry = walk(cache.path())
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    std::fs::write(&entry, b"garbage").unwrap();

    let again = host_with_cache(cache.path());
    let tool = again.load(&plugin("text-stats.wasm")).await.unwrap();
    let call = again
        .call_tool(&tool, r#"{"text": "a b c"}"#)
        .await
        .unwrap();
    assert_eq!(call.output["words"], 3);
    assert_ne!(std::fs::read(&entry).unwrap(), b"garbage");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

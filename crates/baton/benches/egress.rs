//! The cost of egress control, against the same work done natively in the same process.
//!
//! - `policy/allowed_request`: `capability::http::check` on an allowed request, against a grant of
//!   ten patterns where the last one matches (the checks added to every allowed request
//!   before it reaches the gate; address checks come after resolution, in the client).
//! - `get/native_reqwest` / `get/sandboxed`: the same GET to a loopback server, by a native
//!   reqwest client and by the `fetch` tool inside Baton's sandbox (policy check, address
//!   check, journal-free gate, the whole tool call). The server closes every connection, so
//!   both connect afresh each time.
//!
//! Run with `cargo xtask bench`.

use baton::policy::NetGrant;
use baton::runtime::capability::http::check;
use baton::{Host, HostOptions};
#[allow(dead_code)]
mod common;

use common::plugin;
use criterion::{Criterion, criterion_group, criterion_main};

fn policy_check(c: &mut Criterion) {
    let patterns = [
        "https://api.example.com",
        "https://*.github.com",
        "http://10.0.0.7:8080",
        "https://[2001:db8::1]:8443",
        "https://*.s3.amazonaws.com",
        "http://localhost:3000",
        "https://example.org:8443",
        "https://*.internal.example.net",
        "http://192.0.2.10",
        "https://uploads.example.com",
    ];
    let grant = NetGrant {
        allow: patterns.iter().map(|p| p.parse().unwrap()).collect(),
        methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
        max_response_bytes: 1 << 20,
        timeout: std::time::Duration::from_secs(10),
        ca: None,
        source: "bench.toml".into(),
    };
    let (request, ()) = http::Request::post("https://uploads.example.com/v1/files?part=2")
        .header("host", "uploads.example.com")
        .body(())
        .unwrap()
        .into_parts();
    c.bench_function("policy/allowed_request", |b| {
        b.iter(|| check(Some(&grant), "uploader", &request).unwrap().1.port)
    });
}

fn gets(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = common::server::Server::start();
    let url = server.url("/hello");
    let dir = tempfile::tempdir().unwrap();
    let policy = common::fetch_policy(dir.path(), &server);
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy(), policy],
        ..HostOptions::default()
    })
    .unwrap();
    let fetch = rt.block_on(host.load(&plugin("fetch.wasm"))).unwrap();
    let input = format!(r#"{{"url": "{url}"}}"#);
    let client = reqwest::Client::new();

    let mut group = c.benchmark_group("get");
    group.bench_function("native_reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let response = client.get(&url).send().await.unwrap();
            response.text().await.unwrap()
        })
    });
    group.bench_function("sandboxed", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&fetch, &input).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, policy_check, gets);
criterion_main!(benches);

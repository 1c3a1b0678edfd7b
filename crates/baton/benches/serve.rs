//! `baton serve` under load: the real binary, against a keep-alive chat-completions server
//! on loopback that answers at once.
//!
//! Criterion, one request at a time on a keep-alive connection:
//! - `gateway/direct`: a chat completion POSTed to the upstream server itself;
//! - `gateway/miss`: the same request through the gateway (key check, routing, the key's
//!   budget, breaker, the journaled run), with the cache off.
//!
//! Then a load generator keeps 64 connections busy and prints the p50 and p99 latency of:
//! the upstream directly; the gateway with the cache off; the gateway with the cache on and
//! a miss (the exact tier, then the semantic tier's embedding, both asked); exact-tier hits;
//! semantic-tier hits (the same question, spaced differently each time, so that only the
//! semantic tier can answer); and `POST /v1/runs` of a run that does nothing, with the rate
//! of runs submitted.
//!
//! Run with `cargo xtask bench -- serve`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

use common::{plugin, serve_completions};

/// Connections the load generator keeps busy.
const CONNECTIONS: usize = 64;

/// A running `baton serve` and the key to call it with.
struct Served {
    child: Child,
    base: String,
    key: String,
}

impl Served {
    /// `baton serve` with its journal in `dir`, under a policy routing model `test` to the
    /// upstream on `port`, with the cache on or off.
    fn start(dir: &Path, port: u16, cache: bool, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let policy = dir.join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[llm.providers.up]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
                 \n[llm.models.test]\nprovider = \"up\"\n\n[cache]\nenabled = {cache}\n"
            ),
        )
        .unwrap();
        let baton = |args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
            command
                .env("BATON_STORE", dir.join("journal.db"))
                .env("BATON_CACHE_DIR", dir.join("cache"))
                .env("BATON_POLICY", common::trust_policy())
                .args(["--policy", policy.to_str().unwrap()])
                .args(args);
            command
        };
        let made = baton(&["keys", "create", "--name", "bench"])
            .output()
            .unwrap();
        let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
        let mut child = baton(&["serve", "--listen", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "baton serve exited"
            );
        }
        // The rest of its standard error is drained so that it never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let base = line.split("http://").nth(1).unwrap().trim().to_string();
        Self { child, base, key }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chat(prompt: &str) -> Value {
    json!({"model": "test", "max_tokens": 16, "temperature": 0,
           "messages": [{"role": "user", "content": prompt}]})
}

/// POSTs `body` to `url` (with `key`), checking the answer is a success; returns the
/// answer's `x-baton-cache` header.
async fn post(client: &reqwest::Client, url: &str, key: Option<&str>, body: &Value) -> String {
    let mut request = client.post(url).json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let tier = response
        .headers()
        .get("x-baton-cache")
        .map_or("", |v| v.to_str().unwrap())
        .to_string();
    response.bytes().await.unwrap();
    tier
}

/// `post`, checking which tier of the cache answered (a semantic tier that cannot embed
/// would silently measure misses).
async fn post_answered_by(
    tier: &str,
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) {
    let answered = post(client, url, Some(key), body).await;
    assert_eq!(
        answered, tier,
        "is BATON_MODELS set? `cargo xtask bench` sets it"
    );
}

/// The upstream, and a server with the cache off and one with it on (which also serves a
/// workflow that does nothing).
struct Fixture {
    rt: tokio::runtime::Runtime,
    port: u16,
    off: Served,
    on: Served,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let port = rt.block_on(serve_completions());
        let dir = tempfile::tempdir().unwrap();
        let workflows = dir.path().join("workflows");
        std::fs::create_dir_all(&workflows).unwrap();
        std::fs::write(
            workflows.join("noop.toml"),
            format!(
                "name = \"noop\"\nplanner = {:?}\n\n[config]\nsteps = []\n",
                plugin("planners/static.wasm")
            ),
        )
        .unwrap();
        let off = Served::start(&dir.path().join("off"), port, false, &[]);
        let on = Served::start(
            &dir.path().join("on"),
            port,
            true,
            &[
                "--workflows",
                workflows.to_str().unwrap(),
                "--max-runs",
                "2",
                "--queue",
                "1000000",
            ],
        );
        Self {
            rt,
            port,
            off,
            on,
            _dir: dir,
        }
    }
}

/// The question of the semantic hits, spaced differently for each `i`: only the semantic
/// tier can answer it.
fn spaced(i: usize) -> Value {
    let gap = |n: usize| " ".repeat(n + 1);
    let (a, b, c) = (gap(i % 32), gap(i / 32 % 32), gap(i / 1024));
    chat(&format!("{a}What is the capital{b}of France?{c}"))
}

fn single(c: &mut Criterion, fixture: &Fixture) {
    let Fixture {
        rt, port, off, on, ..
    } = fixture;
    let client = reqwest::Client::new();
    let direct = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let url = |served: &Served, path: &str| format!("http://{}{path}", served.base);
    let body = chat("What is the capital of France?");
    let mut group = c.benchmark_group("gateway");
    group.bench_function("direct", |b| {
        b.to_async(rt).iter(|| post(&client, &direct, None, &body))
    });
    let gateway = url(off, "/v1/chat/completions");
    group.bench_function("miss", |b| {
        b.to_async(rt)
            .iter(|| post(&client, &gateway, Some(&off.key), &body))
    });
    let cached = url(on, "/v1/chat/completions");
    // The answer every hit is served from.
    rt.block_on(post(&client, &cached, Some(&on.key), &body));
    group.bench_function("exact_hit", |b| {
        b.to_async(rt)
            .iter(|| post_answered_by("exact", &client, &cached, &on.key, &body))
    });
    let next = AtomicUsize::new(100_000);
    group.bench_function("semantic_hit", |b| {
        b.to_async(rt).iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let body = spaced(i);
            let (client, cached) = (&client, &cached);
            async move { post_answered_by("semantic", client, cached, &on.key, &body).await }
        })
    });
    group.finish();
    let runs = url(on, "/v1/runs");
    let noop = json!({"workflow": "noop"});
    c.benchmark_group("runs").bench_function("submit", |b| {
        b.to_async(rt)
            .iter(|| post(&client, &runs, Some(&on.key), &noop))
    });
}

/// `total` requests over `CONNECTIONS` connections, request `i` made by `make(i)`; every
/// request's latency, sorted, and the whole load's duration.
fn load<F, Fut>(rt: &tokio::runtime::Runtime, total: usize, make: F) -> (Vec<Duration>, Duration)
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut latencies: Vec<Duration> = rt.block_on(async {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (make, next) = (make.clone(), next.clone());
                tokio::spawn(async move {
                    // One client per worker: one keep-alive connection each.
                    let client = reqwest::Client::builder()
                        .pool_max_idle_per_host(1)
                        .build()
                        .unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return mine;
                        }
                        let began = Instant::now();
                        make(client.clone(), i).await;
                        mine.push(began.elapsed());
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, elapsed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(name: &str, (latencies, elapsed): &(Vec<Duration>, Duration)) {
    println!(
        "  {name:<34} p50 {:>9.1} µs   p99 {:>9.1} µs   {:>8.0} requests/s",
        percentile(latencies, 0.5).as_secs_f64() * 1e6,
        percentile(latencies, 0.99).as_secs_f64() * 1e6,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
}

/// The load phase: every measure at 64 connections.
fn under_load(fixture: &Fixture) {
    let Fixture {
        rt, port, off, on, ..
    } = fixture;
    println!("under load: {CONNECTIONS} connections");
    // Each measure: its name, requests, URL, key, body, and the cache tier that must answer
    // (empty: none checked).
    let measure = |name: &str,
                   total: usize,
                   url: String,
                   key: Option<&str>,
                   body: fn(usize) -> Value,
                   tier: &'static str| {
        let (url, key) = (Arc::new(url), key.map(str::to_owned));
        let result = load(rt, total, move |client, i| {
            let (url, key) = (url.clone(), key.clone());
            async move {
                let answered = post(&client, &url, key.as_deref(), &body(i)).await;
                assert!(tier.is_empty() || answered == tier, "{answered} for {tier}");
            }
        });
        report(name, &result);
    };
    let same = |_| chat("What is the capital of France?");
    let chat_url = |served: &Served| format!("http://{}/v1/chat/completions", served.base);
    let direct = format!("http://127.0.0.1:{port}/v1/chat/completions");
    measure("upstream directly", 20_000, direct, None, same, "");
    measure(
        "gateway, cache off",
        20_000,
        chat_url(off),
        Some(&off.key),
        same,
        "miss",
    );
    let distinct = |i| chat(&format!("Question number {i}: what is {i} squared?"));
    let (on_url, on_key) = (chat_url(on), Some(on.key.as_str()));
    measure(
        "gateway, cache miss",
        2_000,
        on_url.clone(),
        on_key,
        distinct,
        "miss",
    );
    measure(
        "gateway, exact hit",
        20_000,
        on_url.clone(),
        on_key,
        same,
        "exact",
    );
    measure(
        "gateway, semantic hit",
        2_000,
        on_url,
        on_key,
        spaced,
        "semantic",
    );
    let runs = format!("http://{}/v1/runs", on.base);
    let noop = |_| json!({"workflow": "noop"});
    measure(
        "runs API, submit a no-op run",
        10_000,
        runs,
        on_key,
        noop,
        "",
    );
}

fn main() {
    let fixture = Fixture::new();
    let mut criterion = Criterion::default().configure_from_args();
    single(&mut criterion, &fixture);
    under_load(&fixture);
    criterion.final_summary();
}

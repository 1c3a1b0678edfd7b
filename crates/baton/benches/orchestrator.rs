//! What orchestration costs, against baselines measured in the same process.
//!
//! - `schedule/run_64_steps` vs `schedule/call_64_times`: a static plan of 64 independent
//!   `calc` steps run by `baton_orchestrator::run` one at a time (`max_parallel = 1`), against the
//!   same 64 calls made one after another with `Host::call_tool`. The difference divided by 64
//!   is the scheduling overhead per step: planning (two planner decisions), input templates,
//!   dependency tracking, results and the run's chains.
//! - `fanout/baton_pN` vs `fanout/native_pN`: 32 independent `fetch` steps, each waiting
//!   100 ms on a loopback server, with at most N running at once; the baseline makes the same
//!   32 requests with reqwest, N at a time. The ideal is ⌈32/N⌉ × 100 ms.
//!
//! Run with `cargo xtask bench`.

use std::sync::Arc;

use baton::orchestrator::RunRequest;
use baton::orchestrator::progress::Quiet;
use baton::orchestrator::workflow::Settings;
use baton::{Host, HostOptions};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

#[allow(dead_code)]
mod common;

use common::plugin;

const STEPS: usize = 64;
const FANOUT: usize = 32;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Settings for the static planner running `steps`, `max_parallel` at a time.
fn plan(steps: Vec<Value>, max_parallel: usize) -> Settings {
    Settings {
        config: json!({ "steps": steps, "output": null }),
        max_parallel,
        max_steps: 1000,
        ..Settings::default()
    }
}

fn schedule(c: &mut Criterion) {
    let rt = runtime();
    let mut host = Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let calc = rt.block_on(host.load(&plugin("calc.wasm"))).unwrap();
    let planner = Arc::new(
        rt.block_on(host.load(&plugin("planners/static.wasm")))
            .unwrap(),
    );
    let input = r#"{"expression": "1 + 2"}"#;
    let steps = (0..STEPS)
        .map(|i| json!({"id": format!("s{i}"), "tool": "calc", "input": {"expression": "1 + 2"}}))
        .collect();
    let settings = plan(steps, 1);
    let mut group = c.benchmark_group("schedule");
    group.sample_size(20);
    group.bench_function("call_64_times", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..STEPS {
                host.call_tool(&calc, input).await.unwrap();
            }
        })
    });
    host.add_tool(calc).unwrap();
    group.bench_function("run_64_steps", |b| {
        b.to_async(&rt).iter(|| async {
            let request = RunRequest {
                planner: planner.clone(),
                task: "",
                input: &Value::Null,
                settings: &settings,
            };
            let run = baton::orchestrator::run(&host, request, Arc::new(Quiet))
                .await
                .unwrap();
            assert_eq!(run.result.steps.len(), STEPS);
        })
    });
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let server = common::server::Server::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = common::fetch_policy(dir.path(), &server);
    let mut host = Host::new(HostOptions {
        policies: vec![common::trust_policy(), policy],
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let fetch = rt.block_on(host.load(&plugin("fetch.wasm"))).unwrap();
    host.add_tool(fetch).unwrap();
    let planner = Arc::new(
        rt.block_on(host.load(&plugin("planners/static.wasm")))
            .unwrap(),
    );
    let url = server.url("/wait/100");
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("fanout");
    group.sample_size(10);
    for parallel in [8, 32] {
        let steps = (0..FANOUT)
            .map(|i| json!({"id": format!("get{i}"), "tool": "fetch", "input": {"url": url}}))
            .collect();
        let settings = plan(steps, parallel);
        group.bench_function(format!("baton_p{parallel}"), |b| {
            b.to_async(&rt).iter(|| async {
                let request = RunRequest {
                    planner: planner.clone(),
                    task: "",
                    input: &Value::Null,
                    settings: &settings,
                };
                let run = baton::orchestrator::run(&host, request, Arc::new(Quiet))
                    .await
                    .unwrap();
                assert_eq!(run.result.totals.succeeded, FANOUT);
            })
        });
        group.bench_function(format!("native_p{parallel}"), |b| {
            b.to_async(&rt).iter(|| async {
                let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..FANOUT {
                    let (client, url, permits) = (client.clone(), url.clone(), permits.clone());
                    tasks.spawn(async move {
                        let _permit = permits.acquire().await.unwrap();
                        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
                        assert_eq!(body, "waited");
                    });
                }
                tasks.join_all().await;
            })
        });
    }
    group.finish();
}

criterion_group!(benches, schedule, fanout);
criterion_main!(benches);

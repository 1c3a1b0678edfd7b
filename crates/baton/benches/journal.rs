//! The journal's cost: batched append throughput, and what recording adds to a tool call.
//!
//! - `journal/append_10k`: 10,000 pre-hashed events sent to the writer and committed (one
//!   flush), i.e. the store's batched write path.
//! - `journal/hash_and_append_10k`: the same, with each event numbered, canonicalized and
//!   hashed by the chain writer first: the whole recording path of an effect.
//! - `journal/record_call`: numbering, serializing and hashing the eight events a recorded
//!   `baton call` of `calc` journals (no store): the part of journaling the writer thread
//!   does before it stores them (the calling thread only numbers and queues events).
//! - `journaled_call/*`: `Host::call_tool` on `calc` without a journal and with one, and
//!   with one and the cache of pure calls missing (`recorded_pure_miss`: a new input each
//!   time, so each call is looked up, runs, and is kept).
//! - `journaled_calls/recorded_1000`: 1,000 recorded calls, then a flush of the journal:
//!   recorded calls per second when the writer must keep up.
//! - `flow/public_invocation`: the label tracking every invocation pays when its data is
//!   public (its flow made, started and finished), to set against `journaled_call/*`.
//! - `flow/labelled_effect`: what label tracking adds to one effect of an invocation that
//!   carries a label: a read beneath a granted directory, then a send checked against the
//!   plugin's `may_send`.
//!
//! Run with `cargo xtask bench`.

use baton::effects::fs::{FsOp, Node};
use baton::effects::{Gate, LiveGate};
use baton::journal::chain::{ChainWriter, Stored};
use baton::journal::event::{
    EventKind, InvocationOutcome, LimitsRecord, PolicyRef, RUN_CHAIN, step_chain,
};
use baton::journal::store::{Journal, StoreUrl};
use baton::policy::Policy;
use baton::runtime::flow::{Flow, Labels};
use baton::{Host, HostOptions};
use std::sync::Arc;
#[allow(dead_code)]
mod common;

use common::plugin;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: u64 = 10_000;

fn log_event(i: u64) -> EventKind {
    EventKind::Log {
        level: "info".into(),
        message: format!("processed record {i} of the batch"),
    }
}

fn chain(run: &str) -> Vec<Stored> {
    let mut writer = ChainWriter::new(run, "step:bench".into());
    (0..EVENTS).map(|i| writer.record(log_event(i))).collect()
}

fn appends(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&dir.path().join("journal.db")).unwrap();
    let recorder = journal.recorder().unwrap().clone();
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);
    let mut runs = 0u64;
    group.bench_function("append_10k", |b| {
        b.iter_batched(
            || {
                runs += 1;
                chain(&format!("run{runs}"))
            },
            |events| {
                for event in events {
                    recorder.event(event);
                }
                recorder.flush().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("hash_and_append_10k", |b| {
        b.iter(|| {
            runs += 1;
            let mut writer = ChainWriter::new(&format!("run{runs}"), "step:bench".into());
            for i in 0..EVENTS {
                recorder.event(writer.record(log_event(i)));
            }
            recorder.flush().unwrap();
        })
    });
    group.finish();
    // The same group without the 10,000-event throughput: one call's events per iteration.
    let mut group = c.benchmark_group("journal");
    group.bench_function("record_call", |b| {
        b.iter_batched(call_events, record_call, BatchSize::SmallInput)
    });
    group.finish();
}

const RUN: &str = "01m80j6gy5f97kwc1kh9ckc9xz";
const DIGEST: &str = "sha256:dbd4027292c20f28bfbf9f25ce2b23660bf72daee02701507068fd6a1603be62";

/// The events of a recorded `baton call` of `calc`, in the order they are recorded, `true`
/// marking the run chain's; the values are of a real call's sizes (key, signature, digests).
fn call_events() -> Vec<(bool, EventKind)> {
    let key = "-----BEGIN PUBLIC KEY-----\r\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWeigM9UDOt/1nSOpWGZwZb2tAKpA\r\n\
               8Qm3iVw2O+5MUv8AvHKbYw9Uq1uWmmfuqXr0MaaKjzXKf3eCuLdmW6lHeZRzAg==\r\n-----END PUBLIC KEY-----\r\n";
    let sig = "MEUCIQD1aX0rj5Y0m7yU9y8d8wq7FJtZz0h2mX6v3fQv0bUaLgIgYc3mK2dZ0B3s5w9n1p7e6Q4r8t2u0v9x1y3z5a7b9c0=";
    let hash = "574f256416f1b4e9958a52b7ccc2e82cdc1d01f14a0690ce7c2ff89f6a3038a4";
    vec![
        (
            true,
            EventKind::RunStarted {
                baton: "0.1.0".into(),
                command: "call".into(),
                format: 1,
                policies: vec![PolicyRef {
                    digest: DIGEST.into(),
                    name: "policies/default.toml".into(),
                }],
                started_at: "2026-11-22T02:43:38.053Z".into(),
            },
        ),
        (
            true,
            EventKind::StepStarted {
                digest: DIGEST.into(),
                step: "call".into(),
                tool: "calc".into(),
            },
        ),
        (
            false,
            EventKind::InvocationStarted {
                digest: DIGEST.into(),
                input: r#"{"expression": "1 + 2"}"#.into(),
                limits: LimitsRecord {
                    budget_fuel: false,
                    budget_timeout: false,
                    fuel: 1_000_000_000,
                    memory: 64 << 20,
                    output: 1 << 20,
                    timeout_ms: 5000,
                },
                secrets: Vec::new(),
            },
        ),
        (
            false,
            EventKind::Verified {
                attestation: DIGEST.into(),
                digest: DIGEST.into(),
                key: key.into(),
                name: "dev".into(),
                signature: sig.into(),
                signer: "key dev".into(),
                trusted_root: String::new(),
            },
        ),
        (
            false,
            EventKind::RandomSeed {
                value: "259959271248835867490477954427747815632".into(),
            },
        ),
        (
            false,
            EventKind::InvocationEnded {
                duration_us: 144,
                fuel: 8361,
                outcome: InvocationOutcome::Returned {
                    output: r#"{"value":3.0}"#.into(),
                },
                peak_memory: 1_114_112,
            },
        ),
        (
            true,
            EventKind::StepEnded {
                events: 4,
                root: hash.into(),
                step: "call".into(),
            },
        ),
        (
            true,
            EventKind::RunEnded {
                status: "ok".into(),
            },
        ),
    ]
}

fn record_call(events: Vec<(bool, EventKind)>) -> Vec<Stored> {
    let mut run = ChainWriter::new(RUN, RUN_CHAIN.into());
    let mut step = ChainWriter::new(RUN, step_chain("call"));
    events
        .into_iter()
        .map(|(in_run, kind)| {
            if in_run {
                run.record(kind)
            } else {
                step.record(kind)
            }
        })
        .collect()
}

fn journaled_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = plugin("calc.wasm");
    let mut group = c.benchmark_group("journaled_call");
    for (name, store) in [
        ("unrecorded", None),
        (
            "recorded",
            Some(StoreUrl::Sqlite(dir.path().join("journal.db"))),
        ),
    ] {
        let host = Host::new(HostOptions {
            policies: vec![common::trust_policy()],
            store,
            no_pure_cache: true,
            ..HostOptions::default()
        })
        .unwrap();
        let calc = rt.block_on(host.load(&path)).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                host.call_tool(&calc, r#"{"expression": "1 + 2"}"#)
                    .await
                    .unwrap()
            })
        });
    }
    // A recorded call the cache of pure calls cannot answer (every input new): the lookup and
    // the insert into `pure-calls.db` beside the journal, on top of `recorded`.
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        store: Some(StoreUrl::Sqlite(dir.path().join("misses.db"))),
        ..HostOptions::default()
    })
    .unwrap();
    let calc = rt.block_on(host.load(&path)).unwrap();
    let mut n = 0u64;
    group.bench_function("recorded_pure_miss", |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let input = format!(r#"{{"expression": "1 + {n}"}}"#);
            let (host, calc) = (&host, &calc);
            async move { host.call_tool(calc, &input).await.unwrap() }
        })
    });
    group.finish();
    // Throughput: the writer must keep up, so the flush is part of what is timed.
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        store: Some(StoreUrl::Sqlite(dir.path().join("throughput.db"))),
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let calc = rt.block_on(host.load(&path)).unwrap();
    let recorder = host.journal().unwrap().recorder().unwrap().clone();
    let mut group = c.benchmark_group("journaled_calls");
    group.throughput(Throughput::Elements(CALLS));
    group.sample_size(10);
    group.bench_function("recorded_1000", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..CALLS {
                host.call_tool(&calc, r#"{"expression": "1 + 2"}"#)
                    .await
                    .unwrap();
            }
            recorder.flush().unwrap();
        })
    });
    group.finish();
}

/// Recorded calls per sample of `journaled_calls/recorded_1000`.
const CALLS: u64 = 1000;

/// A tool whose one effect waits 200 ms (an HTTP response from a slow loopback server), live
/// and replayed from its bundle, where the recorded response is served at once.
fn replays(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = common::server::Server::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = common::fetch_policy(dir.path(), &server);
    // With the compile cache, as `baton replay` runs: a replay loads the bundled component.
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy(), policy],
        store: Some(StoreUrl::Sqlite(dir.path().join("journal.db"))),
        cache_dir: Some(dir.path().join("cache")),
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let fetch = rt.block_on(host.load(&plugin("fetch.wasm"))).unwrap();
    let input = format!(r#"{{"url": "{}"}}"#, server.url("/slow"));
    let baton::runtime::ToolRun { run, result, .. } = rt.block_on(host.run_tool(&fetch, &input));
    result.unwrap();
    let bundle = dir.path().join("slow.bundle");
    host.journal()
        .unwrap()
        .export(&run.unwrap().id, &bundle)
        .unwrap();

    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.bench_function("live", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&fetch, &input).await.unwrap() })
    });
    group.bench_function("replayed", |b| {
        b.to_async(&rt).iter(|| async {
            baton::orchestrator::replay(&host, &bundle, None)
                .await
                .unwrap()
        })
    });
    group.finish();
}

fn flow(c: &mut Criterion) {
    let mut texts: Vec<(String, String)> = Policy::builtin()
        .texts()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    texts.push((
        "bench.toml".into(),
        "[plugins.bench.fs]\nread = [\"data:/data\"]\n\
         [plugins.bench.flow]\nmay_send = [\"private\"]\n"
            .into(),
    ));
    let policy = Arc::new(Policy::from_texts(texts).unwrap());
    let mounts = policy.grants_for("bench", "").fs;
    let node = Node::replayed(&mounts[0]);
    let read = FsOp::Read { offset: 0, len: 64 };
    let gate: Arc<dyn Gate> = LiveGate::unrecorded("", "step:bench".into());
    let mut group = c.benchmark_group("flow");
    group.bench_function("public_invocation", |b| {
        b.iter(|| {
            let flow = Flow::new(Labels::public());
            flow.start(
                gate.clone(),
                policy.clone(),
                ("bench", "".into()),
                &mounts,
                &[],
            );
            flow.finish()
        })
    });
    let labelled = Flow::new(Labels::public());
    labelled.start(
        gate.clone(),
        policy.clone(),
        ("bench", "".into()),
        &mounts,
        &[],
    );
    labelled.read(&node, &read);
    group.bench_function("labelled_effect", |b| {
        b.iter(|| {
            labelled.read(&node, &read);
            labelled.check("GET http://127.0.0.1/", Some(("http", "127.0.0.1", 80)))
        })
    });
    group.finish();
}

criterion_group!(benches, appends, journaled_calls, flow, replays);
criterion_main!(benches);

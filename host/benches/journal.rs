//! The journal's cost: batched append throughput, and what recording adds to a tool call.
//!
//! - `journal/append_10k`: 10,000 pre-hashed events sent to the writer and committed (one
//!   flush), i.e. the store's batched write path.
//! - `journal/hash_and_append_10k`: the same, with each event numbered, canonicalized and
//!   hashed by the chain writer first: the whole recording path of an effect.
//! - `journaled_call/*`: `Host::call_tool` on `calc` without a journal and with one.
//!
//! Run with `cargo xtask bench`.

use baton::journal::chain::{ChainWriter, Stored};
use baton::journal::event::EventKind;
use baton::journal::store::Journal;
use baton::{Host, HostOptions};
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
        ("recorded", Some(dir.path().join("journal.db"))),
    ] {
        let host = Host::new(HostOptions {
            store,
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
    group.finish();
}

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
        policies: vec![policy],
        store: Some(dir.path().join("journal.db")),
        cache_dir: Some(dir.path().join("cache")),
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
        b.to_async(&rt)
            .iter(|| async { host.replay(&bundle, None).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, appends, journaled_calls, replays);
criterion_main!(benches);

//! Past one machine: steps through NATS JetStream to workers, the journal and budgets in
//! PostgreSQL, against baselines measured in the same process. Both servers are Debian's
//! (`nats-server`, `postgresql`), started on loopback by the benchmark itself; the workers are
//! `baton::cluster::work` tasks in this process, each with a host and store connection of its
//! own, as separate processes on this machine would be.
//!
//! - `pg_journal/append_10k` vs `pg_journal/sqlite_append_10k`: 10,000 events recorded and
//!   flushed, through the PostgreSQL store and through the SQLite journal.
//! - `pg_log/append_checkpoint_1m` vs `pg_log/sqlite_append_checkpoint_1m`: a signed run
//!   appended to the transparency log of a million runs, and a signed checkpoint of it kept,
//!   through the PostgreSQL store and through the SQLite journal.
//! - `reservation/postgres` vs `reservation/local`: one reservation and its commit against a
//!   shared ledger (two statements) and against the in-process ledger.
//! - `dispatch/nats_200` vs `dispatch/local_200`: 200 `calc` steps one at a time
//!   (`max_parallel = 1`), through one worker and here; the difference over 200 is the cost of
//!   sending a step through NATS and back (publish, pull, the step's chains committed, its
//!   outcome recorded and answered, acknowledged).
//! - `steps_1000/local` and `steps_1000/workers_N`: 1,000 `calc` steps, 16 at a time, here and
//!   on 1, 2 and 4 workers (4 steps at once each).
//!
//! Run with `cargo xtask bench`, or `BATON_PLUGIN_DIR=target/plugins cargo bench -p baton
//! --bench cluster`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::budget::{BudgetLimits, Ledger, Spend};
use baton::cluster::{Cluster, NatsDispatch, WorkerOptions};
use baton::journal::chain::ChainWriter;
use baton::journal::event::{EventKind, RUN_CHAIN};
use baton::journal::store::{Journal, Store, StoreUrl, TransparencyLog};
use baton::orchestrator::progress::Quiet;
use baton::orchestrator::remote::Dispatch;
use baton::orchestrator::workflow::Settings;
use baton::orchestrator::{Launch, RunRequest};
use baton::postgres::PgStore;
use baton::{Host, HostOptions, Plugin};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../../../tests/e2e/cluster/nats.rs"]
mod nats;
#[allow(dead_code)]
#[path = "../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

use common::plugin;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn events(run: &str, n: usize) -> Vec<baton::journal::chain::Stored> {
    let mut chain = ChainWriter::new(run, RUN_CHAIN.into());
    (0..n)
        .map(|i| {
            chain.record(EventKind::Denied {
                capability: "http".into(),
                message: format!("event {i} of a benchmark run"),
            })
        })
        .collect()
}

fn journal(c: &mut Criterion) {
    let server = postgres::Postgres::start();
    let pg = PgStore::open(&server.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Journal::open(&dir.path().join("journal.db")).unwrap();
    let mut group = c.benchmark_group("pg_journal");
    group.sample_size(10);
    let mut n = 0;
    for (name, recorder) in [
        ("append_10k", Store::recorder(&pg).unwrap().clone()),
        ("sqlite_append_10k", sqlite.recorder().unwrap().clone()),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    n += 1;
                    let run = format!("bench-{n}");
                    let batch = events(&run, 10_000);
                    let started = Instant::now();
                    recorder.run_started(&run, "2026-12-04T00:00:00Z", "bench");
                    for chunk in batch.chunks(64) {
                        recorder.events(chunk.to_vec());
                    }
                    recorder.flush().unwrap();
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

fn log_append(c: &mut Criterion) {
    const RUNS_BEFORE: u64 = 1 << 20;
    let server = postgres::Postgres::start();
    let pg = PgStore::open(&server.url()).unwrap();
    fill_pg_log(&server.url(), RUNS_BEFORE);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let sqlite = Journal::open(&path).unwrap();
    common::fill_log(&path, RUNS_BEFORE);
    let (key, public) = common::key();
    let envelope = common::signed_envelope(&key);
    let mut group = c.benchmark_group("pg_log");
    let mut n = 0u64;
    for (name, recorder, log) in [
        (
            "append_checkpoint_1m",
            Store::recorder(&pg).unwrap().clone(),
            &pg as &dyn TransparencyLog,
        ),
        (
            "sqlite_append_checkpoint_1m",
            sqlite.recorder().unwrap().clone(),
            &sqlite,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                let run = format!("run-{n}");
                common::log_signed_run(&recorder, log, &key, &public, &run, &envelope);
            })
        });
        recorder.flush().unwrap();
        assert!(log.log_head().unwrap().0 > RUNS_BEFORE);
    }
    group.finish();
}

/// Writes a log of `runs` leaves into the PostgreSQL store at `url`, with a subtree at every
/// level and index a log of that size has. Their hashes are made up (computing a million
/// real ones in SQL would take minutes): an append reads only the subtrees its leaf
/// completes, and the root `log2` of them, whatever they hold.
fn fill_pg_log(url: &str, runs: u64) {
    let levels = runs.ilog2();
    let sql = format!(
        "INSERT INTO tlog_leaves SELECT i, 'old-' || i, sha256(int8send(i))
           FROM generate_series(0::int8, {runs} - 1) AS i;
         INSERT INTO tlog_nodes SELECT l, i, sha256(int8send(i) || int4send(l))
           FROM generate_series(0, {levels}) AS l,
                generate_series(0::int8, ({runs}::int8 >> l) - 1) AS i;"
    );
    let status = std::process::Command::new(postgres::program("psql"))
        .args(["--quiet", "--set=ON_ERROR_STOP=1", url, "-c", &sql])
        .status()
        .unwrap();
    assert!(status.success(), "filling the log failed");
}

fn reservation(c: &mut Criterion) {
    let server = postgres::Postgres::start();
    let pg = PgStore::open(&server.url()).unwrap();
    pg.database()
        .open_ledger("bench", BudgetLimits::default())
        .unwrap();
    let one = Spend {
        calls: 1,
        tokens: 100,
        ..Spend::default()
    };
    let shared = Ledger::run_within(
        BudgetLimits::default(),
        pg.database().account("bench", "bench/s"),
    );
    let local = Ledger::run(BudgetLimits::default());
    let mut group = c.benchmark_group("reservation");
    for (name, ledger) in [("postgres", shared), ("local", local)] {
        group.bench_function(name, |b| {
            b.iter(|| ledger.reserve(one).unwrap().commit(one))
        });
    }
    group.finish();
}

/// The static planner's settings for `steps` calc steps, `max_parallel` at once.
fn plan(steps: usize, max_parallel: usize) -> Settings {
    let steps: Vec<Value> = (0..steps)
        .map(|i| json!({"id": format!("s{i}"), "tool": "calc", "input": {"expression": "1 + 2"}}))
        .collect();
    Settings {
        config: json!({ "steps": steps, "output": null }),
        max_parallel,
        max_steps: 100_000,
        ..Settings::default()
    }
}

/// A host recording in the PostgreSQL store at `url`, compiling through the compile cache
/// (as `baton` does by default).
fn host(url: &str) -> Host {
    Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        store: Some(StoreUrl::Postgres(url.into())),
        cache_dir: Some(std::env::temp_dir().join("baton-bench-cache")),
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap()
}

/// Workers running on this process's runtime until the token is cancelled.
struct Workers {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// `n` workers of `capacity` each, and a dispatch to them once all are ready.
    async fn start(
        nats: &str,
        store: &str,
        n: usize,
        capacity: usize,
    ) -> (Self, Arc<dyn Dispatch>) {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = StoreUrl::Postgres(store.into());
            let cluster = Cluster::connect(nats, &url, Duration::from_secs(30))
                .await
                .unwrap();
            let host = Arc::new(host(store));
            let options = WorkerOptions {
                name: format!("bench-{i}"),
                capacity,
                ack_wait: Duration::from_secs(30),
            };
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                baton::cluster::work(cluster, host, options, stop)
                    .await
                    .unwrap();
            }));
        }
        // Ready once all of them answer the roll call.
        let url = StoreUrl::Postgres(store.into());
        let cluster = Cluster::connect(nats, &url, Duration::from_secs(30))
            .await
            .unwrap();
        while cluster.workers().await.unwrap().len() < n {}
        let dispatch: Arc<dyn Dispatch> = NatsDispatch::new(cluster).await.unwrap();
        (Self { stop, tasks }, dispatch)
    }

    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

async fn run(
    host: &Host,
    planner: &Arc<Plugin>,
    settings: &Settings,
    dispatch: Option<Arc<dyn Dispatch>>,
) {
    let request = RunRequest {
        planner: planner.clone(),
        task: "",
        input: &Value::Null,
        settings,
    };
    let how = Launch {
        dispatch,
        ..Launch::default()
    };
    let done = baton::orchestrator::launch(host, planner, how)
        .unwrap()
        .run(request, Arc::new(Quiet))
        .await
        .unwrap();
    assert_eq!(done.result.status.name(), "succeeded");
}

fn steps(c: &mut Criterion) {
    let rt = runtime();
    let pg = postgres::Postgres::start();
    let nats = nats::Nats::start();
    let store = pg.url();
    let mut host = host(&store);
    let calc = rt.block_on(host.load(&plugin("calc.wasm"))).unwrap();
    host.add_tool(calc).unwrap();
    let planner = Arc::new(
        rt.block_on(host.load(&plugin("planners/static.wasm")))
            .unwrap(),
    );
    let mut group = c.benchmark_group("dispatch");
    group.sample_size(10);
    let sequential = plan(200, 1);
    group.bench_function("local_200", |b| {
        b.to_async(&rt)
            .iter(|| run(&host, &planner, &sequential, None))
    });
    let (workers, dispatch) = rt.block_on(Workers::start(&nats.url(), &store, 1, 1));
    group.bench_function("nats_200", |b| {
        b.to_async(&rt)
            .iter(|| run(&host, &planner, &sequential, Some(dispatch.clone())))
    });
    rt.block_on(workers.stop());
    group.finish();

    let mut group = c.benchmark_group("steps_1000");
    group.sample_size(10);
    let wide = plan(1000, 16);
    group.bench_function("local", |b| {
        b.to_async(&rt).iter(|| run(&host, &planner, &wide, None))
    });
    for n in [1, 2, 4] {
        let (workers, dispatch) = rt.block_on(Workers::start(&nats.url(), &store, n, 4));
        group.bench_function(format!("workers_{n}"), |b| {
            b.to_async(&rt)
                .iter(|| run(&host, &planner, &wide, Some(dispatch.clone())))
        });
        rt.block_on(workers.stop());
    }
    group.finish();
}

criterion_group!(benches, journal, log_append, reservation, steps);
criterion_main!(benches);

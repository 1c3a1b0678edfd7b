//! The cost of Baton's sandbox against raw wasmtime doing the same work, in one process.
//!
//! - `call/raw_wasmtime`: a default engine, a fresh `Store` (WASI context, no limits) from an
//!   `InstancePre`, one call of `calc`'s `invoke`.
//! - `call/raw_wasmtime_pooling`: the same on an engine with Baton's pooling allocator but no
//!   limits, so that the difference to `baton_sandbox` is the cost of the limits alone.
//! - `call/baton_sandbox`: the same call through the runtime's `Runner` (the sandbox with
//!   Baton's capabilities linked), with every limit on (fuel, memory limiter, epoch deadline,
//!   host-side timeout, bounded stdout/stderr), on the pooling allocator.
//! - `call/baton_call_tool`: the whole `Host::call_tool` path: input JSON parse and schema
//!   check, the sandboxed call, output size, JSON and schema checks.
//! - `call/pure_cache_hit`: `Host::call_tool` answered by the cache of pure calls (calc
//!   reaches nothing and reads no clock or randomness): the input checks, the lookup and the
//!   output checks, without running the component.
//! - `load/*`: loading a component whose compiled form is already in the compile cache, and
//!   compiling it from scratch.
//!
//! Run with `cargo xtask bench` (which builds the plugins first).

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use baton::effects::{Gate, LiveGate};
use baton::policy::{Grants, LimitsSpec, Policy};
use baton::runtime::bindings::tool_api;
use baton::runtime::flow::{Flow, Labels};
use baton::runtime::loader::Loader;
use baton::runtime::loader::cache::CompileCache;
use baton::runtime::{Grant, Runner};
use baton::trust::check::PolicyTrust;
use baton::{Host, HostOptions};
#[allow(dead_code)]
mod common;

use common::plugin;
use criterion::{Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const INPUT: &str = r#"{"expression": "1 + 2"}"#;

struct RawState {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = plugin("calc.wasm");
    let bytes = std::fs::read(&path).expect("build the plugins first: cargo xtask plugins");
    let mut group = c.benchmark_group("call");

    // (a) Raw wasmtime, no limits: default engine, then Baton's pooling allocator.
    let mut pooling = wasmtime::Config::new();
    pooling.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
        baton::sandbox::engine::pooling_config(),
    ));
    let engines = [
        ("raw_wasmtime", Engine::default()),
        ("raw_wasmtime_pooling", Engine::new(&pooling).unwrap()),
    ];
    for (name, engine) in engines {
        let component = Component::new(&engine, &bytes).unwrap();
        let mut linker = Linker::<RawState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        // calc imports baton:plugin/types, an interface of types only.
        linker.instance("baton:plugin/types@0.1.0").unwrap();
        let pre = linker.instantiate_pre(&component).unwrap();
        let indices = tool_api::GuestIndices::new(&pre).unwrap();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let state = RawState {
                    table: ResourceTable::new(),
                    wasi: WasiCtx::builder().build(),
                };
                let mut store = Store::new(&engine, state);
                let instance = pre.instantiate_async(&mut store).await.unwrap();
                let guest = indices.load(&mut store, &instance).unwrap();
                guest.call_invoke(&mut store, INPUT).await.unwrap().unwrap()
            })
        });
    }

    // (b) Baton's sandbox, every limit on.
    let runner = Runner::new().unwrap();
    let loader = Loader::new(CompileCache::disabled());
    let trust = PolicyTrust::accept_unsigned();
    let loaded = loader.load(runner.engine(), &path, &trust).unwrap();
    let pre = runner.prepare(&loaded.component).unwrap();
    let indices = tool_api::GuestIndices::new(&pre).unwrap();
    let limits = Policy::builtin()
        .limits_for("calc", "", &LimitsSpec::default())
        .limits;
    let name: Arc<str> = "calc".into();
    group.bench_function("baton_sandbox", |b| {
        b.to_async(&rt).iter(|| async {
            // A gate that records nothing: the journal's cost is measured separately.
            let gate: Arc<dyn Gate> = LiveGate::unrecorded("", "step:bench".into());
            let grant = Grant {
                plugin: &name,
                gate: &gate,
                flow: &Flow::new(Labels::public()),
                grants: &Grants::default(),
                secrets: &[],
                preopens: &[],
            };
            runner
                .run(
                    &pre,
                    grant,
                    &limits,
                    &CancellationToken::new(),
                    None,
                    async |store, instance| {
                        indices
                            .load(&mut *store, instance)?
                            .call_invoke(&mut *store, INPUT)
                            .await
                    },
                )
                .await
                .result
                .unwrap()
                .unwrap()
        })
    });

    // (c) The whole tool call, schema checks included.
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        no_pure_cache: true,
        ..HostOptions::default()
    })
    .unwrap();
    let calc = rt.block_on(host.load(&path)).unwrap();
    group.bench_function("baton_call_tool", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&calc, INPUT).await.unwrap() })
    });

    // (d) The same call answered by the cache of pure calls (a host without a store keeps
    // it in memory): the first call runs calc, every call measured is a hit.
    let host = Host::new(HostOptions {
        policies: vec![common::trust_policy()],
        ..HostOptions::default()
    })
    .unwrap();
    let calc = rt.block_on(host.load(&path)).unwrap();
    rt.block_on(host.call_tool(&calc, INPUT)).unwrap();
    group.bench_function("pure_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { host.call_tool(&calc, INPUT).await.unwrap() })
    });
    group.finish();
}

fn loads(c: &mut Criterion) {
    let path = plugin("calc.wasm");
    let cache_dir = tempfile::tempdir().unwrap();
    let runner = Runner::new().unwrap();
    // Loading verifies the signature beside the file, as the built-in policy requires.
    let trust = PolicyTrust::new(Policy::builtin().trust()).unwrap();
    let cached = Loader::new(CompileCache::new(cache_dir.path(), runner.engine()));
    cached.load(runner.engine(), &path, &trust).unwrap();
    let mut group = c.benchmark_group("load");
    group.bench_function("from_compile_cache", |b| {
        b.iter(|| cached.load(runner.engine(), &path, &trust).unwrap())
    });
    let uncached = Loader::new(CompileCache::disabled());
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| uncached.load(runner.engine(), &path, &trust).unwrap())
    });
    group.finish();
}

criterion_group!(benches, calls, loads);
criterion_main!(benches);

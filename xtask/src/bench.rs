//! The criterion benchmarks, and the ratios they are reported as.

use std::path::Path;

use serde_json::Value;

use crate::workspace::workspace;
use crate::{Result, cargo, models, plugins};

pub fn run(extra: &[String]) -> Result<()> {
    let plugins = plugins::build()?;
    let models = models::fetch()?;
    crate::run(
        cargo()
            .env("BATON_PLUGIN_DIR", &plugins)
            .env("BATON_MODELS", &models)
            .args(["bench", "-p", "baton", "--benches"])
            .args(extra),
    )?;
    report_ratios(&workspace()?.target.join("criterion"))
}

/// Benchmarks reported as a ratio to a baseline measured in the same run: (name, baseline).
const RATIOS: &[(&str, &str)] = &[
    ("call/baton_sandbox", "call/raw_wasmtime_pooling"),
    ("call/baton_sandbox", "call/raw_wasmtime"),
    ("call/baton_call_tool", "call/raw_wasmtime_pooling"),
    ("call/pure_cache_hit", "call/baton_call_tool"),
    ("load/from_compile_cache", "load/compile"),
    ("journaled_call/recorded", "journaled_call/unrecorded"),
    ("journal/record_call", "journaled_call/unrecorded"),
    ("replay/live", "replay/replayed"),
    ("get/sandboxed", "get/native_reqwest"),
    ("verify/detached_200k", "verify/sha256_200k"),
    ("ledger/reserve_commit", "ledger/mutex_baseline"),
    ("llm_call/gate", "llm_call/native_reqwest"),
    ("schedule/run_64_steps", "schedule/call_64_times"),
    ("fanout/baton_p8", "fanout/native_p8"),
    ("fanout/baton_p32", "fanout/native_p32"),
    ("mcp_call/stdio", "mcp_call/library"),
    ("gateway/miss", "gateway/direct"),
    ("oci/cached_digest", "oci/file"),
    ("oci/cached_tag", "oci/file"),
    ("warm_call/python_greet", "warm_call/rust_calc"),
    ("pg_journal/append_10k", "pg_journal/sqlite_append_10k"),
    (
        "pg_log/append_checkpoint_1m",
        "pg_log/sqlite_append_checkpoint_1m",
    ),
    ("reservation/postgres", "reservation/local"),
    ("dispatch/nats_200", "dispatch/local_200"),
    ("steps_1000/workers_1", "steps_1000/local"),
    ("steps_1000/workers_2", "steps_1000/local"),
    ("steps_1000/workers_4", "steps_1000/local"),
    ("provenance/sign_statement", "provenance/sha256_statement"),
    (
        "provenance/log_append_checkpoint",
        "provenance/sign_statement",
    ),
    (
        "provenance/log_append_checkpoint_1m",
        "provenance/log_append_checkpoint",
    ),
    ("provenance/verify_inclusion_1m", "provenance/leaf_hash"),
];

/// Prints the criterion medians of the ratio pairs that were measured.
fn report_ratios(criterion: &Path) -> Result<()> {
    let median = |name: &str| -> Option<f64> {
        let path = criterion.join(name).join("new/estimates.json");
        let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        estimates["median"]["point_estimate"].as_f64()
    };
    println!("\nmedians (ns) and ratios:");
    for (name, baseline) in RATIOS {
        if let (Some(m), Some(b)) = (median(name), median(baseline)) {
            println!(
                "  {name:<26} {m:>12.0}  / {baseline:<26} {b:>12.0}  = {:.3}",
                m / b
            );
        }
    }
    Ok(())
}

//! `cargo xtask agent-eval`: how often the react agent of `examples/agent/` completes the
//! tasks of `examples/agent/tasks.jsonl` on the local model, with its replies held to the
//! protocol's pattern and without. Each task is one `baton run`; a run completes when the
//! model finished with an answer, and is right when the answer contains the expected value.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::workspace::workspace;
use crate::{Result, cargo, models, plugins};

/// What one run came to.
#[derive(Default)]
struct Tally {
    runs: usize,
    completed: usize,
    right: usize,
    protocol_errors: usize,
    decisions: u64,
}

pub fn run() -> Result<()> {
    let plugins = plugins::build()?;
    let models = models::fetch()?;
    let ws = workspace()?;
    eprintln!("xtask: building baton");
    crate::run(cargo().args(["build", "--quiet", "-p", "baton"]))?;
    let baton = ws.target.join("debug").join("baton");
    let example = ws.root.join("examples").join("agent");
    let tasks = std::fs::read_to_string(example.join("tasks.jsonl"))
        .map_err(|e| format!("cannot read examples/agent/tasks.jsonl: {e}"))?;
    let tasks: Vec<Value> = tasks
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("tasks.jsonl: {e}")))
        .collect::<Result<_>>()?;
    let out = ws.target.join("agent-eval");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {out:?}: {e}"))?;
    let workflow = std::fs::read_to_string(example.join("workflow.toml"))
        .map_err(|e| format!("cannot read examples/agent/workflow.toml: {e}"))?
        .replace("../../target/plugins", &plugins.display().to_string())
        .replace(
            "\"policy.toml\"",
            &format!("{:?}", example.join("policy.toml")),
        );
    let mut tallies = Vec::new();
    for constrained in [true, false] {
        let flow = out.join(format!("constrained-{constrained}.toml"));
        let text = format!("{workflow}constrained = {constrained}\n");
        std::fs::write(&flow, text).map_err(|e| format!("cannot write {flow:?}: {e}"))?;
        let mut tally = Tally::default();
        for (i, task) in tasks.iter().enumerate() {
            let result = run_task(&baton, &plugins, &models, &flow, &out, task)?;
            let answer = result["output"]["answer"].as_str().unwrap_or_default();
            let expect = task["expect"].as_str().unwrap_or_default();
            let reason = result["reason"].as_str().unwrap_or_default();
            tally.runs += 1;
            tally.decisions += result["totals"]["decisions"].as_u64().unwrap_or(0);
            if result["status"] == "succeeded" {
                tally.completed += 1;
                tally.right += usize::from(answer.contains(expect));
            }
            tally.protocol_errors += usize::from(reason.contains("broke the reply protocol"));
            eprintln!(
                "xtask: [{}] task {}: {} {:?}{}",
                if constrained { "pattern" } else { "free" },
                i + 1,
                result["status"].as_str().unwrap_or("?"),
                answer,
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            );
        }
        tallies.push((constrained, tally));
    }
    println!("replies      runs  completed  right  protocol errors  decisions per run");
    for (constrained, t) in tallies {
        let share = |n: usize| n as f64 * 100.0 / t.runs.max(1) as f64;
        println!(
            "{:<11} {:>5}  {:>8.0}%  {:>4.0}%  {:>14.0}%  {:>17.1}",
            if constrained { "pattern" } else { "free" },
            t.runs,
            share(t.completed),
            share(t.right),
            share(t.protocol_errors),
            t.decisions as f64 / t.runs.max(1) as f64
        );
    }
    Ok(())
}

/// Runs `flow` on `task`; returns the run's result document.
fn run_task(
    baton: &Path,
    plugins: &Path,
    models: &Path,
    flow: &Path,
    out: &Path,
    task: &Value,
) -> Result<Value> {
    let result = out.join("result.json");
    let _ = std::fs::remove_file(&result);
    Command::new(baton)
        .args(["run", &flow.display().to_string(), "--task"])
        .arg(task["task"].as_str().unwrap_or_default())
        .args(["--output", &result.display().to_string()])
        .env("BATON_POLICY", plugins.join("trust.toml"))
        .env("BATON_MODELS", models)
        .env("BATON_STORE", out.join("journal.db"))
        .output()
        .map_err(|e| format!("cannot run {baton:?}: {e}"))?;
    let text = std::fs::read_to_string(&result)
        .map_err(|e| format!("baton run wrote no result for {task}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("the result for {task}: {e}"))
}

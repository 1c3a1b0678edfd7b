//! The `baton` command: parse the arguments, run, map the outcome to an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    baton::llm::pin_thread_count();
    let args = cli::Cli::parse();
    if !args.serves() {
        end_on_closed_pipe();
    }
    let telemetry =
        match cli::telemetry::init(args.global.verbose, args.global.otlp_endpoint.as_deref()) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(baton::exit::BAD_INPUT);
            }
        };
    let done = cli::run(args);
    drop(telemetry);
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // An error may quote guest text (a tool's message, its stderr): escape sequences
            // in it are shown, never obeyed by the terminal.
            eprintln!(
                "error: {}",
                baton::text::escape_controls(&error.to_string())
            );
            ExitCode::from(error.exit_code())
        }
    }
}

/// A command whose output is piped into `head` ends quietly when the reader stops, as Unix
/// tools do: SIGPIPE ends it. Rust ignores the signal by default, which turns a closed pipe
/// into a write error and `println!` into a panic. Servers keep ignoring it: a client that
/// goes away must not end them.
#[cfg(unix)]
fn end_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default, before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn end_on_closed_pipe() {}

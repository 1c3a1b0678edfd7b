//! The `baton` command: parse the arguments, run, map the outcome to an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    baton::llm::pin_thread_count();
    let args = cli::Cli::parse();
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
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

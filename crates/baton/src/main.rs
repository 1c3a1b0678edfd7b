//! The `baton` command: parse the arguments, run, map the outcome to an exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    baton::llm::pin_thread_count();
    let args = cli::Cli::parse();
    cli::init_logging(args.global.verbose);
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

//! `baton replay`: re-run a recorded run from its bundle, offline, and compare every event.

use std::path::PathBuf;

use std::sync::Arc;

use baton::orchestrator::progress::Quiet;
use baton::orchestrator::{ForkChange, Replayed};
use baton::{Error, Host};
use clap::Args;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The bundle (written by `baton call --bundle` or `baton trace export`)
    bundle: PathBuf,
    /// Replay with this component instead of the recorded one of its name (e.g. a new version
    /// of it): its digest and signature differ as expected, and the replay says where its
    /// behaviour first differs, or "identical behaviour"
    #[arg(long, value_name = "WASM")]
    component: Option<PathBuf>,
    /// Fork the recorded run at step ID: replay it exactly up to that step, then go on live
    /// from there (with --input, or with --component from that step on), as a new run whose
    /// journal names this one and the step
    #[arg(long, value_name = "ID")]
    fork_at: Option<String>,
    /// The forked step's input (JSON), instead of the recorded one
    #[arg(long, value_name = "JSON", requires = "fork_at")]
    input: Option<String>,
    /// The forked step's result (a JSON file), instead of running it: what the rest of the
    /// run does had the step answered this
    #[arg(
        long,
        value_name = "FILE",
        requires = "fork_at",
        conflicts_with = "input"
    )]
    response: Option<PathBuf>,
    /// Where to write the fork's bundle
    #[arg(long = "bundle", value_name = "FILE", requires = "fork_at")]
    fork_bundle: Option<PathBuf>,
}

impl ReplayArgs {
    /// Whether it forks the run rather than replaying it.
    pub fn forks(&self) -> bool {
        self.fork_at.is_some()
    }
}

pub async fn run(host: &Host, args: ReplayArgs) -> Result<(), Error> {
    if let Some(at) = &args.fork_at {
        return fork(host, &args, at).await;
    }
    let report = baton::orchestrator::replay(host, &args.bundle, args.component.as_deref()).await?;
    match &report.replaced {
        // The digest (and the signature) differ as expected; what is compared is behaviour.
        Some(replaced) => {
            println!("replaced: {replaced}");
            println!(
                "identical behaviour: {} events, root {}",
                report.events, report.root
            );
        }
        None => println!("identical: {} events, root {}", report.events, report.root),
    }
    match &report.outcome {
        Replayed::Calls(results) => {
            for result in results {
                match result {
                    Ok(call) => tracing::info!("replayed output: {}", call.output),
                    Err(e) => tracing::info!("replayed the recorded failure: {e}"),
                }
            }
        }
        Replayed::Models(replies) => {
            for reply in replies {
                tracing::info!("replayed answer: {reply:?}");
            }
        }
        Replayed::Run(result) => tracing::info!(
            "replayed run: {}, {} steps, output {}",
            result.status.name(),
            result.steps.len(),
            result
                .output
                .as_ref()
                .map_or("none".into(), |o| o.to_string())
        ),
    }
    Ok(())
}

/// `--fork-at`: the fork's steps as they ended, and its bundle.
async fn fork(host: &Host, args: &ReplayArgs, at: &str) -> Result<(), Error> {
    let input = args
        .input
        .as_deref()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| Error::InputNotJson {
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let output = args
        .response
        .as_deref()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InputUnreadable(format!("cannot read {}: {e}", path.display()))
            })?;
            serde_json::from_str(&text).map_err(|e| Error::InputNotJson {
                reason: format!("{}: {e}", path.display()),
            })
        })
        .transpose()?;
    let change = ForkChange {
        input,
        output,
        component: args.component.as_deref(),
    };
    let forked = baton::orchestrator::fork(host, &args.bundle, at, change, Arc::new(Quiet)).await?;
    let result = &forked.result;
    println!(
        "fork {} of {} at step '{at}': {}",
        result.run,
        args.bundle.display(),
        result.status.name()
    );
    for step in &result.steps {
        let outcome = match (&step.output, &step.error) {
            (Some(output), _) => output.to_string(),
            (None, Some(error)) => error.clone(),
            (None, None) => String::new(),
        };
        println!("  {:<16} {:<12} {outcome}", step.id, step.tool);
    }
    if let (Some(bundle), Some(run), Some(journal)) =
        (&args.fork_bundle, &forked.run, host.journal())
    {
        host.settle();
        journal.export(&run.id, bundle)?;
        println!("bundle written to {}", bundle.display());
    }
    Ok(())
}

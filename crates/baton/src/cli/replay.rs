//! `baton replay`: re-run a recorded run from its bundle, offline, and compare every event.

use std::path::PathBuf;

use baton::orchestrator::Replayed;
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
}

pub async fn run(host: &Host, args: ReplayArgs) -> Result<(), Error> {
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

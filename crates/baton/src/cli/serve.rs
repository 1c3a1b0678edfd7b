//! `baton serve`: the runs API, the OpenAI-compatible gateway and metrics over HTTP, for
//! the keys of `baton keys`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton::journal::store::StoreUrl;
use baton::policy::values;
use baton::serve::{RunLimits, ServeOptions};
use baton::{Error, Host};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Failure;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: PORT (on 127.0.0.1) or HOST:PORT
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = super::mcp::listen_address,
          value_name = "ADDRESS")]
    listen: SocketAddr,
    /// The largest request body accepted, e.g. "4 MiB"
    #[arg(long, default_value = "4 MiB", value_parser = values::output, value_name = "SIZE")]
    max_body: u64,
    /// A directory of workflow files runs may name; may be repeated
    #[arg(long, value_name = "DIR")]
    workflows: Vec<PathBuf>,
    /// A directory inside which runs may name planners, tools and prompts by path; may be
    /// repeated
    #[arg(long, value_name = "DIR")]
    components: Vec<PathBuf>,
    /// Runs that run at once
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    max_runs: u16,
    /// Runs that may wait for a slot; one more is refused (429)
    #[arg(long, default_value_t = 64, value_name = "N")]
    queue: usize,
    /// How long a stopping server waits for runs in flight before leaving them interrupted
    /// (to resume later)
    #[arg(long, default_value = "30s", value_parser = baton_core::limits::duration,
          value_name = "DURATION")]
    grace: Duration,
    /// Run the runs' steps on the workers of this NATS server (JetStream); the runs and
    /// their budgets are kept in the --store they share (postgres://…)
    #[arg(long, env = "BATON_NATS", value_name = "URL")]
    nats: Option<String>,
    #[command(flatten)]
    pub limits: super::LimitArgs,
    #[command(flatten)]
    pub budget: super::BudgetArg,
}

pub async fn run(
    host: Host,
    (store, local): (&StoreUrl, &Path),
    args: ServeArgs,
) -> Result<(), Failure> {
    let dispatch = match &args.nats {
        Some(url) => Some(super::run::dispatch(url, store).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Failure::Usage(format!(
                "cannot listen on {}: {e}; choose another address with --listen",
                args.listen
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Engine(format!("the listening socket: {e}")))?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        super::mcp::stopped().await;
        eprintln!("baton serve: stopping (finishing the requests in flight)");
        stop.cancel();
    });
    let options = ServeOptions {
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        runs: RunLimits {
            max_runs: args.max_runs.into(),
            queue: args.queue,
        },
        workflows: args.workflows,
        components: args.components,
        grace: args.grace,
        dispatch,
    };
    let ready = || eprintln!("baton serve: listening on http://{address}");
    baton::serve::serve(Arc::new(host), local, options, listener, ready, shutdown)
        .await
        .map_err(Failure::Usage)
}

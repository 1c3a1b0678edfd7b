//! `baton worker`: run the steps of runs other hosts orchestrate, pulled from NATS JetStream,
//! recorded in the shared PostgreSQL store.

use std::sync::Arc;
use std::time::Duration;

use baton::Host;
use baton::cluster::{Cluster, WorkerOptions};
use baton::journal::store::StoreUrl;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::Failure;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The NATS server (with JetStream) the steps come from, e.g. nats://127.0.0.1:4222
    #[arg(long, env = "BATON_NATS", value_name = "URL")]
    nats: String,
    /// Steps run at once [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    /// The worker's name, as it advertises itself [default: HOST-PID]
    #[arg(long)]
    name: Option<String>,
    /// How long a step may go without a sign of life from its worker before another worker
    /// takes it (a running step renews it; used when the cluster's queue is first made)
    #[arg(long, default_value = "30s", value_parser = baton_core::limits::duration,
          value_name = "DURATION")]
    ack_wait: Duration,
    #[command(flatten)]
    pub limits: super::LimitArgs,
}

pub async fn run(host: Host, store: &StoreUrl, args: WorkerArgs) -> Result<(), Failure> {
    let capacity = args
        .capacity
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if capacity == 0 {
        return Err(Failure::Usage(
            "--capacity 0 would run nothing; give a worker room for at least one step".into(),
        ));
    }
    if args.ack_wait < Duration::from_secs(1) {
        return Err(Failure::Usage(
            "--ack-wait must be at least 1s: a running step renews it at a third of it".into(),
        ));
    }
    let cluster = Cluster::connect(&args.nats, store, args.ack_wait)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        super::mcp::stopped().await;
        eprintln!("baton worker: stopping (finishing the steps in flight)");
        stopping.cancel();
    });
    let options = WorkerOptions {
        name,
        capacity,
        ack_wait: args.ack_wait,
    };
    baton::cluster::work(cluster, Arc::new(host), options, stop)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))
}

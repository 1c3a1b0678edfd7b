//! `baton serve`: the OpenAI-compatible gateway and metrics over HTTP, for the keys of
//! `baton keys`.

use std::net::SocketAddr;
use std::sync::Arc;

use baton::policy::values;
use baton::serve::ServeOptions;
use baton::serve::keys::Keys;
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
}

pub async fn run(host: Host, store: &std::path::Path, args: ServeArgs) -> Result<(), Failure> {
    let keys = Keys::beside(store).map_err(|e| Failure::Usage(e.to_string()))?;
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
    eprintln!("baton serve: listening on http://{address}");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        super::mcp::stopped().await;
        eprintln!("baton serve: stopping (finishing the requests in flight)");
        stop.cancel();
    });
    let options = ServeOptions {
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
    };
    baton::serve::serve(Arc::new(host), keys, options, listener, shutdown)
        .await
        .map_err(Failure::Usage)
}

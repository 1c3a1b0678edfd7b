//! `baton mcp`: serve the tools in directories to MCP clients over standard input and output.

use std::path::PathBuf;
use std::sync::Arc;

use baton::mcp::Catalog;
use baton::{Error, Host};
use clap::Args;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// A directory of tool components (.wasm) to serve; may be repeated. Components that do
    /// not verify are left out (and said why on standard error)
    #[arg(long, value_name = "DIR", required = true)]
    tools: Vec<PathBuf>,
}

pub async fn run(mut host: Host, args: McpArgs) -> Result<(), Error> {
    let (catalog, left_out) = Catalog::load(&mut host, &args.tools).await?;
    for component in &left_out {
        eprintln!("not served: {component}");
    }
    // Standard output is the protocol's: everything else goes to standard error.
    let record = baton::mcp::serve_stdio(Arc::new(host), catalog)
        .await
        .map_err(|e| Error::InputUnreadable(format!("the MCP connection: {e}")))?;
    if let Some(run) = record {
        tracing::info!("session recorded as run {} (root {})", run.id, run.root);
    }
    Ok(())
}

//! `baton mcp`: serve the tools in directories to MCP clients, over standard input and output
//! or over Streamable HTTP.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use baton::mcp::catalog::{DEFAULT_TOOL_SEARCH_TOP_K, default_prompt_budget};
use baton::mcp::search::ToolSearch;
use baton::mcp::{Catalog, HttpOptions};
use baton::policy::llm::DEFAULT_EMBEDDING_MODEL;
use baton::runtime::bindings::types::TokenBudget;
use baton::{Error, Host};
use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// A directory of tool and prompt components (.wasm) to serve, or an oci:// reference to
    /// one; may be repeated, and directories are watched. Components that do not verify are
    /// left out (and said why on standard error)
    #[arg(long, value_name = "DIR", required = true)]
    tools: Vec<PathBuf>,
    /// Serve Streamable HTTP at http://ADDR/mcp instead of standard input and output; a bare
    /// port listens on 127.0.0.1
    #[arg(long, value_name = "ADDR", value_parser = listen_address)]
    http: Option<SocketAddr>,
    /// A browser origin (scheme://host:port) allowed to call over HTTP; may be repeated.
    /// Without one, requests that carry an Origin are refused
    #[arg(long, value_name = "ORIGIN", requires = "http")]
    allow_origin: Vec<String>,
    /// Require every HTTP request to carry `Authorization: Bearer KEY`, with KEY read from
    /// this environment variable
    #[arg(long, value_name = "NAME", requires = "http")]
    api_key_env: Option<String>,
    /// The model whose tokenizer counts the tokens of a rendered prompt
    #[arg(long, value_name = "MODEL", default_value_t = default_prompt_budget().model)]
    prompt_model: String,
    /// How many tokens a rendered prompt may use
    #[arg(long, value_name = "N", default_value_t = default_prompt_budget().max_tokens)]
    prompt_tokens: u32,
    /// With more tools than this, list only `search_tools` (and the tools it finds); 0 lists
    /// every tool
    #[arg(long, value_name = "K", default_value_t = DEFAULT_TOOL_SEARCH_TOP_K)]
    tool_search_top_k: usize,
    /// The embedding model tools are searched with
    #[arg(long, value_name = "MODEL", default_value = DEFAULT_EMBEDDING_MODEL)]
    embedding_model: String,
    #[command(flatten)]
    pub limits: super::LimitArgs,
    #[command(flatten)]
    pub budget: super::BudgetArg,
}

impl McpArgs {
    /// Whether the server speaks over standard input and output (not HTTP).
    pub fn over_stdio(&self) -> bool {
        self.http.is_none()
    }
}

/// `PORT` (on 127.0.0.1) or `HOST:PORT`.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    text.parse().map_err(|_| {
        format!("'{text}' is not an address to listen on: give PORT or HOST:PORT (127.0.0.1:8080)")
    })
}

pub async fn run(host: Host, args: McpArgs) -> Result<(), Failure> {
    let api_key = match &args.api_key_env {
        Some(name) => Some(std::env::var(name).map_err(|_| {
            Failure::Usage(format!(
                "--api-key-env {name}: the environment variable {name} is not set; set it to \
                 the key clients must send"
            ))
        })?),
        None => None,
    };
    // A pulled component is served from its directory in the cache, which holds only it.
    let mut dirs = Vec::with_capacity(args.tools.len());
    for path in args.tools {
        match path.to_str().filter(|_| baton::source::is_oci(&path)) {
            Some(reference) => {
                let pulled = host.pull(reference).await?;
                dirs.push(pulled.path.parent().expect("a cached file").to_owned());
            }
            None => dirs.push(path),
        }
    }
    let (catalog, left_out) = Catalog::load(&host, &dirs).await?;
    let catalog = catalog
        .with_prompt_budget(TokenBudget {
            model: args.prompt_model,
            max_tokens: args.prompt_tokens,
        })
        .with_tool_search(ToolSearch::new(
            args.tool_search_top_k,
            args.embedding_model,
        ));
    for component in &left_out {
        eprintln!("not served: {component}");
    }
    let host = Arc::new(host);
    let Some(listen) = args.http else {
        // Standard output is the protocol's: everything else goes to standard error.
        let record = baton::mcp::serve_stdio(host, catalog)
            .await
            .map_err(|e| Error::InputUnreadable(format!("the MCP connection: {e}")))?;
        if let Some(run) = record {
            tracing::info!(
                "session recorded as run {} (root {})",
                run.id,
                run.root.get().map_err(baton::Error::from)?
            );
        }
        return Ok(());
    };
    let options = HttpOptions {
        listen,
        allowed_origins: args.allow_origin,
        api_key,
    };
    let listening = |address| eprintln!("baton mcp: serving MCP at http://{address}/mcp");
    baton::mcp::serve_http(host, catalog, options, listening, stopped())
        .await
        .map_err(|e| Failure::Usage(format!("cannot serve MCP on {listen}: {e}")))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

//! The protocol: `tools/list` and `tools/call` over the official Rust SDK, with the
//! protocol version negotiated as the specification says (rmcp offers every version it
//! knows, the newest first).

use std::sync::Arc;

use baton_runtime::Host;
use baton_runtime::run::RunRecord;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::catalog::Catalog;
use crate::progress;
use crate::session::Session;

/// An MCP server over one session.
pub struct Server {
    catalog: Arc<Catalog>,
    session: Arc<Session>,
}

impl Server {
    /// A server for one MCP session, offering `catalog`.
    pub fn new(host: Arc<Host>, catalog: Arc<Catalog>) -> Self {
        let session = Session::new(host, catalog.plugins().cloned().collect());
        Self {
            catalog,
            session: Arc::new(session),
        }
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(
                "Baton's tools: WebAssembly components, each signature-checked before it is \
                 loaded, run in a sandbox under a policy, every call journaled.",
            );
        config.server_info = Implementation::new("baton", env!("CARGO_PKG_VERSION"));
        config
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult {
            tools: self.catalog.definitions(),
            ..ListToolsResult::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(entry) = self.catalog.get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named '{}' is served", request.name),
                None,
            ));
        };
        let input = serde_json::Value::Object(request.arguments.unwrap_or_default()).to_string();
        // `notifications/cancelled` cancels the context's token, which stops the sandbox.
        let call = self.session.call(&entry.plugin, &input, context.ct.clone());
        let token = context.meta.get_progress_token();
        let result = match progress::reported(call, token, &context.peer).await {
            Ok(call) => CallToolResult::structured(call.output),
            // The tool's failure, a schema violation or a limit: the caller reads Baton's
            // one-line message, and the server goes on serving.
            Err(error) => CallToolResult::error(vec![ContentBlock::text(error.to_string())]),
        };
        Ok(result.into())
    }
}

/// Serves `catalog` from `host` over standard input and output until the client closes
/// them; returns the session's run, when the host journals.
pub async fn serve_stdio(
    host: Arc<Host>,
    catalog: Catalog,
) -> Result<Option<RunRecord>, std::io::Error> {
    let server = Server::new(host, Arc::new(catalog));
    let session = server.session.clone();
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    let ended = running.waiting().await;
    let record = session.end();
    ended.map_err(std::io::Error::other)?;
    Ok(record)
}

//! The protocol: `tools/list` and `tools/call` over the official Rust SDK, with the
//! protocol version negotiated as the specification says (rmcp offers every version it
//! knows, the newest first).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use baton_runtime::Host;
use baton_runtime::run::RunRecord;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, PromptMessage, Role, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::catalog::Catalog;
use crate::definition;
use crate::progress;
use crate::search;
use crate::session::Session;
use crate::watch::{Listeners, watch};

/// An MCP server over one session.
pub struct Server {
    host: Arc<Host>,
    catalog: Arc<Catalog>,
    session: Arc<Session>,
    listeners: Arc<Listeners>,
    /// The tools `search_tools` has found in this session, listed with it.
    found: Mutex<BTreeSet<String>>,
}

impl Server {
    /// A server for one MCP session, offering `catalog`; once the client has initialized
    /// the session, it is one of `listeners`, told when the tools change.
    pub fn new(host: Arc<Host>, catalog: Arc<Catalog>, listeners: Arc<Listeners>) -> Self {
        let session = Session::new(host.clone(), catalog.clone());
        Self {
            host,
            catalog,
            session: Arc::new(session),
            listeners,
            found: Mutex::default(),
        }
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut config = ServerConfig::new(capabilities).with_instructions(
            "Baton's tools: WebAssembly components, each signature-checked before it is \
                 loaded, run in a sandbox under a policy, every call journaled.",
        );
        config.server_info = Implementation::new("baton", env!("CARGO_PKG_VERSION"));
        config
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.listeners.add(context.peer);
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.catalog.definitions();
        let search = self.catalog.search();
        if search.applies(tools.len()) {
            let found = self.found();
            tools.retain(|tool| found.contains(tool.name.as_ref()));
            tools.insert(0, search.definition());
        }
        Ok(ListToolsResult {
            tools,
            ..ListToolsResult::default()
        })
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult {
            prompts: self.catalog.prompt_definitions(),
            ..ListPromptsResult::default()
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let Some(entry) = self.catalog.prompt(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no prompt named '{}' is served", request.name),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        let arguments_declared = entry.definition.arguments.iter().flatten();
        if let Some(missing) = arguments_declared
            .filter(|a| a.required == Some(true) && !arguments.contains_key(&a.name))
            .map(|a| a.name.as_str())
            .next()
        {
            return Err(ErrorData::invalid_params(
                format!("prompt '{}' needs the argument '{missing}'", request.name),
                None,
            ));
        }
        let vars = definition::vars(&entry.plugin, &arguments);
        let budget = self.catalog.prompt_budget();
        let rendered = self
            .session
            .render(&entry.plugin, &vars, budget, context.ct.clone())
            .await
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let messages = rendered.output.as_array().into_iter().flatten();
        let messages = messages.map(|message| {
            // MCP prompts speak as the user or the assistant; system and tool turns are
            // given to the client as the user's.
            let role = match message["role"].as_str() {
                Some("assistant") => Role::Assistant,
                _ => Role::User,
            };
            PromptMessage::new_text(role, message["content"].as_str().unwrap_or_default())
        });
        let description = entry.definition.description.clone().unwrap_or_default();
        Ok(GetPromptResult::new(messages.collect())
            .with_description(description)
            .into())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let search = self.catalog.search();
        if request.name == search::NAME && search.applies(self.catalog.tool_count()) {
            return Ok(self.search(request, context).await.into());
        }
        // The tool as served now (the directory may have changed since the list).
        let Some(entry) = self.catalog.tool(&request.name) else {
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

impl Server {
    fn found(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.found.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `search_tools`: the tools closest to the query, now listed for this session too (and
    /// the client told, when that changed the list).
    async fn search(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let arguments = request.arguments.unwrap_or_default();
        let tools = self.catalog.definitions();
        let search = self.catalog.search();
        let found = match search.search(&self.host, &arguments, tools).await {
            Ok(found) => found,
            Err(message) => return CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        let added = {
            let mut listed = self.found();
            let before = listed.len();
            listed.extend(found.iter().map(|tool| tool.name.to_string()));
            listed.len() > before
        };
        if added && let Err(e) = context.peer.notify_tool_list_changed().await {
            tracing::debug!("the client was not told the tools changed: {e}");
        }
        let found: Vec<serde_json::Value> = found
            .iter()
            .map(|tool| {
                serde_json::json!({
                    "name": tool.name,
                    "description": tool.description,
                    "inputSchema": *tool.input_schema,
                })
            })
            .collect();
        CallToolResult::structured(serde_json::json!({ "tools": found }))
    }
}

/// Serves `catalog` from `host` over standard input and output until the client closes
/// them, watching its directories; returns the session's run, when the host journals.
pub async fn serve_stdio(
    host: Arc<Host>,
    catalog: Catalog,
) -> Result<Option<RunRecord>, std::io::Error> {
    let catalog = Arc::new(catalog);
    let listeners = Arc::new(Listeners::default());
    let _watching =
        watch(host.clone(), catalog.clone(), listeners.clone()).map_err(std::io::Error::other)?;
    let server = Server::new(host, catalog, listeners);
    let session = server.session.clone();
    let running = server
        // Pipes (as clients start servers) are driven by the reactor, not the blocking pool:
        // a message costs no hand-off to another thread.
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(std::io::Error::other)?;
    let ended = running.waiting().await;
    let record = session.end();
    ended.map_err(std::io::Error::other)?;
    Ok(record)
}

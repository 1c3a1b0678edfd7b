//! `search_tools`: a client with hundreds of tools need not have them all in its context.
//! With more tools than `--tool-search-top-k`, `tools/list` offers `search_tools` (and the
//! tools the session has found with it) instead of every tool; a search returns the tools
//! whose descriptions are closest in meaning to the query (cosine of embeddings by the
//! embedding model, as `baton run` chooses a planner's tools), adds them to the session's
//! list and tells the client the list changed. Any served tool can be called by name.
//!
//! A search is not journaled: like `tools/list`, it runs no component and only shapes what
//! the client sees; the calls it leads to are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use baton_llm::embedding::closest;
use baton_runtime::Host;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// The tool's name.
pub const NAME: &str = "search_tools";

/// How tools are searched.
pub struct ToolSearch {
    /// Search is offered when more tools than this are served (0: never).
    pub top_k: usize,
    /// The embedding model.
    pub model: String,
    /// The embeddings of the tools' texts, computed once each.
    vectors: Mutex<HashMap<String, Arc<[f32]>>>,
}

impl ToolSearch {
    pub fn new(top_k: usize, model: String) -> Self {
        Self {
            top_k,
            model,
            vectors: Mutex::default(),
        }
    }

    /// Whether `tools` tools are too many to list.
    pub fn applies(&self, tools: usize) -> bool {
        self.top_k > 0 && tools > self.top_k
    }

    /// How MCP clients see `search_tools`.
    pub fn definition(&self) -> Tool {
        let input = json!({
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "description": "What the tool should do, in a few words",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "description": format!("How many tools to return (default {})", self.top_k),
                },
            },
            "required": ["query"],
        });
        let output = json!({
            "type": "object",
            "properties": {"tools": {"type": "array", "items": {"type": "object"}}},
            "required": ["tools"],
        });
        let mut tool = Tool::new(
            NAME,
            "Finds the tools whose descriptions are closest to a query, and adds them to the \
             tool list. Use it first: only the tools it finds are listed.",
            Arc::new(object(input)),
        );
        tool.output_schema = Some(Arc::new(object(output)));
        tool.annotations = Some(ToolAnnotations::new().read_only(true).open_world(false));
        tool
    }

    /// The tools of `tools` closest to the query in `arguments`, closest first.
    pub async fn search(
        &self,
        host: &Host,
        arguments: &JsonObject,
        tools: Vec<Tool>,
    ) -> Result<Vec<Tool>, String> {
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .filter(|q| !q.trim().is_empty())
            .ok_or("search_tools needs a \"query\": what the tool should do, in a few words")?;
        let limit = match arguments.get("limit") {
            None => self.top_k,
            Some(limit) => limit
                .as_u64()
                .filter(|&n| n > 0)
                .ok_or("search_tools' \"limit\" must be a whole number above 0")?
                as usize,
        };
        let texts: Vec<String> = tools.iter().map(text).collect();
        let vectors = self.vectors(host, &texts).await?;
        let query = host
            .llm()
            .embed(&self.model, &[query.to_string()])
            .await
            .map_err(|e| unavailable(&self.model, &e))?;
        let ranked = closest(&query[0], &vectors, limit);
        Ok(ranked.into_iter().map(|i| tools[i].clone()).collect())
    }

    /// The embeddings of `texts`, those not seen before computed now.
    async fn vectors(&self, host: &Host, texts: &[String]) -> Result<Vec<Arc<[f32]>>, String> {
        let missing: Vec<String> = {
            let known = self.known();
            texts
                .iter()
                .filter(|t| !known.contains_key(*t))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let computed = host
                .llm()
                .embed(&self.model, &missing)
                .await
                .map_err(|e| unavailable(&self.model, &e))?;
            let mut known = self.known();
            for (text, vector) in missing.into_iter().zip(computed) {
                known.insert(text, vector.into());
            }
        }
        let known = self.known();
        Ok(texts.iter().map(|t| known[t].clone()).collect())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[f32]>>> {
        self.vectors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a tool is searched by: its name and description.
fn text(tool: &Tool) -> String {
    let description = tool.description.as_deref().unwrap_or_default();
    format!("{}: {description}", tool.name)
}

fn unavailable(model: &str, error: &str) -> String {
    format!(
        "tool search is unavailable: the embedding model '{model}' failed ({error}); name \
         another with --embedding-model"
    )
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("the schemas above are objects"),
    }
}

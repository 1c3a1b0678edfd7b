//! Tool discovery: when more tools are available than `tool_search_top_k`, the planner sees
//! only the k whose descriptions are closest in meaning to the task (cosine of embeddings by
//! the workflow's embedding model; ties go to the name first in order). The embeddings are
//! journaled in the host chain `step:tools:search`, so a replay offers the same tools.

use std::collections::BTreeMap;

use baton_effects::Gate;
use baton_llm::embedding::closest;
use baton_runtime::bindings::types::ToolInfo;
use baton_runtime::models;
use baton_runtime::run::RunContext;

/// The run-chain step name of the search.
pub(super) const SEARCH_STEP: &str = "tools:search";

/// The `k` tools of `tools` closest to `task`, or the first `k` by name (and why) when the
/// embedding model is not available.
pub(super) async fn top_k(
    ctx: &RunContext,
    gate: &dyn Gate,
    model: &str,
    task: &str,
    tools: BTreeMap<String, ToolInfo>,
    k: usize,
) -> (BTreeMap<String, ToolInfo>, Option<String>) {
    let mut texts = vec![task.to_string()];
    texts.extend(
        tools
            .values()
            .map(|t| format!("{}: {}", t.name, t.description)),
    );
    match models::embed(gate, ctx.llm(), model, &texts).await {
        Ok(vectors) => {
            let chosen = closest(&vectors[0], &vectors[1..], k);
            let tools: Vec<(String, ToolInfo)> = tools.into_iter().collect();
            (chosen.into_iter().map(|i| tools[i].clone()).collect(), None)
        }
        Err(e) => {
            let why = format!(
                "tool search is unavailable ({e}); the planner sees the first {k} tools by name"
            );
            (tools.into_iter().take(k).collect(), Some(why))
        }
    }
}

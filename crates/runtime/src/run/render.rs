//! A prompt rendered as a step of its own (an MCP client's `prompts/get`), rather than by a
//! run's planner. Either way its input, as journaled, is the token budget and the variables,
//! so that a replay renders it again from the record.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::context::{Invocation, RunContext};
use crate::bindings::prompt_api::GuestIndices;
use baton_sandbox::Usage;

use crate::bindings::types::{Message, Role, TokenBudget, ToolError};
use crate::error::Error;
use crate::plugin::ToolCall;

/// The input a render is journaled with: the budget, and the variables (JSON text).
pub fn render_input(vars: &str, budget: &TokenBudget) -> String {
    json!({
        "budget": {"max_tokens": budget.max_tokens, "model": budget.model},
        "vars": vars,
    })
    .to_string()
}

/// The variables and the budget of a render's journaled input.
fn parse_render_input(input: &str) -> Option<(String, TokenBudget)> {
    let input: Value = serde_json::from_str(input).ok()?;
    let budget = &input["budget"];
    let budget = TokenBudget {
        model: budget["model"].as_str()?.to_string(),
        max_tokens: u32::try_from(budget["max_tokens"].as_u64()?).ok()?,
    };
    Some((input["vars"].as_str()?.to_string(), budget))
}

impl RunContext {
    /// The prompt of `invocation` rendered (its input from [`render_input`]): the messages,
    /// as a JSON array of `{role, content}`.
    pub(super) async fn render_step(
        self: &Arc<Self>,
        invocation: Invocation<'_>,
        entry: &GuestIndices,
    ) -> Result<ToolCall, Error> {
        let name = invocation.plugin.name().to_string();
        let (vars, budget) =
            parse_render_input(invocation.input).ok_or_else(|| Error::InputNotJson {
                reason: format!(
                    "rendering prompt '{name}' takes {{\"budget\": {{\"model\", \"max_tokens\"}}, \
                     \"vars\": TEXT}}"
                ),
            })?;
        let (output, usage) = self
            .render_with(invocation, entry, &vars, &budget, &OnceLock::new())
            .await?;
        let output = output.map_err(|error| Error::ToolFailed { tool: name, error })?;
        let output = serde_json::from_str(&output).expect("messages are written as JSON");
        Ok(ToolCall { output, usage })
    }

    /// The prompt of `invocation` (whose entry is `entry`) rendered with `vars` within
    /// `budget`, sandboxed and journaled: the messages as JSON text (and themselves in
    /// `rendered`), or the prompt's error.
    pub(super) async fn render_with(
        self: &Arc<Self>,
        invocation: Invocation<'_>,
        entry: &GuestIndices,
        vars: &str,
        budget: &TokenBudget,
        rendered: &OnceLock<Vec<Message>>,
    ) -> Result<(Result<String, ToolError>, Usage), Error> {
        let call = async |store: &mut wasmtime::Store<_>, instance: &_| {
            let messages = entry
                .load(&mut *store, instance)?
                .call_render(&mut *store, vars, budget)
                .await?;
            Ok(messages
                .map(|messages| {
                    let text = messages_json(&messages);
                    let _ = rendered.set(messages);
                    text
                })
                .map_err(ToolError::Host))
        };
        self.invoke_with(invocation, call).await
    }
}

/// Rendered messages as journaled: `[{"role": ..., "content": ...}]`.
fn messages_json(messages: &[Message]) -> String {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            serde_json::json!({"role": role, "content": m.content})
        })
        .collect();
    Value::Array(messages).to_string()
}

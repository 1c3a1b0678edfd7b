//! The `react-prompt` prompt: the messages of a ReAct agent loop (see the `react` planner), rendered
//! within a token budget.
//!
//! The system message states the protocol; the user message holds the task, the tools and
//! the results so far, each after the call that gave it (`step1: CALL calc {...} returned:
//! ...`) when the planner passes the step's input. When everything does not fit the budget,
//! the oldest results go first: the newest results are kept whole as long as they fit, older
//! ones are condensed to their first 80 characters while those fit, and the rest are dropped,
//! with a line saying how many.
//! The system message, the task and the tools are always kept; if they alone do not fit,
//! rendering fails. Tokens are counted with the budget's model (`llm.count-tokens`) when the
//! prompt's policy grants it, and estimated at one token per three bytes otherwise.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/prompt" });

use baton::plugin::llm;
use baton::plugin::types::{Error, Message, Role, TokenBudget};
use exports::baton::plugin::prompt_api::{Guest, PromptInfo};
use serde::Deserialize;
use serde_json::Value;

const SYSTEM: &str = "You are an agent that completes a task by calling tools. Reply with \
exactly one line. To call a tool, reply: CALL <tool name> <JSON input>. When you know the \
answer, reply: FINISH <the answer>.";

const CLOSING: &str =
    "What next? Reply with one line: CALL <tool> <JSON input>, or FINISH <answer>.";

/// The closing once there are results: without it, models call the tool that already
/// answered again.
const CLOSING_AFTER_RESULTS: &str = "If these results answer the task, reply FINISH <the \
answer>; otherwise CALL a tool. Reply with one line.";

const RESULTS: &str = "\n\nResults so far, oldest first:\n";

/// How much of an older result is kept when it is condensed.
const CONDENSED_CHARS: usize = 80;

#[derive(Deserialize)]
struct Vars {
    task: String,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    results: Vec<StepResult>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct StepResult {
    id: String,
    tool: String,
    /// What the step was called with, shown as the protocol's call line when given.
    input: Option<Value>,
    output: Option<Value>,
    error: Option<String>,
}

impl StepResult {
    fn line(&self) -> String {
        let step = match &self.input {
            Some(input) => format!("{}: CALL {} {input}", self.id, self.tool),
            None => format!("{} ({})", self.id, self.tool),
        };
        match (&self.output, &self.error) {
            (Some(output), _) => format!("{step} returned: {output}"),
            (None, error) => format!("{step} failed: {}", error.as_deref().unwrap_or("no output")),
        }
    }
}

const VARS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["task"],
  "properties": {
    "task": {"type": "string"},
    "tools": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    "results": {"type": "array", "items": {"type": "object", "required": ["id", "tool"]}}
  }
}"#;

struct React;

impl Guest for React {
    fn describe() -> PromptInfo {
        PromptInfo {
            name: "react-prompt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The ReAct agent loop's messages: protocol, task, tools and results, \
                          oldest results condensed or dropped first to fit the budget."
                .into(),
            vars_schema: VARS_SCHEMA.into(),
        }
    }

    fn render(vars: String, budget: TokenBudget) -> Result<Vec<Message>, Error> {
        let vars: Vars =
            serde_json::from_str(&vars).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let count = |text: &str| -> u32 {
            llm::count_tokens(&budget.model, text)
                .unwrap_or_else(|_| (text.len() as u32).div_ceil(3))
        };
        let tools: Vec<String> = vars
            .tools
            .iter()
            .map(|t| format!("- {}: {}", t.name, t.description))
            .collect();
        let header = format!("Task: {}\n\nTools:\n{}", vars.task, tools.join("\n"));
        // The lines framing the results count too (with room for any number left out).
        let framing = match vars.results.is_empty() {
            true => 0,
            false => count(RESULTS) + count("(999999 earlier results left out)\n"),
        };
        let closing = match vars.results.is_empty() {
            true => CLOSING,
            false => CLOSING_AFTER_RESULTS,
        };
        let fixed = count(SYSTEM) + count(&header) + count(closing) + framing;
        if fixed > budget.max_tokens {
            return Err(Error::InvalidArgument(format!(
                "the task and the tool list alone need {fixed} tokens, more than the budget of {}",
                budget.max_tokens
            )));
        }
        // Newest first: whole while they fit, then condensed while those fit, then dropped.
        let mut left = budget.max_tokens - fixed;
        let mut kept = Vec::new();
        let mut whole = true;
        for result in vars.results.iter().rev() {
            let full = result.line();
            let cost = count(&full);
            if whole && cost <= left {
                left -= cost;
                kept.push(full);
                continue;
            }
            whole = false;
            let condensed = condense(&full);
            let cost = count(&condensed);
            if cost > left {
                break;
            }
            left -= cost;
            kept.push(condensed);
        }
        let dropped = vars.results.len() - kept.len();
        kept.reverse();
        let mut user = header;
        if !kept.is_empty() || dropped > 0 {
            user.push_str(RESULTS);
            if dropped > 0 {
                user.push_str(&format!("({dropped} earlier results left out)\n"));
            }
            user.push_str(&kept.join("\n"));
        }
        user.push_str("\n\n");
        user.push_str(closing);
        Ok(vec![
            Message {
                role: Role::System,
                content: SYSTEM.into(),
            },
            Message {
                role: Role::User,
                content: user,
            },
        ])
    }
}

/// The first `CONDENSED_CHARS` characters of `line`, marked as cut.
fn condense(line: &str) -> String {
    match line.char_indices().nth(CONDENSED_CHARS) {
        Some((at, _)) => format!("{}… (condensed)", &line[..at]),
        None => line.to_string(),
    }
}

export!(React);

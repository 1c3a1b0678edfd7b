//! The `react` planner: an LLM agent loop. Each decision renders the workflow's prompt (by
//! default the `react-prompt` component, `plugins/prompts/react`) with the task, the tools and
//! the results so far (each with the input that gave it, from `plan.step-input`), within a
//! token budget, asks the model through the host, and reads its one-line reply:
//!
//! - `CALL <tool> <JSON input>`: run that tool next (one step per decision);
//! - `FINISH <answer>`: the run is done, with `{"answer": "..."}`;
//! - anything else breaks the protocol, and the run fails saying how and quoting the reply:
//!   an answer the protocol did not mark as one is not reported as a success.
//!
//! A reply naming a tool that is not offered, or an input that is not a JSON object, breaks
//! the protocol too. So that even a small model keeps to it, replies are asked for held to a
//! pattern (`llm.complete-constrained`): `CALL` followed by an offered tool's name and a
//! one-line JSON input shaped by the tool's input schema, or `FINISH` and one line.
//! Configuration (`[config]`): `model` (default `smollm2`), `max_tokens` per reply (default
//! 128), `prompt` (default `react-prompt`), `context_tokens`, the prompt's budget (default
//! 1024), and `constrained` (default true; false asks without the pattern). Completions are
//! greedy (temperature 0,
//! seed 0), so a run repeats.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/planner" });

use baton::plugin::types::{CompletionRequest, Error, Step, TokenBudget, ToolError, ToolInfo};
use baton::plugin::{llm, plan, prompts};
use exports::baton::plugin::planner_api::{Decision, Guest, PlannerInfo, RunState};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_max_tokens")]
    max_tokens: u32,
    #[serde(default = "default_prompt")]
    prompt: String,
    #[serde(default = "default_context_tokens")]
    context_tokens: u32,
    #[serde(default = "default_constrained")]
    constrained: bool,
}

fn default_model() -> String {
    "smollm2".into()
}
fn default_max_tokens() -> u32 {
    128
}
fn default_prompt() -> String {
    "react-prompt".into()
}
fn default_context_tokens() -> u32 {
    1024
}
fn default_constrained() -> bool {
    true
}

const CONFIG_SCHEMA: &str = r#"{
  "type": ["object", "null"],
  "properties": {
    "model": {"type": "string"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "prompt": {"type": "string"},
    "context_tokens": {"type": "integer", "minimum": 1},
    "constrained": {"type": "boolean"}
  }
}"#;

struct ReactPlanner;

impl Guest for ReactPlanner {
    fn describe() -> PlannerInfo {
        PlannerInfo {
            name: "react".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "An LLM agent loop: the model picks one tool call at a time, sees its \
                          result, and finishes with an answer."
                .into(),
            config_schema: CONFIG_SCHEMA.into(),
        }
    }

    fn next(state: RunState) -> Decision {
        match decide(&state) {
            Ok(decision) => decision,
            Err(reason) => Decision::Fail(reason),
        }
    }
}

fn decide(state: &RunState) -> Result<Decision, String> {
    let config: Config = match state.config.as_str() {
        "null" => serde_json::from_str("{}"),
        text => serde_json::from_str(text),
    }
    .map_err(|e| format!("the workflow's [config] is not a react configuration: {e}"))?;
    // Each result goes with the input that gave it: a model shown only outputs cannot tell
    // whether they answer the task, and asks for the same call again.
    let results: Vec<Value> = state
        .results
        .iter()
        .map(|r| {
            let mut result = match &r.output {
                Ok(output) => json!({
                    "id": r.id,
                    "tool": r.tool,
                    "output": serde_json::from_str::<Value>(output).unwrap_or(Value::Null),
                }),
                Err(error) => json!({"id": r.id, "tool": r.tool, "error": describe(error)}),
            };
            if let Some(input) = plan::step_input(&r.id) {
                result["input"] = serde_json::from_str(&input).unwrap_or(Value::String(input));
            }
            result
        })
        .collect();
    let tools: Vec<Value> = state
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description}))
        .collect();
    let vars = json!({"task": state.task, "tools": tools, "results": results}).to_string();
    let budget = TokenBudget {
        model: config.model.clone(),
        max_tokens: config.context_tokens,
    };
    let messages = prompts::render(&config.prompt, &vars, &budget)
        .map_err(|e| format!("rendering prompt '{}' failed: {}", config.prompt, host(&e)))?;
    let request = CompletionRequest {
        model: config.model.clone(),
        messages,
        max_tokens: config.max_tokens,
        temperature: 0.0,
        stop: Vec::new(),
        seed: Some(0),
        idempotency_key: None,
    };
    let reply = match config.constrained {
        true => llm::complete_constrained(&request, &protocol(&state.tools)),
        false => llm::complete(&request),
    }
    .map_err(|e| format!("model '{}' failed: {}", config.model, host(&e)))?;
    // The protocol is one line: the first line that says something.
    let line = reply.text.lines().map(str::trim).find(|l| !l.is_empty());
    Ok(read_reply(state, line.unwrap_or_default()))
}

/// The reply protocol as a regular expression: `CALL`, an offered tool's name and an input
/// its schema shapes (on one line), or `FINISH` and a line of answer.
fn protocol(tools: &[ToolInfo]) -> String {
    let mut replies: Vec<String> = tools
        .iter()
        .map(|tool| {
            let schema = serde_json::from_str::<Value>(&tool.input_schema).unwrap_or(Value::Null);
            let input = match schema.get("type") {
                Some(t) if t == "object" => json_value(&schema, 2),
                _ => json_object(2),
            };
            format!("CALL {} {input}", regex_syntax::escape(&tool.name))
        })
        .collect();
    replies.push("FINISH [^\\n]+".into());
    replies.join("|")
}

/// A JSON string on one line (escapes but `\u`). A `{{` in it is kept as written: `literal`
/// escapes it before the host reads the input.
const JSON_STRING: &str = r#""([^"\\\x00-\x1f]|\\["\\/bfnrt])*""#;
const JSON_NUMBER: &str = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?";
const JSON_INTEGER: &str = r"-?(0|[1-9][0-9]*)";

/// A JSON value that `schema` describes, written as JSON usually is (`, ` and `: `), nesting
/// at most `depth` more levels. An object lists its required properties in the schema's
/// order; keywords beyond types, properties, items and enums are left to the tool's own
/// validation.
fn json_value(schema: &Value, depth: usize) -> String {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        let choices: Vec<String> = choices
            .iter()
            .map(|c| regex_syntax::escape(&c.to_string()))
            .collect();
        return format!("({})", choices.join("|"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => JSON_STRING.into(),
        Some("integer") => JSON_INTEGER.into(),
        Some("number") => JSON_NUMBER.into(),
        Some("boolean") => "(true|false)".into(),
        Some("null") => "null".into(),
        Some("array") if depth > 0 => {
            let item = schema
                .get("items")
                .map_or_else(|| json_any(depth - 1), |i| json_value(i, depth - 1));
            format!(r"\[({item}(, {item})*)?\]")
        }
        Some("object") if depth > 0 => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match properties {
                Some(properties) if !required.is_empty() => {
                    let fields: Vec<String> = required
                        .iter()
                        .map(|name| {
                            let value = properties
                                .get(*name)
                                .map_or_else(|| json_any(depth - 1), |p| json_value(p, depth - 1));
                            format!(
                                "{}: {value}",
                                regex_syntax::escape(&Value::from(*name).to_string())
                            )
                        })
                        .collect();
                    format!(r"\{{{}\}}", fields.join(", "))
                }
                _ => json_object(depth),
            }
        }
        _ => json_any(depth),
    }
}

/// Any JSON value nesting at most `depth` levels.
fn json_any(depth: usize) -> String {
    let scalar = format!("{JSON_STRING}|{JSON_NUMBER}|true|false|null");
    if depth == 0 {
        return format!("({scalar})");
    }
    let inner = json_any(depth - 1);
    format!(
        r"({scalar}|\[({inner}(, {inner})*)?\]|\{{({JSON_STRING}: {inner}(, {JSON_STRING}: {inner})*)?\}})"
    )
}

/// Any JSON object nesting at most `depth` levels.
fn json_object(depth: usize) -> String {
    let inner = json_any(depth.saturating_sub(1));
    format!(r"\{{({JSON_STRING}: {inner}(, {JSON_STRING}: {inner})*)?\}}")
}

/// The decision a reply asks for.
fn read_reply(state: &RunState, reply: &str) -> Decision {
    let broken = |problem: &str| {
        Decision::Fail(format!(
            "the model broke the reply protocol ({problem}); it said: {reply:?}"
        ))
    };
    if let Some(text) = reply.strip_prefix("FINISH") {
        return Decision::Finish(json!({ "answer": text.trim() }).to_string());
    }
    let Some(call) = reply.strip_prefix("CALL") else {
        return broken("the reply was neither CALL nor FINISH");
    };
    let call = call.trim();
    let (tool, input) = call.split_once(char::is_whitespace).unwrap_or((call, "{}"));
    if !state.tools.iter().any(|t| t.name == tool) {
        return broken(&format!("no tool named '{tool}' is offered"));
    }
    match serde_json::from_str::<Value>(input.trim()) {
        Ok(input @ Value::Object(_)) => Decision::Call(vec![Step {
            id: format!("step{}", state.iteration + 1),
            tool: tool.into(),
            input: literal(input).to_string(),
            depends_on: Vec::new(),
            replicates: 0,
        }]),
        _ => broken(&format!("the input for '{tool}' is not a JSON object")),
    }
}

/// `input` with each `{{` in its strings written as the host's templates write a literal one
/// (`{{"{{"}}`): the host reads `{{...}}` in a step's input as a reference to another step,
/// and what the model wrote is meant as it stands.
fn literal(input: Value) -> Value {
    match input {
        Value::String(text) => Value::String(text.replace("{{", r#"{{"{{"}}"#)),
        Value::Array(items) => Value::Array(items.into_iter().map(literal).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, literal(value)))
                .collect(),
        ),
        other => other,
    }
}

fn host(error: &Error) -> String {
    match error {
        Error::NotGranted(m) => format!("not granted: {m}"),
        Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        Error::BudgetExceeded(m) => format!("budget exceeded: {m}"),
        Error::Timeout(m) => format!("timeout: {m}"),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::Failed(m) => m.clone(),
    }
}

fn describe(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(m) => format!("invalid input: {m}"),
        ToolError::Failed(m) => m.clone(),
        ToolError::Host(e) => host(e),
    }
}

export!(ReactPlanner);

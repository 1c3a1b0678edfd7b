//! Test fixture: makes the completion requests, token counts and embeddings it is given
//! through the host (`baton:plugin/llm`), in order, and reports each answer or error, to prove
//! what the host's routing, budget, retries, breaker and idempotency do. It also tries to
//! render the prompts it is given (`baton:plugin/prompts`), which a tool may not.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::types::{CompletionRequest, Error, Message, Role, TokenBudget};
use baton::plugin::{llm, prompts};
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    requests: Vec<Request>,
    #[serde(default)]
    count: Vec<Count>,
    #[serde(default)]
    embed: Vec<Embed>,
    /// Names of prompts to render (with empty variables).
    #[serde(default)]
    render: Vec<String>,
}

#[derive(Deserialize)]
struct Embed {
    model: String,
    texts: Vec<String>,
}

#[derive(Deserialize)]
struct Request {
    model: String,
    prompt: String,
    #[serde(default = "default_max_tokens")]
    max_tokens: u32,
    #[serde(default)]
    temperature: f32,
    seed: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
struct Count {
    model: String,
    text: String,
}

fn default_max_tokens() -> u32 {
    32
}

fn error(e: Error) -> Value {
    let (kind, message) = match e {
        Error::NotGranted(m) => ("not-granted", m),
        Error::InvalidArgument(m) => ("invalid-argument", m),
        Error::BudgetExceeded(m) => ("budget-exceeded", m),
        Error::Timeout(m) => ("timeout", m),
        Error::Unavailable(m) => ("unavailable", m),
        Error::Failed(m) => ("failed", m),
    };
    json!({ "error": { "kind": kind, "message": message } })
}

struct Probe;

impl Guest for Probe {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "llm-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Asks the host for completions and token counts and reports them.".into(),
            input_schema: r#"{"type": "object", "properties": {
                "requests": {"type": "array", "items": {"type": "object",
                    "required": ["model", "prompt"]}},
                "count": {"type": "array", "items": {"type": "object",
                    "required": ["model", "text"]}},
                "embed": {"type": "array", "items": {"type": "object",
                    "required": ["model", "texts"]}}}}"#
                .into(),
            output_schema: r#"{"type": "object", "required": ["answers", "counts"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let answers: Vec<Value> = input
            .requests
            .into_iter()
            .map(|r| {
                let request = CompletionRequest {
                    model: r.model,
                    messages: vec![Message {
                        role: Role::User,
                        content: r.prompt,
                    }],
                    max_tokens: r.max_tokens,
                    temperature: r.temperature,
                    stop: Vec::new(),
                    seed: r.seed,
                    idempotency_key: r.idempotency_key,
                };
                match llm::complete(&request) {
                    Ok(response) => json!({ "ok": {
                        "text": response.text,
                        "model": response.model,
                        "input_tokens": response.usage.input_tokens,
                        "output_tokens": response.usage.output_tokens,
                    }}),
                    Err(e) => error(e),
                }
            })
            .collect();
        let counts: Vec<Value> = input
            .count
            .iter()
            .map(|c| match llm::count_tokens(&c.model, &c.text) {
                Ok(n) => json!({ "ok": n }),
                Err(e) => error(e),
            })
            .collect();
        let embeddings: Vec<Value> = input
            .embed
            .iter()
            .map(|e| match llm::embed(&e.model, &e.texts) {
                Ok(vectors) => json!({ "ok": vectors }),
                Err(e) => error(e),
            })
            .collect();
        let budget = TokenBudget {
            model: "smollm2".into(),
            max_tokens: 100,
        };
        let rendered: Vec<Value> = input
            .render
            .iter()
            .map(|name| match prompts::render(name, "{}", &budget) {
                Ok(messages) => json!({ "ok": messages.len() }),
                Err(e) => error(e),
            })
            .collect();
        Ok(json!({
            "answers": answers,
            "counts": counts,
            "embeddings": embeddings,
            "rendered": rendered,
        })
        .to_string())
    }
}

export!(Probe);

//! `ask`: one question to a language model through the host (`baton:plugin/llm`), under the
//! caller's policy (which models, how many tokens) and the run's budget. The model answers;
//! the tool returns the text, the model that answered and the tokens used. Answers are greedy
//! unless the input sets a `temperature`; a `seed` picks the sample, and a replicated step's
//! replicates each draw one of their own, so that an evidence bundle can differ.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::llm;
use baton::plugin::types::{CompletionRequest, FinishReason, Message, Role};
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use serde_json::json;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "question": { "type": "string", "minLength": 1 },
    "system": { "type": "string" },
    "model": { "type": "string", "minLength": 1 },
    "max_tokens": { "type": "integer", "minimum": 1, "maximum": 4096 },
    "temperature": { "type": "number", "minimum": 0, "maximum": 2 },
    "seed": { "type": "integer", "minimum": 0 }
  },
  "required": ["question"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "answer": { "type": "string" },
    "model": { "type": "string" },
    "tokens": { "type": "integer" },
    "complete": { "type": "boolean" }
  },
  "required": ["answer", "model", "tokens", "complete"],
  "additionalProperties": false
}"#;

/// The model asked when the input names none: the local model of the built-in policy.
const DEFAULT_MODEL: &str = "smollm2";

#[derive(Deserialize)]
struct Input {
    question: String,
    system: Option<String>,
    model: Option<String>,
    max_tokens: Option<u32>,
    /// 0 (the default) always takes the most likely token; above it, answers are sampled.
    temperature: Option<f32>,
    /// Which sample: the same seed and question give the same answer. A step's replicates
    /// each draw their own.
    seed: Option<u64>,
}

struct Ask;

impl Guest for Ask {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "ask".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Asks a language model one question and returns its answer in words."
                .into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let mut messages = Vec::new();
        if let Some(system) = input.system {
            messages.push(Message {
                role: Role::System,
                content: system,
            });
        }
        messages.push(Message {
            role: Role::User,
            content: input.question,
        });
        let request = CompletionRequest {
            model: input.model.unwrap_or_else(|| DEFAULT_MODEL.into()),
            messages,
            max_tokens: input.max_tokens.unwrap_or(64),
            temperature: input.temperature.unwrap_or(0.0),
            stop: Vec::new(),
            seed: input.seed,
            idempotency_key: None,
        };
        let response = llm::complete(&request).map_err(ToolError::Host)?;
        Ok(json!({
            "answer": response.text.trim(),
            "model": response.model,
            "tokens": response.usage.input_tokens + response.usage.output_tokens,
            "complete": response.finish_reason == FinishReason::Stop,
        })
        .to_string())
    }
}

export!(Ask);

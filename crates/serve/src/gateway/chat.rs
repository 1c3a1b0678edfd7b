//! `POST /v1/chat/completions`, plain or streamed (`stream: true`) as server-sent events.
//!
//! A streamed answer is sent as OpenAI sends one: a first chunk with the role, content
//! chunks, a chunk with the finish reason, the usage (its own chunk with no choices when
//! `stream_options.include_usage` asks for it, otherwise on the finish chunk), then
//! `[DONE]`. Providers answer Baton whole, so the chunks follow the whole answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_journal::event::{LlmMessage, LlmOutcome, LlmRequest};
use baton_llm::cache::tier;
use baton_runtime::completion::Asker;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CACHE_HEADER, COMMAND, embeds, name_run, unknown_model};
use crate::app::App;
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::keys::Scope;

/// `max_tokens` when a request gives none.
const DEFAULT_MAX_TOKENS: u32 = 1024;

/// Characters per content chunk of a streamed answer (cut at a character boundary).
const CHUNK: usize = 48;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Content,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
    #[default]
    None,
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

impl ChatRequest {
    /// The request as the LLM layer takes it; what Baton cannot honour is refused (400)
    /// rather than ignored.
    fn to_request(&self, idempotency_key: Option<String>) -> Result<LlmRequest, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "n must be 1: Baton returns one choice",
            ));
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::bad_request(
                "tools are not accepted by the gateway: serve tools as components with \
                 `baton mcp` or run them with `baton serve`'s runs API",
            ));
        }
        if self.messages.is_empty() {
            return Err(ApiError::bad_request("messages must not be empty"));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::bad_request(format!(
                "temperature {temperature} is not from 0 to 2"
            )));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(ApiError::bad_request("max_tokens must be at least 1"));
        }
        let messages = self
            .messages
            .iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LlmRequest {
            idempotency_key,
            max_tokens,
            messages,
            model: self.model.clone(),
            seed: self.seed.map(|s| s.to_string()),
            stop: match &self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s.clone()],
                Some(Stop::Many(s)) => s.clone(),
            },
            temperature: temperature.to_string(),
            pattern: None,
        })
    }
}

fn message(index: usize, message: &Message) -> Result<LlmMessage, ApiError> {
    let role = match message.role.as_str() {
        "developer" => "system",
        role @ ("system" | "user" | "assistant") => role,
        other => {
            return Err(ApiError::bad_request(format!(
                "messages[{index}]: role '{other}' is not system, developer, user or assistant"
            )));
        }
    };
    let content = match &message.content {
        Content::Text(text) => text.clone(),
        Content::None => String::new(),
        Content::Parts(parts) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::bad_request(format!(
                            "messages[{index}]: content part '{kind}' is not text; the \
                             gateway takes text only"
                        )));
                    }
                }
            }
            text
        }
    };
    Ok(LlmMessage {
        content,
        role: role.into(),
    })
}

pub async fn chat_completions(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Llm)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = body.to_request(key)?;
    match embeds(&app, &request.model) {
        None => return Err(unknown_model(&request.model)),
        Some(true) => {
            return Err(ApiError::bad_request(format!(
                "model '{}' is an embedding model: use POST /v1/embeddings",
                request.model
            )));
        }
        Some(false) => {}
    }
    let asker = Asker {
        command: COMMAND,
        caller: &caller.name(),
        account: Some(&caller.account),
    };
    let done = app.host.complete_as(request, asker).await;
    let run = done.run.as_ref().map(|r| r.id.clone());
    let mut response = match done.outcome {
        LlmOutcome::Completed {
            text,
            model,
            input_tokens,
            output_tokens,
            finish_reason,
        } => {
            let answer = Answer {
                id: format!("chatcmpl-{}", run.as_deref().unwrap_or("unrecorded")),
                created: crate::db::unix_seconds(),
                model,
                text,
                finish_reason,
                usage: json!({
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                }),
            };
            let mut response = match body.stream {
                true => answer.streamed(body.stream_options.unwrap_or_default().include_usage),
                false => Json(answer.whole()).into_response(),
            };
            let tier = match done.source.as_str() {
                tier::EXACT => "exact",
                tier::SEMANTIC => "semantic",
                _ => "miss",
            };
            response
                .headers_mut()
                .insert(CACHE_HEADER, HeaderValue::from_static(tier));
            response
        }
        LlmOutcome::Failed { kind, message } => failure(&kind, message).into_response(),
    };
    name_run(&mut response, run.as_deref());
    Ok(response)
}

/// A failed completion as the API answers it, by the LLM layer's kind of failure.
fn failure(kind: &str, message: String) -> ApiError {
    match kind {
        "budget-exceeded" => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget_exceeded", message)
        }
        "invalid-argument" => ApiError::bad_request(message),
        "timeout" => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", message),
        "unavailable" => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            message,
        )
        .retry_after(1),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_failed", message),
    }
}

/// A completed answer, to send whole or as a stream.
struct Answer {
    id: String,
    created: u64,
    model: String,
    text: String,
    finish_reason: String,
    usage: Value,
}

impl Answer {
    fn whole(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.text, "refusal": null},
                "logprobs": null,
                "finish_reason": self.finish_reason,
            }],
            "usage": self.usage,
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }

    /// The answer as server-sent events.
    fn streamed(&self, usage_chunk: bool) -> Response {
        let mut chunks = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        chunks.extend(
            pieces(&self.text, CHUNK).map(|piece| self.chunk(json!({"content": piece}), None)),
        );
        let mut last = self.chunk(json!({}), Some(&self.finish_reason));
        if usage_chunk {
            chunks.push(last);
            let mut usage = self.chunk(json!({}), None);
            usage["choices"] = json!([]);
            usage["usage"] = self.usage.clone();
            chunks.push(usage);
        } else {
            last["usage"] = self.usage.clone();
            chunks.push(last);
        }
        let mut body = String::new();
        for chunk in chunks {
            body.push_str("data: ");
            body.push_str(&chunk.to_string());
            body.push_str("\n\n");
        }
        body.push_str("data: [DONE]\n\n");
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response()
    }
}

/// `text` in pieces of about `size` bytes, each ending at a character boundary.
fn pieces(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_at_character_boundaries() {
        let text = "héllo wörld, ünïcode ✓ ".repeat(7);
        let joined: String = pieces(&text, 5).collect();
        assert_eq!(joined, text);
        assert!(pieces(&text, 5).all(|p| p.len() >= 5 || text.ends_with(p)));
        assert_eq!(pieces("", 5).count(), 0);
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        let parse = |v: Value| serde_json::from_value::<ChatRequest>(v).unwrap();
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let ok = parse(base.clone()).to_request(None).unwrap();
        assert_eq!(ok.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(ok.temperature, "1");
        for (field, value) in [
            ("n", json!(2)),
            ("tools", json!([{"type": "function"}])),
            ("temperature", json!(3)),
            ("max_tokens", json!(0)),
            ("messages", json!([])),
            ("messages", json!([{"role": "tool", "content": "x"}])),
            (
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url"}]}]),
            ),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let refused = parse(body).to_request(None).unwrap_err();
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{field}");
        }
        let mut parts = base.clone();
        parts["messages"] = json!([{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]);
        let request = parse(parts).to_request(None).unwrap();
        assert_eq!(request.messages[0].role, "system");
        assert_eq!(request.messages[0].content, "ab");
    }
}

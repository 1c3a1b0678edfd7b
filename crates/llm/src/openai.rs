//! Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp's server,
//! LM Studio): `POST {base_url}/chat/completions`, bearer key from the environment.
//!
//! Baton does not have these models' tokenizers, so reservations use `byte_bound`, an upper
//! bound for byte-level BPE tokenizers; the provider's reported usage is what is committed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::provider::{Completion, Provider, ProviderError, byte_bound};
use baton_journal::event::{LlmMessage, LlmRequest};
use baton_policy::llm::ProviderConfig;

pub struct OpenAi {
    client: reqwest::Client,
    url: String,
    /// The environment variable holding the key, and its value when set.
    key: Option<(String, Option<String>)>,
}

#[derive(Deserialize)]
struct Answer {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<Message>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl OpenAi {
    pub fn new(config: &ProviderConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url: format!("{}/chat/completions", config.base_url),
            key: config
                .api_key_env
                .as_ref()
                .map(|name| (name.clone(), std::env::var(name).ok())),
        })
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
    fn count_input(&self, messages: &[LlmMessage]) -> u64 {
        byte_bound(messages)
    }

    fn count_text(&self, text: &str) -> u64 {
        text.len() as u64
    }

    async fn complete(
        &self,
        model: &str,
        request: &LlmRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let mut body = json!({
            "model": model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature.parse::<f64>().unwrap_or(0.0),
            "stream": false,
        });
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(seed) = request.seed.as_ref().and_then(|s| s.parse::<u64>().ok()) {
            body["seed"] = json!(seed);
        }
        let mut call = self.client.post(&self.url).json(&body).timeout(timeout);
        match &self.key {
            Some((_, Some(key))) => call = call.bearer_auth(key),
            Some((name, None)) => {
                return Err(ProviderError::Broken(format!(
                    "the API key variable {name} is not set; export it or change api_key_env"
                )));
            }
            None => {}
        }
        let response = call.send().await.map_err(|e| classify(&e, timeout))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = response.text().await.map_err(|e| classify(&e, timeout))?;
        if status != 200 {
            return Err(ProviderError::Status {
                status,
                message: error_message(&text),
                retry_after,
            });
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            ProviderError::Broken(format!(
                "the answer is not a chat completion ({e}): {}",
                baton_core::text::truncate(&text, 200)
            ))
        })?;
        let choice = answer
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Broken("the answer has no choices".into()))?;
        let text = choice.message.and_then(|m| m.content).unwrap_or_default();
        let finish_reason = match choice.finish_reason.as_deref() {
            Some("length") => "length",
            Some("content_filter") => "content-filter",
            _ => "stop",
        };
        // Servers that report no usage are charged the reservation's own estimates.
        let (input_tokens, output_tokens) = match answer.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens),
            None => (
                byte_bound(&request.messages) as u32,
                (text.len() as u32).min(request.max_tokens),
            ),
        };
        Ok(Completion {
            text,
            finish_reason: finish_reason.into(),
            input_tokens,
            output_tokens,
        })
    }
}

fn classify(error: &reqwest::Error, timeout: Duration) -> ProviderError {
    // Anything else (refused, reset, a body cut off) is the connection's fault.
    if error.is_timeout() {
        ProviderError::Timeout(timeout)
    } else {
        ProviderError::Connect(baton_core::text::causes(error))
    }
}

/// The `error.message` of an OpenAI-style error body, else the body itself, cut short.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| body.trim().to_string());
    baton_core::text::truncate(&baton_core::text::one_line(&message), 300)
}

/// How long the provider asks callers to wait: `retry-after-ms`, or `retry-after` as seconds
/// or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut dated = HeaderMap::new();
        let past = httpdate::fmt_http_date(std::time::SystemTime::UNIX_EPOCH);
        dated.insert("retry-after", HeaderValue::from_str(&past).unwrap());
        assert_eq!(retry_after(&dated), Some(Duration::ZERO));
        dated.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&dated), None);
    }
}

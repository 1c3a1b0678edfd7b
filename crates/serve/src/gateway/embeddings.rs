//! `POST /v1/embeddings`: vectors from the policy's embedding models, computed on this
//! machine.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use baton_runtime::completion::Asker;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{COMMAND, embeds, name_run, unknown_model};
use crate::app::App;
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::keys::Scope;

/// The most texts one request may embed.
const MAX_TEXTS: usize = 2048;

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    /// Anything else, such as token ids: Baton embeds text only.
    Other(Value),
}

pub async fn embeddings(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<EmbeddingRequest>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Llm)?;
    let texts = match body.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
        Input::Other(value) => {
            return Err(ApiError::bad_request(format!(
                "input must be a string or an array of strings, not {}",
                baton_core::text::truncate(&value.to_string(), 60)
            )));
        }
    };
    if texts.is_empty() || texts.len() > MAX_TEXTS {
        return Err(ApiError::bad_request(format!(
            "input must hold 1 to {MAX_TEXTS} texts, not {}",
            texts.len()
        )));
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format '{other}' is not 'float' or 'base64'"
            )));
        }
    };
    match embeds(&app, &body.model) {
        None => return Err(unknown_model(&body.model)),
        Some(false) => {
            return Err(ApiError::bad_request(format!(
                "model '{}' is a chat model; embeddings need an embedding model \
                 (GET /v1/models)",
                body.model
            )));
        }
        Some(true) => {}
    }
    let asker = Asker {
        command: COMMAND,
        caller: &caller.name(),
        account: Some(&caller.account),
    };
    let done = app.host.embed_as(&body.model, &texts, asker).await;
    let run = done.run.as_ref().map(|r| r.id.as_str());
    let vectors = match done.vectors {
        Ok(vectors) => vectors,
        Err(e) => {
            let mut response = ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
            .into_response();
            name_run(&mut response, run);
            return Ok(response);
        }
    };
    if let Some(asked) = body.dimensions {
        let dims = vectors.first().map_or(0, Vec::len);
        if asked as usize != dims {
            return Err(ApiError::bad_request(format!(
                "model '{}' makes vectors of {dims} dimensions, not {asked}",
                body.model
            )));
        }
    }
    let mut tokens = 0u64;
    for text in &texts {
        tokens += app.host.llm().count(&body.model, text).await.unwrap_or(0) as u64;
    }
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match base64 {
                true => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                false => json!(vector),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let mut response = Json(json!({
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response();
    name_run(&mut response, run);
    Ok(response)
}

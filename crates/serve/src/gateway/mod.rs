//! The OpenAI-compatible gateway: code written for OpenAI's API points its `base_url` at
//! Baton and its requests go through the policy's routes and fallbacks, the completion
//! cache, the key's budget, retries and breakers. Each request is journaled as a run of
//! its own (`command` "gateway"), named in the `x-baton-run` response header, whose bundle
//! replays with `baton replay`.

mod chat;
mod embeddings;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use baton_policy::llm::ProviderKind;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::keys::Scope;

pub use chat::chat_completions;
pub use embeddings::embeddings;

/// The `command` gateway requests are journaled with.
pub const COMMAND: &str = "gateway";

/// The run a request was journaled as.
pub const RUN_HEADER: HeaderName = HeaderName::from_static("x-baton-run");

/// Which tier of the cache answered: `exact`, `semantic` or `miss`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-baton-cache");

/// `GET /v1/models`: the models the policy routes, chat and embedding alike.
pub async fn models(State(app): State<Arc<App>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Llm)?;
    let config = app.host.policy().llm();
    let data: Vec<Value> = config
        .models
        .values()
        .map(|route| {
            json!({
                "id": route.name,
                "object": "model",
                "created": 0,
                "owned_by": route.provider,
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// Whether the policy's model `model` is an embedding model (`None`: no such model).
fn embeds(app: &App, model: &str) -> Option<bool> {
    let config = app.host.policy().llm();
    let route = config.models.get(model)?;
    let provider = config.providers.get(&route.provider)?;
    Some(provider.kind == ProviderKind::Embedding)
}

fn unknown_model(model: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!(
            "model '{model}' has no route in the server's policy: GET /v1/models lists the \
             models it serves"
        ),
    )
}

/// Names the run `run` in `response`'s headers.
fn name_run(response: &mut Response, run: Option<&str>) {
    if let Some(value) = run.and_then(|r| HeaderValue::from_str(r).ok()) {
        response.headers_mut().insert(RUN_HEADER, value);
    }
}

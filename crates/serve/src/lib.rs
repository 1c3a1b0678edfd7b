//! Baton as a service (`baton serve`): an OpenAI-compatible gateway, Prometheus metrics,
//! and the API keys that say who may use them and what each may spend. It adds no policy,
//! budget or journal logic of its own: a gateway request is a run like any other,
//! journaled and replayable.

mod app;
mod auth;
mod body;
mod error;
mod gateway;
pub mod keys;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use baton_runtime::Host;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use app::App;
pub use error::ApiError;
pub use gateway::{CACHE_HEADER, COMMAND as GATEWAY_COMMAND, RUN_HEADER};
use keys::Keys;

/// How often what keys spent is written to the key store while the server runs (and once
/// more when it stops).
const STORE_SPEND_EVERY: Duration = Duration::from_millis(500);

/// How the server is run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { max_body: 4 << 20 }
    }
}

/// The API's routes over `app`.
pub fn router(app: Arc<App>, options: &ServeOptions) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(gateway::chat_completions))
        .route("/v1/embeddings", post(gateway::embeddings))
        .route("/v1/models", get(gateway::models))
        .route("/metrics", get(metrics::render))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .with_state(app)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Serves the API of `host` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets requests in flight finish, and writes what keys spent.
pub async fn serve(
    host: Arc<Host>,
    keys: Keys,
    options: ServeOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let app = Arc::new(App::new(host, keys, metrics::recorder()?));
    let flushing = {
        let (app, stop) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STORE_SPEND_EVERY);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                app.store_spend();
            }
        })
    };
    let served = axum::serve(listener, router(app.clone(), &options))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    let _ = flushing.await;
    app.store_spend();
    served.map_err(|e| format!("the server stopped: {e}"))
}

//! Baton as a service (`baton serve`): a runs API with webhooks, an OpenAI-compatible gateway,
//! Prometheus metrics, and the API keys that say who may use them and what each may spend.
//! It adds no policy, budget or journal logic of its own: a submitted run or a gateway
//! request is a run like any other, journaled and replayable.

mod app;
mod auth;
mod body;
mod db;
mod error;
mod gateway;
pub mod keys;
mod library;
mod metrics;
mod runs;
mod webhooks;

use std::path::{Path, PathBuf};
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
use library::Library;
pub use runs::RunLimits;
use runs::{RunTable, Runs};

/// How often what keys spent is written to the key store while the server runs (and once
/// more when it stops).
const STORE_SPEND_EVERY: Duration = Duration::from_millis(500);

/// How the server is run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    pub runs: RunLimits,
    /// Directories of the workflows runs may name.
    pub workflows: Vec<PathBuf>,
    /// Directories inside which runs may name components.
    pub components: Vec<PathBuf>,
    /// How long a stopping server waits for its runs before it leaves them interrupted.
    pub grace: Duration,
    /// Where runs' steps run when not here (`baton serve --nats`).
    pub dispatch: Option<std::sync::Arc<dyn baton_orchestrator::remote::Dispatch>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_body: 4 << 20,
            runs: RunLimits {
                max_runs: 4,
                queue: 64,
            },
            workflows: Vec::new(),
            components: Vec::new(),
            grace: Duration::from_secs(30),
            dispatch: None,
        }
    }
}

/// The API's routes over `app`.
pub fn router(app: Arc<App>, options: &ServeOptions) -> Router {
    Router::new()
        .route("/v1/runs", post(runs::create).get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route("/v1/runs/{id}/bundle", get(runs::bundle))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/webhooks", post(webhooks::register).get(webhooks::list))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks::delete))
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

/// The server's state for `host`, whose journal is at `journal`: its keys, runs, workflows
/// and webhooks beside the journal (or in the host's PostgreSQL store). Serve it with
/// [`router`]; [`serve`] does both.
pub fn app(
    host: Arc<Host>,
    journal: &Path,
    options: &ServeOptions,
    shutdown: CancellationToken,
) -> Result<Arc<App>, String> {
    let keys = match host.database() {
        Some(db) => Keys::in_postgres(db.clone()),
        None => Keys::beside(journal).map_err(|e| e.to_string())?,
    };
    let table = RunTable::open(&db::beside(journal))?;
    let runs = Runs::new(table, options.runs)?;
    let library = Library::new(host.clone(), &options.workflows, &options.components)?;
    let hooks = webhooks::HookTable::open(&db::beside(journal))?;
    let mut app = App::new(
        host,
        keys,
        metrics::recorder()?,
        library,
        runs,
        hooks,
        shutdown,
    );
    app.dispatch = options.dispatch.clone();
    Ok(Arc::new(app))
}

/// Serves the API of `host` (whose journal is at `journal`) on `listener` until `shutdown`
/// is cancelled (`ready` is called once requests are accepted); then stops accepting, lets requests in flight finish, waits up to the
/// grace period for runs in flight (leaving the rest interrupted, to resume later), and
/// writes what keys spent.
pub async fn serve(
    host: Arc<Host>,
    journal: &Path,
    options: ServeOptions,
    listener: TcpListener,
    ready: impl FnOnce(),
    shutdown: CancellationToken,
) -> Result<(), String> {
    let app = app(host, journal, &options, shutdown.clone())?;
    let flushing = {
        let (app, stop) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STORE_SPEND_EVERY);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                app.store_spend();
            }
        })
    };
    ready();
    let served = axum::serve(listener, router(app.clone(), &options))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    let tasks = &app.runs.tasks;
    tasks.close();
    if tokio::time::timeout(options.grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "runs still in flight after {}: left interrupted (POST /v1/runs/ID/resume \
             continues one)",
            humantime::format_duration(options.grace)
        );
        app.runs.interrupt_all();
    }
    let _ = flushing.await;
    app.store_spend();
    served.map_err(|e| format!("the server stopped: {e}"))
}

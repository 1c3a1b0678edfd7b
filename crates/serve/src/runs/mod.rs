//! The runs API: `POST /v1/runs` submits a workflow (from the server's allowlist, or a
//! planner and tools named inside its component directories) and a task, answered at once
//! with `202 Accepted` and the run's id; the run waits for one of `--max-runs` slots (a
//! full queue answers 429) and runs like `baton run`, journaled under that id. A key sees
//! only its own runs (an admin key sees all).

mod submit;
mod table;
mod tracker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::auth::Caller;
use crate::body::{JsonBody, PathParam, QueryParams};
use crate::error::ApiError;
use crate::keys::Scope;

pub use submit::Submit;
pub use table::RunTable;
use table::{INTERRUPTED, QUEUED, Row};
use tracker::Tracked;

/// How many runs a page lists when the request does not say, and at most.
const PAGE: usize = 20;
const MAX_PAGE: usize = 200;

/// How runs are admitted.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Runs that run at once.
    pub max_runs: usize,
    /// Runs that may wait for a slot; one more is refused with 429.
    pub queue: usize,
}

pub struct Runs {
    pub table: RunTable,
    limits: RunLimits,
    slots: Arc<Semaphore>,
    /// Runs accepted and not yet ended (running or waiting).
    pending: AtomicUsize,
    live: Mutex<HashMap<String, Arc<Tracked>>>,
    /// Every run's task, to wait for at shutdown.
    pub tasks: TaskTracker,
}

impl Runs {
    /// The runs of `table`; those a previous server left unfinished are marked interrupted.
    pub fn new(table: RunTable, limits: RunLimits) -> Result<Self, String> {
        let interrupted = table.interrupt_unfinished()?;
        if interrupted > 0 {
            tracing::warn!(
                "{interrupted} runs did not finish under the previous server: they are \
                 interrupted (POST /v1/runs/ID/resume continues one)"
            );
        }
        Ok(Self {
            table,
            slots: Arc::new(Semaphore::new(limits.max_runs.max(1))),
            limits,
            pending: AtomicUsize::new(0),
            live: Mutex::default(),
            tasks: TaskTracker::new(),
        })
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Arc<Tracked>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place in the queue, or refuses (429) when it is full.
    fn admit(&self) -> Result<(), ApiError> {
        let capacity = self.limits.max_runs + self.limits.queue;
        let taken = self.pending.fetch_add(1, Ordering::SeqCst);
        if taken >= capacity {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!("baton_runs_refused_total", "why" => "queue_full").increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "queue_full",
                format!(
                    "{capacity} runs are running or waiting (baton serve --max-runs {} \
                     --queue {}); try again shortly",
                    self.limits.max_runs, self.limits.queue
                ),
            )
            .retry_after(1));
        }
        self.gauge();
        Ok(())
    }

    /// A run left the queue for good.
    fn release(&self, id: &str) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        self.live().remove(id);
        self.gauge();
    }

    fn gauge(&self) {
        let pending = self.pending.load(Ordering::SeqCst);
        let running = self.limits.max_runs.max(1) - self.slots.available_permits();
        metrics::gauge!("baton_runs_queue_depth").set(pending.saturating_sub(running) as f64);
        metrics::gauge!("baton_runs_running").set(running as f64);
    }

    /// Stops every run in flight: they are recorded as interrupted, for a later resume.
    pub fn interrupt_all(&self) {
        if let Err(e) = self.table.interrupt_unfinished() {
            tracing::error!("{e}");
        }
    }
}

/// `POST /v1/runs`.
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody<Submit>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    let prepared = body.prepare(&app.library).await?;
    app.runs.admit()?;
    let id = baton_runtime::run::new_run_id();
    let plan = prepared.plan();
    start(&app, &caller, id.clone(), body.to_json(), None, prepared)?;
    let mut answer = json!({"id": id, "status": QUEUED});
    if let Some(plan) = plan {
        answer["plan"] = plan;
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Records run `id` and starts its task.
fn start(
    app: &Arc<App>,
    caller: &Caller,
    id: String,
    request: Value,
    resumed_from: Option<String>,
    work: submit::Work,
) -> Result<(), ApiError> {
    let row = Row {
        id: id.clone(),
        key_id: caller.key.id.clone(),
        created_at: crate::db::now(),
        status: QUEUED.into(),
        request,
        result: None,
        resumed_from,
    };
    if let Err(e) = app.runs.table.insert(&row) {
        app.runs.pending.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::internal(e));
    }
    let tracked = Tracked::new(id.clone(), QUEUED);
    app.runs.live().insert(id, tracked.clone());
    let (key_id, account) = (caller.key.id.clone(), caller.account.clone());
    app.runs
        .tasks
        .spawn(submit::execute(app.clone(), tracked, work, key_id, account));
    Ok(())
}

/// The run `id` if `caller` may see it (a key sees only its own, an admin all); otherwise
/// 404, whether or not it exists.
fn visible(app: &App, caller: &Caller, id: &str) -> Result<Row, ApiError> {
    let row = app
        .runs
        .table
        .get(id)
        .map_err(ApiError::internal)?
        .filter(|row| row.key_id == caller.key.id || caller.key.scopes.allow(Scope::Admin))
        .ok_or_else(|| ApiError::not_found(format!("no run '{id}' (GET /v1/runs lists yours)")))?;
    Ok(row)
}

/// A run's status: from memory while it runs, from the table after.
fn status(app: &App, row: &Row) -> String {
    match app.runs.live().get(&row.id) {
        Some(tracked) => tracked.status(),
        None => row.status.clone(),
    }
}

/// A run as the API shows it: from memory while it runs, from the table after.
fn describe(app: &App, row: Row) -> Value {
    let live = app.runs.live().get(&row.id).cloned();
    let (status, result) = match &live {
        Some(tracked) => (tracked.status(), tracked.result()),
        None => (row.status.clone(), row.result.clone()),
    };
    json!({
        "id": row.id,
        "status": status,
        "created_at": row.created_at,
        "request": row.request,
        "resumed_from": row.resumed_from,
        "result": result,
    })
}

/// `GET /v1/runs/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Runs)?;
    let row = visible(&app, &caller, &id)?;
    Ok(Json(describe(&app, row)))
}

#[derive(Debug, Deserialize)]
pub struct Paging {
    limit: Option<usize>,
    /// A run id: list the runs older than it (the previous page's `next`).
    before: Option<String>,
}

/// `GET /v1/runs?limit=N&before=ID`: the caller's runs, newest first.
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Runs)?;
    let limit = paging.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let owner = (!caller.key.scopes.allow(Scope::Admin)).then_some(caller.key.id.as_str());
    let rows = app
        .runs
        .table
        .page(owner, paging.before.as_deref(), limit)
        .map_err(ApiError::internal)?;
    let next = (rows.len() == limit).then(|| rows.last().map(|r| r.id.clone()));
    let data: Vec<Value> = rows.into_iter().map(|row| describe(&app, row)).collect();
    Ok(Json(json!({"data": data, "next": next.flatten()})))
}

/// `POST /v1/runs/{id}/cancel`: stops a run that has not ended (409 for one that has).
pub async fn cancel(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    let row = visible(&app, &caller, &id)?;
    let Some(tracked) = app.runs.live().get(&id).cloned() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_ended",
            format!("run '{id}' has already ended ({})", row.status),
        ));
    };
    tracked.cancel.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "cancelling"})),
    )
        .into_response())
}

/// `POST /v1/runs/{id}/resume`: continues an interrupted (or failed) run as a new run that
/// takes over the steps it completed.
pub async fn resume(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    let row = visible(&app, &caller, &id)?;
    if app.runs.live().contains_key(&id) || row.status == "succeeded" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_resumable",
            format!(
                "run '{id}' is {}: only a run that ended without success can be resumed",
                status(&app, &row)
            ),
        ));
    }
    // A run the server lost before it started has nothing to take over: it starts afresh.
    let started = app
        .host
        .journal()
        .map(|j| j.find_run(&id))
        .transpose()
        .map_err(|e| ApiError::internal(e.to_string()))?
        .flatten()
        .is_some();
    let work = match started {
        true => submit::Work::Resume(id.clone()),
        false => {
            let body: Submit = serde_json::from_value(row.request.clone()).map_err(|e| {
                ApiError::internal(format!("the stored request of run '{id}': {e}"))
            })?;
            body.prepare(&app.library).await?
        }
    };
    app.runs.admit()?;
    let new = baton_runtime::run::new_run_id();
    start(
        &app,
        &caller,
        new.clone(),
        row.request,
        Some(id.clone()),
        work,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": new, "status": QUEUED, "resumed_from": id})),
    )
        .into_response())
}

/// `GET /v1/runs/{id}/events`: the run's progress as server-sent events, the same events
/// as `baton run --json` prints, from its start until it ends.
pub async fn events(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    let row = visible(&app, &caller, &id)?;
    let Some(tracked) = app.runs.live().get(&id).cloned() else {
        // An ended run: the events it recorded, or (interrupted) none.
        let mut body = String::new();
        for (name, data) in app.runs.table.events(&row.id).map_err(ApiError::internal)? {
            body.push_str(&format!("event: {name}\ndata: {data}\n\n"));
        }
        return Ok(([(header::CONTENT_TYPE, "text/event-stream")], body).into_response());
    };
    let stream = futures_util::stream::unfold(
        (
            tracked.clone(),
            tracked.watch(),
            0usize,
            false,
            app.shutdown.clone(),
        ),
        |(tracked, mut changes, seen, done, shutdown)| async move {
            if done {
                return None;
            }
            loop {
                let unseen = tracked.since(seen);
                if !unseen.events.is_empty() || unseen.ended {
                    let next = seen + unseen.events.len();
                    let events: Vec<Result<Event, std::convert::Infallible>> = unseen
                        .events
                        .into_iter()
                        .map(|(name, data)| Ok(Event::default().event(name).data(data)))
                        .collect();
                    let chunk = futures_util::stream::iter(events);
                    return Some((chunk, (tracked, changes, next, unseen.ended, shutdown)));
                }
                // A stopping server ends its streams, so that it can stop.
                match shutdown.run_until_cancelled(changes.changed()).await {
                    Some(Ok(())) => {}
                    _ => return None,
                }
            }
        },
    );
    use futures_util::StreamExt;
    Ok(Sse::new(stream.flatten())
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /v1/runs/{id}/bundle`: the run's bundle, for `baton replay` (409 until it ends).
pub async fn bundle(
    State(app): State<Arc<App>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Runs)?;
    let row = visible(&app, &caller, &id)?;
    if app.runs.live().contains_key(&id) || row.status == INTERRUPTED {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_not_ended",
            format!(
                "run '{id}' is {}: its bundle exists once it ends",
                status(&app, &row)
            ),
        ));
    }
    let journal = app
        .host
        .journal()
        .ok_or_else(|| ApiError::internal("the server keeps no journal"))?;
    let dir = tempfile::tempdir().map_err(|e| ApiError::internal(e.to_string()))?;
    let path = dir.path().join("run.bundle");
    // The run's statement is signed off the thread that ran it.
    app.host.settle();
    journal
        .export(&id, &path)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let bytes = std::fs::read(&path).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.bundle\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

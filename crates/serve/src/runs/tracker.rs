//! Runs in progress, in memory: their status, the progress events so far (what
//! `GET /v1/runs/{id}/events` streams) and what cancels them.

use std::sync::{Arc, Mutex, MutexGuard};

use baton_orchestrator::progress::{Progress, ProgressSink};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The name of a run's last event.
const FINISHED: &str = "run_finished";

pub struct Tracked {
    pub id: String,
    pub cancel: CancellationToken,
    state: Mutex<State>,
    /// Bumped on every change, for the event streams waiting on it.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    status: String,
    /// Each progress event: its name and its JSON.
    events: Vec<(String, String)>,
    result: Option<Value>,
    ended: bool,
}

/// What an event stream has not yet seen.
pub struct Unseen {
    pub events: Vec<(String, String)>,
    pub ended: bool,
}

impl Tracked {
    pub fn new(id: String, status: &str) -> Arc<Self> {
        Arc::new(Self {
            id,
            cancel: CancellationToken::new(),
            state: Mutex::new(State {
                status: status.into(),
                ..State::default()
            }),
            changed: watch::Sender::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn status(&self) -> String {
        self.state().status.clone()
    }

    pub fn result(&self) -> Option<Value> {
        self.state().result.clone()
    }

    pub fn set_status(&self, status: &str) {
        self.state().status = status.into();
        self.bump();
    }

    /// The run ended with `status` (and `result`, when it got that far). A run that ended
    /// before its orchestration could report it (cancelled while waiting, or unable to
    /// start) still ends its events with `run_finished`.
    pub fn end(&self, status: &str, result: Option<Value>) {
        let mut state = self.state();
        if !state.events.iter().any(|(name, _)| name == FINISHED) {
            let mut last = serde_json::json!({"event": FINISHED, "run": self.id, "status": status});
            if let Some(error) = result.as_ref().and_then(|r| r.get("error")) {
                last["reason"] = error.clone();
            }
            state.events.push((FINISHED.into(), last.to_string()));
        }
        state.status = status.into();
        state.result = result;
        state.ended = true;
        drop(state);
        self.bump();
    }

    /// The events from number `from` on, and whether the run has ended.
    pub fn since(&self, from: usize) -> Unseen {
        let state = self.state();
        Unseen {
            events: state.events.get(from..).unwrap_or_default().to_vec(),
            ended: state.ended,
        }
    }

    /// Waits for the next change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Progress of a tracked run, kept for its event streams.
pub struct Sink(pub Arc<Tracked>);

impl ProgressSink for Sink {
    fn report(&self, event: Progress) {
        let json = serde_json::to_value(&event).expect("progress events serialize");
        let name = json["event"].as_str().unwrap_or("progress").to_string();
        self.0.state().events.push((name, json.to_string()));
        self.0.bump();
    }
}

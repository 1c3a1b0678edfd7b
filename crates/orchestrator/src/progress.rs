//! What a run reports while it runs: one event per step started and finished, cache hits,
//! budget warnings, errors and the end. `baton run --json` streams them as JSON lines; the
//! terminal display draws them.

use serde::Serialize;

use super::result::{RunResult, StepReport};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// The planner was asked for its next decision.
    Planning {
        iteration: u32,
    },
    StepStarted {
        id: String,
        tool: String,
        attempt: u32,
    },
    /// One run of a replicated step ended.
    ReplicateDone {
        id: String,
        replicate: u32,
        ok: bool,
    },
    StepFinished(Box<StepReport>),
    /// A step's completions were answered by the cache.
    CacheHit {
        id: String,
        hits: u64,
    },
    /// Less than a fifth of a budget limit is left.
    BudgetWarning {
        message: String,
    },
    Error {
        message: String,
    },
    RunFinished(Box<RunResult>),
}

/// Where progress goes.
pub trait ProgressSink: Send + Sync {
    fn report(&self, event: Progress);
}

/// Reports nothing.
pub struct Quiet;

impl ProgressSink for Quiet {
    fn report(&self, _: Progress) {}
}

//! What a run ends with: its status, output, per-step results and totals, as printed and as
//! written by `baton run --output`.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use baton_budget::BudgetReport;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    /// The planner gave up, a step it needed failed, or the planner itself failed.
    Failed,
    /// The run's budget ran out; the result holds what finished before.
    BudgetExceeded,
    /// The planner asked for more steps or decisions than `max_steps`.
    MaxSteps,
    /// Its caller cancelled it (the runs API of `baton serve`): the steps in flight were
    /// stopped and the planner was not asked again.
    Cancelled,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::BudgetExceeded => "budget_exceeded",
            RunStatus::MaxSteps => "max_steps",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Not run, because a step it depends on did not succeed.
    Skipped,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub tool: String,
    pub status: StepStatus,
    /// Invocations made (1 plus the retries, for each replicate; 0 if it never ran).
    pub attempts: u32,
    /// How many replicates ran at once (absent for a step run once).
    #[serde(skip_serializing_if = "is_single")]
    pub replicates: u32,
    /// When it started and finished, in milliseconds since the run started.
    pub started_ms: u64,
    pub finished_ms: u64,
    pub fuel: u64,
    pub llm_calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub cache_hits: u64,
    /// Which tier of the completion cache answered: `exact`, `semantic` or
    /// `exact+semantic` (absent when none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_tier: Option<&'static str>,
    /// The run whose output of this step a resumed run took over instead of running it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// The worker that ran it, when the run's steps ran on workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Decisions the budget made for it (a cheaper model in place of the one asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Sums over a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub steps: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub decisions: u32,
    /// Fuel the steps burned.
    pub fuel: u64,
    /// Fuel the planner's decisions burned.
    pub planner_fuel: u64,
    pub llm_calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub cache_hits: u64,
    pub duration_ms: u64,
}

/// The result of `baton run`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The run's id in the journal (empty when nothing was recorded).
    pub run: String,
    pub workflow: String,
    pub status: RunStatus,
    /// Why the run did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    pub steps: Vec<StepReport>,
    pub totals: Totals,
    /// The budget summary ("N LLM calls, T tokens, $X; budget left: ...").
    pub budget: String,
    /// The run chain's root hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
}

/// The `cache_tier` of a step that spent `budget`.
pub fn cache_tier(budget: &BudgetReport) -> Option<&'static str> {
    match (budget.cache_hits, budget.semantic_hits) {
        (0, _) => None,
        (_, 0) => Some("exact"),
        (hits, semantic) if hits == semantic => Some("semantic"),
        _ => Some("exact+semantic"),
    }
}

fn is_single(replicates: &u32) -> bool {
    *replicates <= 1
}

/// Dollars as a float, for JSON readers.
pub fn dollars(usd: baton_budget::Usd) -> f64 {
    usd.0 as f64 / 1e9
}

impl Totals {
    pub fn of(
        steps: &[StepReport],
        decisions: u32,
        planner_fuel: u64,
        budget: &BudgetReport,
    ) -> Self {
        let count = |status| steps.iter().filter(|s| s.status == status).count();
        Self {
            steps: steps.len(),
            succeeded: count(StepStatus::Ok),
            failed: count(StepStatus::Failed),
            skipped: count(StepStatus::Skipped),
            decisions,
            fuel: steps.iter().map(|s| s.fuel).sum(),
            planner_fuel,
            llm_calls: budget.spent.calls,
            tokens: budget.spent.tokens,
            cost_usd: dollars(budget.spent.usd),
            cache_hits: budget.cache_hits,
            duration_ms: budget.elapsed.as_millis() as u64,
        }
    }
}

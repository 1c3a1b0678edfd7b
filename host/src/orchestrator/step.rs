//! One step of a run: its invocations (the first try and its retries), each in its own
//! chain, run as a task of its own so that steps overlap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bindings::types::{Error as HostError, ToolError};
use crate::budget::Ledger;
use crate::effect::{Gate, SecretRedactor};
use crate::error::Error;
use crate::journal::event::step_chain;
use crate::policy::Source;
use crate::runtime::{Plugin, RunContext, ToolCall, check_input};
use crate::sandbox::SandboxError;
use crate::sandbox::limits::LimitKind;

use super::plan::PlannedStep;
use super::result::{StepReport, StepStatus, dollars};

/// A step ready to run.
pub(super) struct StepJob {
    pub ctx: Arc<RunContext>,
    pub index: usize,
    pub id: String,
    pub plugin: Arc<Plugin>,
    /// The rendered input (JSON text).
    pub input: String,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub backoff: Duration,
    pub ledger: Arc<Ledger>,
    /// When the run started.
    pub started: Instant,
}

/// A step that ended (or was never run).
pub(super) struct StepDone {
    pub index: usize,
    /// The chain name of each invocation and its gate, to be sealed into the run chain.
    pub attempts: Vec<(String, Arc<Gate>)>,
    pub report: StepReport,
    /// Whether it failed because the budget ran out.
    pub out_of_budget: bool,
}

impl StepDone {
    /// A step that never ran: skipped, or failed before its first invocation.
    pub fn not_run(
        index: usize,
        step: &PlannedStep,
        status: StepStatus,
        reason: String,
        at_ms: u64,
    ) -> Self {
        Self {
            index,
            attempts: Vec::new(),
            report: StepReport {
                id: step.id.clone(),
                tool: step.tool.clone(),
                status,
                attempts: 0,
                started_ms: at_ms,
                finished_ms: at_ms,
                fuel: 0,
                llm_calls: 0,
                tokens: 0,
                cost_usd: 0.0,
                cache_hits: 0,
                output: None,
                error: Some(reason),
            },
            out_of_budget: false,
        }
    }
}

impl StepJob {
    pub async fn run(self) -> StepDone {
        let started_ms = self.started.elapsed().as_millis() as u64;
        let mut attempts = Vec::new();
        let mut fuel = 0;
        let result = match check_input(&self.plugin, &self.input) {
            Err(e) => Err(e),
            Ok(()) => loop {
                let attempt = attempts.len() as u32;
                let (name, gate, result) = self.attempt(attempt).await;
                if let Some(gate) = gate {
                    attempts.push((name, gate));
                }
                if let Ok(call) = &result {
                    fuel += call.usage.fuel;
                }
                let again = attempt < self.retries && result.as_ref().is_err_and(retryable);
                if !again {
                    break result;
                }
                if !self.ctx.is_replay() {
                    // Recorded outcomes need no waiting for: a replay retries at once.
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempt)).await;
                }
            },
        };
        let spent = self.ledger.report();
        let out_of_budget = result.as_ref().is_err_and(is_budget);
        let (status, output, error) = match result {
            Ok(call) => (StepStatus::Ok, Some(call.output), None),
            Err(e) => (StepStatus::Failed, None, Some(e.to_string())),
        };
        StepDone {
            index: self.index,
            report: StepReport {
                id: self.id,
                tool: self.plugin.name().to_string(),
                status,
                attempts: attempts.len() as u32,
                started_ms,
                finished_ms: self.started.elapsed().as_millis() as u64,
                fuel,
                llm_calls: spent.spent.calls,
                tokens: spent.spent.tokens,
                cost_usd: dollars(spent.spent.usd),
                cache_hits: spent.cache_hits,
                output,
                error,
            },
            attempts,
            out_of_budget,
        }
    }

    /// Invocation number `attempt` (from 0) in its own chain: `ID`, then `ID~2`, `ID~3`...
    async fn attempt(&self, attempt: u32) -> (String, Option<Arc<Gate>>, Result<ToolCall, Error>) {
        let name = match attempt {
            0 => self.id.clone(),
            n => format!("{}~{}", self.id, n + 1),
        };
        let access = match self.ctx.access(&self.plugin) {
            Ok(access) => access,
            Err(e) => return (name, None, Err(e)),
        };
        let chain = step_chain(&name);
        let gate = self.ctx.chains().gate(
            chain.clone(),
            Arc::new(SecretRedactor::new(&access.secrets)),
        );
        let (limits, mode) = self.ctx.limits_and_mode(&chain, &self.plugin, self.timeout);
        let result = self
            .ctx
            .invoke(
                &self.plugin,
                &self.input,
                &limits,
                access,
                &gate,
                mode,
                0,
                &self.ledger,
            )
            .await;
        (name, Some(gate), result)
    }
}

/// Whether a failed invocation may succeed when tried again: not when the input was
/// refused, the policy or the budget said no.
fn retryable(error: &Error) -> bool {
    !is_budget(error)
        && !matches!(
            error,
            Error::InputNotJson { .. }
                | Error::InputSchema { .. }
                | Error::Policy(_)
                | Error::SecretMissing { .. }
                | Error::FsMount { .. }
                | Error::ToolFailed {
                    error: ToolError::InvalidInput(_)
                        | ToolError::Host(HostError::NotGranted(_) | HostError::InvalidArgument(_)),
                    ..
                }
        )
}

/// Whether the budget refused what a step (or the planner) needed.
pub(super) fn is_budget(error: &Error) -> bool {
    match error {
        Error::Budget(_) | Error::BudgetRefused(_) => true,
        Error::ToolFailed {
            error: ToolError::Host(HostError::BudgetExceeded(_)),
            ..
        } => true,
        Error::Llm { kind, .. } => kind == "budget-exceeded",
        // A limit the budget had cut (to what it had left) ran out.
        Error::Sandbox {
            error: SandboxError::Limit(limit),
            limits,
            ..
        } => match limit.kind() {
            Some(LimitKind::Fuel) => limits.fuel == Source::Budget,
            Some(LimitKind::Timeout) => limits.timeout == Source::Budget,
            _ => false,
        },
        _ => false,
    }
}

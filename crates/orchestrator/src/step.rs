//! One step of a run: its invocations (the first try and its retries), each in its own
//! chain, run as a task of its own so that steps overlap.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use baton_budget::{BudgetLimits, Ledger};
use baton_core::Digest;
use baton_core::limits::LimitKind;
use baton_effects::{Gate, NoSecrets};
use baton_journal::event::{EventKind, step_chain};
use baton_policy::Source;
use baton_runtime::bindings::types::{Error as HostError, ToolError};
use baton_runtime::flow::{Flow, Labels};
use baton_runtime::plugin::{Info, check_input};
use baton_runtime::run::{Invocation, RunContext};
use baton_runtime::{Error, Plugin, ToolCall};
use baton_sandbox::SandboxError;

use serde_json::Value;

use super::evidence;
use super::progress::{Progress, ProgressSink};
use super::result::{StepReport, StepStatus, cache_tier, dollars};

/// Why a resumed step's chain records labels: the output it took over carried them.
pub(crate) const TAKEN_OVER: &str = "the output it took over";

/// A step ready to run.
pub(crate) struct StepJob {
    pub ctx: Arc<RunContext>,
    pub index: usize,
    pub id: String,
    pub plugin: Arc<Plugin>,
    /// The rendered input (JSON text).
    pub input: String,
    pub retries: u32,
    pub timeout: Option<Duration>,
    pub backoff: Duration,
    /// Run this many times and weigh the outputs (0 and 1: once), at most `max_parallel` at
    /// once.
    pub replicates: u32,
    pub max_parallel: usize,
    /// The model whose embeddings compare replicates' outputs.
    pub embedding_model: String,
    pub progress: Arc<dyn ProgressSink>,
    /// Instead of running: the event the step's chain records, the output it takes over and
    /// what that carries (see `resume`).
    pub taken_over: Option<(EventKind, String, Labels)>,
    pub ledger: Arc<Ledger>,
    /// Cancelled when the run is.
    pub cancel: CancellationToken,
    /// When the run started.
    pub started: Instant,
    /// Whether the cache of pure calls may answer it (the workflow's `cache`).
    pub cache: bool,
    /// What its input carries: the labels of the outputs it refers to and of the planner
    /// decision that asked for it.
    pub labels: Labels,
}

/// What running a step (or one replicate of it) came to.
struct Tried {
    /// Chain name and gate of each chain it wrote (its invocations, and the weighing of
    /// replicates).
    attempts: Vec<(String, Arc<dyn Gate>)>,
    invocations: u32,
    result: Result<Value, Error>,
    fuel: u64,
    /// What its output (or error) carries.
    labels: Labels,
}

/// A chain a step wrote: still open here, or sealed by the worker that ran the step.
pub(crate) enum Attempt {
    Open(Arc<dyn Gate>),
    Sealed(baton_effects::Sealed),
}

/// A step that ended (or was never run).
pub(crate) struct StepDone {
    pub index: usize,
    /// The chain name of each invocation and its chain, to be sealed into the run chain.
    pub attempts: Vec<(String, Attempt)>,
    pub report: StepReport,
    /// Whether it failed because the budget ran out.
    pub out_of_budget: bool,
    /// What its output (or error) carries.
    pub labels: Labels,
}

impl StepDone {
    /// Step `id` (of `tool`) that never ran: skipped, or failed before its first invocation.
    pub fn not_run(
        index: usize,
        (id, tool): (&str, &str),
        status: StepStatus,
        reason: String,
        at_ms: u64,
    ) -> Self {
        Self {
            index,
            attempts: Vec::new(),
            report: StepReport {
                id: id.into(),
                tool: tool.into(),
                status,
                attempts: 0,
                replicates: 0,
                started_ms: at_ms,
                finished_ms: at_ms,
                fuel: 0,
                llm_calls: 0,
                tokens: 0,
                cost_usd: 0.0,
                cache_hits: 0,
                cache_tier: None,
                resumed_from: None,
                worker: None,
                output: None,
                error: Some(reason),
                notes: Vec::new(),
            },
            out_of_budget: false,
            labels: Labels::public(),
        }
    }
}

/// Step `id`'s ledger inside `run`'s: it must fit what the workflow gives the step
/// (`[steps.ID] budget`) and what the policy gives its tool.
pub(crate) fn step_ledger(
    run: &Arc<Ledger>,
    id: &str,
    workflow: BudgetLimits,
    policy: BudgetLimits,
) -> Arc<Ledger> {
    match Ledger::workflow_step(run, id, workflow) {
        Some(step) => Ledger::step(&step, id, policy),
        None => Ledger::step(run, id, policy),
    }
}

impl StepJob {
    pub async fn run(self) -> StepDone {
        let span = tracing::info_span!(
            "step",
            otel.name = format!("step {}", self.id),
            baton.step.id = self.id.as_str(),
            baton.tool = self.plugin.name(),
        );
        self.attempts().instrument(span).await
    }

    async fn attempts(self) -> StepDone {
        let started_ms = self.started.elapsed().as_millis() as u64;
        let job = Arc::new(self);
        let Tried {
            attempts,
            invocations,
            result,
            fuel,
            labels,
        } = match (&job.taken_over, job.replicates > 1) {
            (Some((event, output, labels)), _) => job.take_over(event.clone(), output, labels),
            (None, true) => job.clone().replicated().await,
            (None, false) => job.clone().tried(job.id.clone(), job.input.clone()).await,
        };
        let spent = job.ledger.report();
        let out_of_budget = result.as_ref().is_err_and(is_budget);
        let (status, output, error) = match result {
            Ok(output) => (StepStatus::Ok, Some(output), None),
            Err(e) => (StepStatus::Failed, None, Some(e.to_string())),
        };
        StepDone {
            index: job.index,
            report: StepReport {
                id: job.id.clone(),
                tool: job.plugin.name().to_string(),
                status,
                attempts: invocations,
                replicates: job.replicates,
                started_ms,
                finished_ms: job.started.elapsed().as_millis() as u64,
                fuel,
                llm_calls: spent.spent.calls,
                tokens: spent.spent.tokens,
                cost_usd: dollars(spent.spent.usd),
                cache_hits: spent.cache_hits,
                cache_tier: cache_tier(&spent),
                resumed_from: match &job.taken_over {
                    Some((EventKind::Resumed { run, .. }, _, _)) if !run.is_empty() => {
                        Some(run.clone())
                    }
                    _ => None,
                },
                worker: None,
                output,
                error,
                notes: job.ledger.notes(),
            },
            attempts: attempts
                .into_iter()
                .map(|(name, gate)| (name, Attempt::Open(gate)))
                .collect(),
            out_of_budget,
            labels,
        }
    }

    /// The step not run again: `output` taken over, recorded as `event` in its chain, with
    /// the labels it carried (`labels`).
    fn take_over(&self, event: EventKind, output: &str, labels: &Labels) -> Tried {
        let gate = self
            .ctx
            .chains()
            .gate(step_chain(&self.id), Arc::new(NoSecrets));
        gate.emit(event);
        if !labels.is_public() {
            gate.emit(labels.event(TAKEN_OVER));
        }
        let result = serde_json::from_str(output).map_err(|e| Error::OutputNotJson {
            tool: self.plugin.name().to_string(),
            reason: e.to_string(),
        });
        Tried {
            attempts: vec![(self.id.clone(), gate)],
            invocations: 0,
            result,
            fuel: 0,
            labels: labels.clone(),
        }
    }

    /// The step run once under chain name `base`, retried as configured.
    async fn tried(self: Arc<Self>, base: String, input: String) -> Tried {
        let mut attempts = Vec::new();
        let mut fuel = 0;
        if let Err(e) = check_input(&self.plugin, &input) {
            return Tried {
                attempts,
                invocations: 0,
                result: Err(e),
                fuel,
                labels: self.labels.clone(),
            };
        }
        // What its attempts' outputs and errors carry (a declassifying tool's may carry less
        // than its input).
        let mut labels = Labels::public();
        let result = loop {
            let attempt = attempts.len() as u32;
            let (name, gate, result, carried) = self.attempt(&base, attempt, &input).await;
            labels.join(&carried);
            if let Some(gate) = gate {
                attempts.push((name, gate));
            }
            if let Ok(call) = &result {
                fuel += call.usage.fuel;
            }
            let again = attempt < self.retries && result.as_ref().is_err_and(retryable);
            if !again {
                break result.map(|call| call.output);
            }
            // Recorded outcomes need no waiting for: a replay retries at once.
            let delay = self
                .ctx
                .retry_delay(self.backoff * 2u32.saturating_pow(attempt));
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.progress.report(Progress::StepStarted {
                id: base.clone(),
                tool: self.plugin.name().to_string(),
                attempt: attempt + 2,
            });
        };
        Tried {
            invocations: attempts.len() as u32,
            attempts,
            result,
            fuel,
            labels,
        }
    }

    /// Replicate `replicate`'s input: the step's, with a `seed` of its own when the tool takes
    /// one the input does not set, so that replicates of a sampled call can differ. The seed
    /// comes from the run, the step and the replicate (a replay draws the same), and is
    /// journaled with the input.
    fn replicate_input(&self, replicate: u32) -> String {
        let takes_seed = match &self.plugin.info {
            Info::Tool(tool) => serde_json::from_str::<Value>(&tool.input_schema)
                .is_ok_and(|schema| schema["properties"].get("seed").is_some()),
            _ => false,
        };
        match serde_json::from_str::<Value>(&self.input) {
            Ok(Value::Object(mut input)) if takes_seed && !input.contains_key("seed") => {
                let drawn = Digest::of(
                    format!("{}\0{}\0{replicate}", self.ctx.chains().run(), self.id).as_bytes(),
                );
                // 32 bits: any JSON reader holds it exactly.
                let seed = u32::from_str_radix(&drawn.hex()[..8], 16).unwrap_or(replicate);
                input.insert("seed".into(), seed.into());
                Value::Object(input).to_string()
            }
            _ => self.input.clone(),
        }
    }

    /// The step run `replicates` times in parallel (`ID#1`, `ID#2`, ...), ending in an
    /// evidence bundle: the outputs, their pairwise similarities, the consensus (the medoid)
    /// and a confidence. The similarities' embeddings are journaled in the chain `ID`.
    async fn replicated(self: Arc<Self>) -> Tried {
        let mut tasks = tokio::task::JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max_parallel.max(1)));
        for replicate in 1..=self.replicates {
            let base = format!("{}#{replicate}", self.id);
            let input = self.replicate_input(replicate);
            let job = self.clone();
            let slots = slots.clone();
            tasks.spawn(
                async move {
                    let _slot = slots.acquire_owned().await;
                    (replicate, job.tried(base, input).await)
                }
                .in_current_span(),
            );
        }
        let mut runs = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (replicate, tried) = joined.expect("a replicate task does not panic");
            self.progress.report(Progress::ReplicateDone {
                id: self.id.clone(),
                replicate,
                ok: tried.result.is_ok(),
            });
            runs.push((replicate, tried));
        }
        runs.sort_by_key(|(replicate, _)| *replicate);
        let mut attempts = Vec::new();
        let mut invocations = 0;
        let mut fuel = 0;
        let mut outputs = Vec::new();
        let mut errors = Vec::new();
        let mut labels = Labels::public();
        for (_, tried) in runs {
            labels.join(&tried.labels);
            attempts.extend(tried.attempts);
            invocations += tried.invocations;
            fuel += tried.fuel;
            match tried.result {
                Ok(output) => outputs.push(output),
                Err(e) => errors.push(e),
            }
        }
        if outputs.is_empty() {
            let first = errors
                .into_iter()
                .next()
                .expect("at least two replicates ran");
            return Tried {
                attempts,
                invocations,
                result: Err(first),
                fuel,
                labels,
            };
        }
        let gate = self
            .ctx
            .chains()
            .gate(step_chain(&self.id), Arc::new(NoSecrets));
        let evidence = evidence::weigh(
            &self.ctx,
            &*gate,
            &self.embedding_model,
            self.replicates,
            outputs,
            errors.iter().map(ToString::to_string).collect(),
        )
        .await;
        attempts.push((self.id.clone(), gate));
        Tried {
            attempts,
            invocations,
            result: Ok(evidence),
            fuel,
            labels,
        }
    }

    /// Invocation number `attempt` (from 0) in its own chain: `BASE`, then `BASE~2`,
    /// `BASE~3`...
    async fn attempt(
        &self,
        base: &str,
        attempt: u32,
        input: &str,
    ) -> (
        String,
        Option<Arc<dyn Gate>>,
        Result<ToolCall, Error>,
        Labels,
    ) {
        let name = match attempt {
            0 => base.to_string(),
            n => format!("{base}~{}", n + 1),
        };
        let access = match self.ctx.access(&self.plugin) {
            Ok(access) => access,
            Err(e) => return (name, None, Err(e), self.labels.clone()),
        };
        let gate = self.ctx.gate(step_chain(&name), &access);
        let flow = Flow::new(self.labels.clone());
        let result = self
            .ctx
            .invoke(Invocation {
                plugin: &self.plugin,
                input,
                access,
                gate: gate.clone(),
                timeout: self.timeout,
                depth: 0,
                ledger: self.ledger.clone(),
                cancel: self.cancel.clone(),
                cache: self.cache,
                flow: flow.clone(),
            })
            .await;
        (name, Some(gate), result, flow.labels())
    }
}

/// Whether a failed invocation may succeed when tried again: not when the input was
/// refused, the policy or the budget said no.
fn retryable(error: &Error) -> bool {
    !is_budget(error)
        && !error.is_cancelled()
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

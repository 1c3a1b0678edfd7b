//! A run in progress: the planner asked for decisions, one after another, until it finishes,
//! fails or runs out of steps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use baton_budget::Ledger;
use baton_effects::Divergence;
use baton_journal::event::{EventKind, RUN_CHAIN};
use baton_policy::LimitsSpec;
use baton_runtime::bindings::types::{Decision, RunState, StepResult, ToolError, ToolInfo};
use baton_runtime::capability::HostState;
use baton_runtime::capability::plan::Skipped;
use baton_runtime::flow::{Flow, Labels};
use baton_runtime::plugin::Entry;
use baton_runtime::run::{Invocation, RunContext, RunJournal};
use baton_runtime::{Error, Plugin};
use serde_json::Value;

use crate::progress::{Progress, ProgressSink};
use crate::result::{RunStatus, StepReport, StepStatus};
use crate::step::StepDone;
use crate::workflow::Settings;
use crate::{plan, resume, step, template};

/// How the planner loop ended.
pub(crate) struct Ending {
    pub(crate) status: RunStatus,
    pub(crate) reason: Option<String>,
    pub(crate) output: Option<Value>,
    pub(crate) decisions: u32,
}

pub(crate) struct Orchestrator<'a> {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) journal: RunJournal,
    pub(crate) planner: Arc<Plugin>,
    pub(crate) task: &'a str,
    pub(crate) input: &'a Value,
    pub(crate) settings: &'a Settings,
    /// What the planner is told about the tools.
    pub(crate) tools: BTreeMap<String, ToolInfo>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) progress: Arc<dyn ProgressSink>,
    pub(crate) started: Instant,
    /// Finished steps, in plan order.
    pub(crate) reports: Vec<StepReport>,
    /// The same, as the planner sees them.
    pub(crate) results: Vec<StepResult>,
    /// Outputs of the steps that succeeded, for input templates.
    pub(crate) outputs: BTreeMap<String, Value>,
    /// The input each step started with (its references filled in), by id, for the planner.
    pub(crate) inputs: Arc<BTreeMap<String, String>>,
    /// What the output (or error) of each step that ran carries, by step id.
    pub(crate) labels: BTreeMap<String, Labels>,
    /// What the planner's last decision carries: every step it asks for carries it too.
    pub(crate) decided: Labels,
    /// Whether a budget warning was given.
    pub(crate) warned: bool,
    /// Fuel the planner's decisions burned.
    pub(crate) planner_fuel: u64,
    /// Outputs of an interrupted run's steps, by id, that this run takes over.
    pub(crate) resumable: BTreeMap<String, resume::Resumed>,
    /// Cancelled when the run's caller cancels it.
    pub(crate) cancel: CancellationToken,
    /// Where steps run when not here.
    pub(crate) dispatch: Option<Arc<dyn crate::remote::Dispatch>>,
    /// Whether the run's start is committed to the store for workers to read.
    pub(crate) committed: bool,
}

impl Orchestrator<'_> {
    pub(crate) async fn plan_and_run(&mut self) -> Result<Ending, Divergence> {
        let max = self.settings.max_steps;
        let mut steps_asked = 0usize;
        let mut decisions = 0;
        let end = |status, reason: String, decisions| Ending {
            status,
            reason: Some(reason),
            output: None,
            decisions,
        };
        loop {
            if self.cancelled_before(decisions) {
                return Ok(end(
                    RunStatus::Cancelled,
                    format!("the run was cancelled after {decisions} planner decisions"),
                    decisions,
                ));
            }
            if decisions >= max {
                return Ok(end(
                    RunStatus::MaxSteps,
                    format!(
                        "the planner made {decisions} decisions without finishing \
                         (max_steps = {max}); raise max_steps in the workflow if the task needs more"
                    ),
                    decisions,
                ));
            }
            self.progress.report(Progress::Planning {
                iteration: decisions,
            });
            let decision = self.ask_planner(decisions).await?;
            decisions += 1;
            let planner = self.planner.name().to_string();
            let decision = match decision {
                Ok((decision, skipped)) => {
                    self.skipped_by_planner(skipped);
                    decision
                }
                Err(e) => {
                    let status = match (step::is_budget(&e), e.is_cancelled()) {
                        (true, _) => RunStatus::BudgetExceeded,
                        // Cancelled while the planner was deciding.
                        (_, true) => RunStatus::Cancelled,
                        _ => RunStatus::Failed,
                    };
                    let reason = format!("planner '{planner}' failed: {e}");
                    self.progress.report(Progress::Error {
                        message: reason.clone(),
                    });
                    return Ok(end(status, reason, decisions));
                }
            };
            let steps = match decision {
                Decision::Finish(output) => return Ok(self.finish(&output, decisions)),
                Decision::Fail(reason) => {
                    return Ok(end(
                        RunStatus::Failed,
                        format!("planner '{planner}' gave up: {reason}"),
                        decisions,
                    ));
                }
                Decision::Call(steps) => steps,
            };
            let finished: BTreeSet<String> = self.reports.iter().map(|r| r.id.clone()).collect();
            let planned = match plan::check_steps(&steps, &finished, &self.tools) {
                Ok(planned) => planned,
                Err(reason) => {
                    return Ok(end(
                        RunStatus::Failed,
                        format!("planner '{planner}' asked for an impossible plan: {reason}"),
                        decisions,
                    ));
                }
            };
            // Each replicate is a run of the step: they count as steps.
            steps_asked += planned
                .iter()
                .map(|p| p.replicates.max(1) as usize)
                .sum::<usize>();
            if steps_asked > max as usize {
                return Ok(end(
                    RunStatus::MaxSteps,
                    format!(
                        "the planner asked for {steps_asked} steps, more than max_steps = {max}; \
                         raise max_steps in the workflow if the task needs more"
                    ),
                    decisions,
                ));
            }
            if let Some(reason) = self.run_steps(planned).await? {
                return Ok(end(RunStatus::BudgetExceeded, reason, decisions));
            }
        }
    }

    /// Reports the steps the planner decided against as skipped, each once (a planner may say
    /// so again in each decision).
    fn skipped_by_planner(&mut self, skipped: Vec<Skipped>) {
        for Skipped { id, tool, reason } in skipped {
            if self.reports.iter().any(|r| r.id == id) {
                continue;
            }
            let at = self.elapsed_ms();
            let done = StepDone::not_run(
                self.reports.len(),
                (&id, &tool),
                StepStatus::Skipped,
                format!("skipped by the planner: {reason}"),
                at,
            );
            self.progress
                .report(Progress::StepFinished(Box::new(done.report.clone())));
            self.reports.push(done.report);
        }
    }

    /// Whether the run stops before planner decision `decision`: live, when its caller
    /// cancelled it; in a replay, where the recorded run stopped (it ended cancelled without
    /// that decision).
    fn cancelled_before(&self, decision: u32) -> bool {
        let Some(recorded) = self.ctx.recorded_chain(RUN_CHAIN) else {
            return self.cancel.is_cancelled();
        };
        let step = format!("plan:{decision}");
        let cancelled = recorded.iter().any(|e| {
            matches!(&e.kind, EventKind::RunEnded { status, .. }
                if status == RunStatus::Cancelled.name())
        });
        cancelled
            && !recorded
                .iter()
                .any(|e| matches!(&e.kind, EventKind::StepStarted { step: s, .. } if *s == step))
    }

    /// The planner's `finish`: its output with references to step outputs filled in.
    fn finish(&self, output: &str, decisions: u32) -> Ending {
        // The run's result may be no larger than the planner's own output may be.
        let limit = self
            .ctx
            .policy()
            .limits_for(
                self.planner.name(),
                self.planner.subject(),
                &LimitsSpec::default(),
            )
            .limits
            .output;
        let rendered = serde_json::from_str::<Value>(output)
            .map_err(|e| format!("its output is not JSON ({e})"))
            .and_then(|template| template::render(&template, &self.scope(), limit));
        match rendered {
            Ok(output) => Ending {
                status: RunStatus::Succeeded,
                reason: None,
                output: Some(output),
                decisions,
            },
            Err(reason) => Ending {
                status: RunStatus::Failed,
                reason: Some(format!(
                    "planner '{}' finished, but {reason}",
                    self.planner.name()
                )),
                output: None,
                decisions,
            },
        }
    }

    pub(crate) fn scope(&self) -> template::Scope<'_> {
        template::Scope {
            task: Value::String(self.task.into()),
            input: self.input,
            outputs: &self.outputs,
        }
    }

    /// Calls the planner's `next` in chain `plan:N` and enters it in the run chain: its
    /// decision, and the steps it said it decided against.
    async fn ask_planner(
        &mut self,
        iteration: u32,
    ) -> Result<Result<(Decision, Vec<Skipped>), Error>, Divergence> {
        let planner = self.planner.clone();
        let state = RunState {
            task: self.task.into(),
            input: self.input.to_string(),
            config: self.settings.config.to_string(),
            tools: self.tools.values().cloned().collect(),
            results: self.results.clone(),
            iteration,
        };
        let step = format!("plan:{iteration}");
        let access = match self.ctx.access(&planner) {
            Ok(access) => access,
            Err(e) => return Ok(Err(e)),
        };
        let gate = self.journal.step_gate(&step, access.redactor());
        let Entry::Planner(entry) = planner.entry() else {
            unreachable!("check_planner admits only planners")
        };
        let decided = OnceLock::new();
        let call = async |store: &mut wasmtime::Store<HostState>, instance: &_| {
            store.data_mut().set_step_inputs(self.inputs.clone());
            let decision = entry
                .load(&mut *store, instance)?
                .call_next(&mut *store, &state)
                .await?;
            let skipped = store.data_mut().take_skipped();
            let text = plan::decision_json(&decision, &skipped);
            let _ = decided.set((decision, skipped));
            Ok(Ok::<_, ToolError>(text))
        };
        let ledger = Ledger::step(
            &self.ledger,
            &step,
            self.ctx
                .policy()
                .step_budget(planner.name(), planner.subject()),
        );
        let input = plan::state_json(&state);
        // The planner is shown every result so far: its decision carries what they carry.
        let mut shown = Labels::public();
        for carried in self.labels.values() {
            shown.join(carried);
        }
        let flow = Flow::new(shown);
        let invocation = Invocation {
            plugin: &planner,
            input: &input,
            access,
            gate: gate.clone(),
            timeout: self.settings.planner_timeout(),
            depth: 0,
            ledger,
            cancel: self.cancel.clone(),
            // A planner is no tool: nothing of it is cached.
            cache: false,
            flow: flow.clone(),
        };
        let result = self.ctx.invoke_with(invocation, call).await;
        self.decided = flow.labels();
        let digest = planner.loaded.digest.to_string();
        self.journal
            .record_step(&step, planner.name(), &digest, &*gate)?;
        Ok(result.map(|(_, usage)| {
            self.planner_fuel += usage.fuel;
            decided.into_inner().expect("next returned a decision")
        }))
    }
}

//! The orchestrator: asks a planner for decisions, runs the steps it asks for concurrently
//! (in dependency order, at most `max_parallel` at once, with retries and deadlines), feeds
//! the results back, and ends in a result and a journaled run that replays.
//!
//! Journal layout of a run: the run chain holds `run_started`, `workflow`, then one
//! `step_started`/`step_ended` pair per planner decision (`plan:N`) and per step attempt
//! (`ID`, then `ID~2`, `ID~3`... for retries), in plan order whatever order they finished
//! in, so the run's root hash does not depend on thread timing.

pub mod plan;
pub mod progress;
pub mod result;
pub mod template;
pub mod workflow;

mod discovery;
mod evidence;
mod recorded;
mod resume;
mod step;

pub use resume::resume;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::Value;

use baton_budget::{BudgetReport, Ledger};
use baton_effects::{Divergence, NoSecrets};
use baton_journal::event::{EventKind, step_chain};
use baton_runtime::bindings::types::{Decision, RunState, StepResult, ToolError, ToolInfo};
use baton_runtime::plugin::Entry;
use baton_runtime::run::{Invocation, RunContext, RunJournal, RunRecord};
use baton_runtime::{Error, Host, Info, Plugin, RecordedRun, ReplayReport, ToolCall};

use plan::PlannedStep;
use progress::{Progress, ProgressSink};
use result::{RunResult, RunStatus, StepReport, StepStatus, Totals};
use step::{StepDone, StepJob};
use workflow::Settings;

/// What to run: a planner, a task, an input, and how.
pub struct RunRequest<'a> {
    pub planner: Arc<Plugin>,
    pub task: &'a str,
    pub input: &'a Value,
    pub settings: &'a Settings,
}

/// A finished run: its journal record (when the host has a journal) and its result.
#[derive(Debug)]
pub struct WorkflowRun {
    pub run: Option<RunRecord>,
    pub result: RunResult,
}

/// Runs `request.planner` on the task with the tools `host` holds (see `Host::add_tool`),
/// under its policy and budget, journaling everything as one run.
pub async fn run(
    host: &Host,
    request: RunRequest<'_>,
    progress: Arc<dyn ProgressSink>,
) -> Result<WorkflowRun, Error> {
    check_planner(&request.planner)?;
    let (journal, ledger) = host.start_run("run");
    let ctx = RunContext::live(host, journal.chains());
    let components = ctx.tools().values().chain(ctx.prompts().values());
    for plugin in std::iter::once(&request.planner).chain(components) {
        journal.blob(
            "component",
            &plugin.loaded.digest.to_string(),
            &plugin.loaded.bytes,
        );
    }
    let (record, result) = drive(
        ctx,
        journal,
        request,
        None,
        BTreeMap::new(),
        ledger,
        progress,
    )
    .await
    .expect("a live run records, it cannot diverge");
    Ok(WorkflowRun {
        run: Some(record).filter(|_| host.recording()),
        result,
    })
}

/// Runs the orchestration in `journal` (live or replaying) and finishes it; a replay that
/// diverges stops at the first divergence.
pub(crate) async fn drive(
    ctx: Arc<RunContext>,
    mut journal: RunJournal,
    request: RunRequest<'_>,
    recorded: Option<&EventKind>,
    resumable: BTreeMap<String, resume::Resumed>,
    ledger: Arc<Ledger>,
    progress: Arc<dyn ProgressSink>,
) -> Result<(RunRecord, RunResult), Divergence> {
    let tools: BTreeMap<String, ToolInfo> = ctx
        .tools()
        .iter()
        .filter_map(|(name, plugin)| match &plugin.info {
            Info::Tool(info) => Some((name.clone(), info.clone())),
            _ => None,
        })
        .collect();
    // A replay (or a resumed run) repeats the recorded event: whatever fields later versions
    // added, and whichever component replaces one of the same name, the run diverges only
    // where something it does differs.
    let workflow = recorded.cloned().unwrap_or_else(|| EventKind::Workflow {
        input: request.input.to_string(),
        planner: request.planner.loaded.digest.to_string(),
        prompts: digests(ctx.prompts()),
        settings: serde_json::to_string(request.settings).expect("settings serialize"),
        task: request.task.into(),
        tools: digests(ctx.tools()),
    });
    journal.note(workflow)?;
    let k = request.settings.tool_search_top_k;
    let (tools, search_error) = match k > 0 && tools.len() > k {
        true => {
            let gate = journal.step_gate(discovery::SEARCH_STEP, Arc::new(NoSecrets));
            let found = discovery::top_k(
                &ctx,
                &*gate,
                &request.settings.embedding_model,
                request.task,
                tools,
                k,
            )
            .await;
            journal.record_step(discovery::SEARCH_STEP, "baton", "", &*gate)?;
            found
        }
        false => (tools, None),
    };
    if let Some(message) = search_error {
        progress.report(Progress::Error { message });
    }
    let mut run = Orchestrator {
        ctx,
        journal,
        planner: request.planner,
        task: request.task,
        input: request.input,
        settings: request.settings,
        tools,
        ledger,
        progress,
        started: Instant::now(),
        reports: Vec::new(),
        results: Vec::new(),
        outputs: BTreeMap::new(),
        warned: false,
        planner_fuel: 0,
        resumable,
    };
    let ending = run.plan_and_run().await?;
    let budget = run.ledger.report();
    let totals = Totals::of(&run.reports, ending.decisions, run.planner_fuel, &budget);
    let record = run.journal.finish(ending.status.name())?;
    let result = RunResult {
        run: record.id.clone(),
        workflow: run.settings.name.clone(),
        status: ending.status,
        reason: ending.reason,
        output: ending.output,
        steps: run.reports,
        totals,
        budget: budget.to_string(),
        root: Some(record.root.clone()),
        bundle: None,
    };
    run.progress
        .report(Progress::RunFinished(Box::new(result.clone())));
    Ok((record, result))
}

/// Names and digests of `plugins`, as the `workflow` event lists them.
fn digests(plugins: &BTreeMap<String, Arc<Plugin>>) -> Vec<(String, String)> {
    plugins
        .iter()
        .map(|(name, p)| (name.clone(), p.loaded.digest.to_string()))
        .collect()
}

fn check_planner(planner: &Plugin) -> Result<(), Error> {
    match planner.entry() {
        Entry::Planner(_) => Ok(()),
        _ => Err(Error::WrongWorld {
            path: planner.loaded.source.clone(),
            world: planner.loaded.shape.world,
            what: "`baton run` needs a planner (see plugins/planners/)",
        }),
    }
}

/// How the planner loop ended.
struct Ending {
    status: RunStatus,
    reason: Option<String>,
    output: Option<Value>,
    decisions: u32,
}

struct Orchestrator<'a> {
    ctx: Arc<RunContext>,
    journal: RunJournal,
    planner: Arc<Plugin>,
    task: &'a str,
    input: &'a Value,
    settings: &'a Settings,
    /// What the planner is told about the tools.
    tools: BTreeMap<String, ToolInfo>,
    ledger: Arc<Ledger>,
    progress: Arc<dyn ProgressSink>,
    started: Instant,
    /// Finished steps, in plan order.
    reports: Vec<StepReport>,
    /// The same, as the planner sees them.
    results: Vec<StepResult>,
    /// Outputs of the steps that succeeded, for input templates.
    outputs: BTreeMap<String, Value>,
    /// Whether a budget warning was given.
    warned: bool,
    /// Fuel the planner's decisions burned.
    planner_fuel: u64,
    /// Outputs of an interrupted run's steps, by id, that this run takes over.
    resumable: BTreeMap<String, resume::Resumed>,
}

impl Orchestrator<'_> {
    async fn plan_and_run(&mut self) -> Result<Ending, Divergence> {
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
                Ok(decision) => decision,
                Err(e) => {
                    let status = match step::is_budget(&e) {
                        true => RunStatus::BudgetExceeded,
                        false => RunStatus::Failed,
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
            steps_asked += planned.len();
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

    /// The planner's `finish`: its output with references to step outputs filled in.
    fn finish(&self, output: &str, decisions: u32) -> Ending {
        let rendered = serde_json::from_str::<Value>(output)
            .map_err(|e| format!("its output is not JSON ({e})"))
            .and_then(|template| template::render(&template, &self.scope()));
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

    fn scope(&self) -> template::Scope<'_> {
        template::Scope {
            task: Value::String(self.task.into()),
            input: self.input,
            outputs: &self.outputs,
        }
    }

    /// Calls the planner's `next` in chain `plan:N` and enters it in the run chain.
    async fn ask_planner(&mut self, iteration: u32) -> Result<Result<Decision, Error>, Divergence> {
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
        let call = async |store: &mut wasmtime::Store<_>, instance: &_| {
            let decision = entry
                .load(&mut *store, instance)?
                .call_next(&mut *store, &state)
                .await?;
            let text = plan::decision_json(&decision);
            let _ = decided.set(decision);
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
        let invocation = Invocation {
            plugin: &planner,
            input: &input,
            access,
            gate: gate.clone(),
            timeout: None,
            depth: 0,
            ledger,
        };
        let result = self.ctx.invoke_with(invocation, call).await;
        let digest = planner.loaded.digest.to_string();
        self.journal
            .record_step(&step, planner.name(), &digest, &*gate)?;
        Ok(result.map(|(_, usage)| {
            self.planner_fuel += usage.fuel;
            decided.into_inner().expect("next returned a decision")
        }))
    }

    /// Runs one decision's steps: each as soon as the steps it depends on have succeeded
    /// (skipped if one of them did not), at most `max_parallel` at once. Returns why the
    /// run must stop if the budget ran out.
    async fn run_steps(&mut self, planned: Vec<PlannedStep>) -> Result<Option<String>, Divergence> {
        let mut slots: Vec<Option<StepDone>> = planned.iter().map(|_| None).collect();
        let mut status: Vec<Option<StepStatus>> = vec![None; planned.len()];
        let mut started = vec![false; planned.len()];
        let mut tasks = tokio::task::JoinSet::new();
        let mut recorded = 0;
        let mut out_of_budget: Option<String> = None;
        loop {
            // Start (or skip) every step that can be, in plan order, until nothing changes.
            let mut launch = Vec::new();
            let mut changed = true;
            while changed {
                changed = false;
                for (i, step) in planned.iter().enumerate() {
                    if started[i] {
                        continue;
                    }
                    let blocked = step
                        .after
                        .iter()
                        .find(|&&d| status[d].is_some_and(|s| s != StepStatus::Ok));
                    let skip_reason = match (blocked, &out_of_budget) {
                        (Some(&d), _) => Some(format!(
                            "skipped: step '{}' it depends on did not succeed",
                            planned[d].id
                        )),
                        (None, Some(_)) => Some("skipped: the run's budget ran out".into()),
                        (None, None) => None,
                    };
                    let ready = step.after.iter().all(|&d| status[d].is_some());
                    let running = tasks.len() + launch.len();
                    let done = match skip_reason {
                        Some(reason) => Some(StepDone::not_run(
                            i,
                            step,
                            StepStatus::Skipped,
                            reason,
                            self.elapsed_ms(),
                        )),
                        None if !ready || running >= self.settings.max_parallel => continue,
                        None => match self.prepare(i, step) {
                            Ok(job) => {
                                self.progress.report(Progress::StepStarted {
                                    id: step.id.clone(),
                                    tool: step.tool.clone(),
                                    attempt: 1,
                                });
                                launch.push(job);
                                None
                            }
                            Err(done) => Some(*done),
                        },
                    };
                    started[i] = true;
                    changed = true;
                    if let Some(done) = done {
                        status[i] = Some(done.report.status);
                        self.report_progress(&done);
                        slots[i] = Some(done);
                    }
                }
            }
            // A step that is the only one that can run is run here: a task of its own would
            // only add a hand-over to another thread and back.
            let inline = launch.len() == 1 && tasks.is_empty();
            if inline {
                let job = launch.pop().expect("one step to launch");
                let done = job.run().await;
                self.step_ended(done, &mut status, &mut slots, &mut out_of_budget);
            }
            for job in launch {
                tasks.spawn(job.run());
            }
            // Enter finished steps in the run chain in plan order.
            while let Some(done) = slots.get_mut(recorded).and_then(Option::take) {
                self.record(done)?;
                recorded += 1;
            }
            if recorded == planned.len() {
                return Ok(out_of_budget);
            }
            if inline {
                continue;
            }
            let joined = tasks
                .join_next()
                .await
                .expect("an acyclic plan always has a step running or ready");
            let done = joined.expect("a step task does not panic");
            self.step_ended(done, &mut status, &mut slots, &mut out_of_budget);
        }
    }

    /// Takes in a step that ended: its output for later templates, whether the budget ran
    /// out, its progress, and its place in plan order until the run chain enters it.
    fn step_ended(
        &mut self,
        done: StepDone,
        status: &mut [Option<StepStatus>],
        slots: &mut [Option<StepDone>],
        out_of_budget: &mut Option<String>,
    ) {
        if let Some(output) = &done.report.output {
            self.outputs.insert(done.report.id.clone(), output.clone());
        }
        if out_of_budget.is_none() && done.out_of_budget {
            out_of_budget.clone_from(&done.report.error);
        }
        self.report_progress(&done);
        status[done.index] = Some(done.report.status);
        let index = done.index;
        slots[index] = Some(done);
    }

    /// The job of running step `index`, or its failure if its input cannot be made.
    fn prepare(&self, index: usize, step: &PlannedStep) -> Result<StepJob, Box<StepDone>> {
        let (retries, timeout) = self.settings.for_step(&step.id);
        let fail = |reason: String| {
            let at = self.elapsed_ms();
            Box::new(StepDone::not_run(
                index,
                step,
                StepStatus::Failed,
                reason,
                at,
            ))
        };
        let input = template::render(&step.input, &self.scope())
            .map_err(|e| fail(format!("its input cannot be made: {e}")))?;
        let plugin = self.ctx.tools()[&step.tool].clone();
        Ok(StepJob {
            ctx: self.ctx.clone(),
            index,
            id: step.id.clone(),
            plugin,
            input: input.to_string(),
            retries,
            timeout,
            backoff: std::time::Duration::from_millis(self.settings.retry_backoff_ms),
            replicates: step.replicates,
            embedding_model: self.settings.embedding_model.clone(),
            progress: self.progress.clone(),
            taken_over: self.taken_over(&step.id, &step.tool, &input),
            ledger: Ledger::step(
                &self.ledger,
                &step.id,
                self.ctx
                    .policy()
                    .step_budget(&step.tool, self.ctx.tools()[&step.tool].subject()),
            ),
            started: self.started,
        })
    }

    /// What step `id` takes over instead of running: live, the output of the interrupted run
    /// being resumed (same tool, same input); in a replay, what the record took over. The
    /// event its chain records and the output.
    fn taken_over(&self, id: &str, tool: &str, input: &Value) -> Option<(EventKind, String)> {
        if let Some(events) = self.ctx.recorded_chain(&step_chain(id)) {
            let output = resume::Resumed::recorded(events)?;
            return Some((events[0].kind.clone(), output));
        }
        let earlier = self.resumable.get(id)?;
        let same_input = serde_json::from_str::<Value>(&earlier.input).is_ok_and(|v| v == *input);
        (earlier.tool == tool && same_input).then(|| (earlier.event(), earlier.output.clone()))
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Enters a finished step in the run chain and the results.
    fn record(&mut self, done: StepDone) -> Result<(), Divergence> {
        let digest = self.ctx.tools()[&done.report.tool]
            .loaded
            .digest
            .to_string();
        for (attempt, gate) in &done.attempts {
            self.journal
                .record_step(attempt, &done.report.tool, &digest, &**gate)?;
        }
        let output = match (&done.report.output, &done.report.error) {
            (Some(output), _) => Ok(output.to_string()),
            (None, error) => Err(ToolError::Failed(error.clone().unwrap_or_default())),
        };
        self.results.push(StepResult {
            id: done.report.id.clone(),
            tool: done.report.tool.clone(),
            output,
        });
        self.reports.push(done.report);
        Ok(())
    }

    fn report_progress(&mut self, done: &StepDone) {
        if done.report.cache_hits > 0 {
            self.progress.report(Progress::CacheHit {
                id: done.report.id.clone(),
                hits: done.report.cache_hits,
            });
        }
        if let Some(error) = &done.report.error {
            self.progress.report(Progress::Error {
                message: format!("step '{}': {error}", done.report.id),
            });
        }
        self.progress
            .report(Progress::StepFinished(done.report.clone()));
        if !self.warned
            && let Some(message) = low_budget(&self.ledger.report())
        {
            self.warned = true;
            self.progress.report(Progress::BudgetWarning { message });
        }
    }
}

/// A warning when less than a fifth of a budget limit is left.
fn low_budget(report: &BudgetReport) -> Option<String> {
    let limits = report.limits;
    let spent = report.spent;
    let checks = [
        ("tokens", limits.tokens, spent.tokens),
        ("usd", limits.usd.map(|u| u.0), spent.usd.0),
        ("calls", limits.calls, spent.calls),
        ("fuel", limits.fuel, spent.fuel),
    ];
    checks.into_iter().find_map(|(key, limit, spent)| {
        let limit = limit?;
        (limit > 0 && spent.saturating_mul(5) >= limit.saturating_mul(4))
            .then(|| format!("over 80% of the run's budget.{key} is spent; budget: {report}"))
    })
}

/// What a replay reproduced (a recorded failure replays as the same failure).
#[derive(Debug)]
pub enum Replayed {
    /// A `baton call`'s result.
    Call(Result<ToolCall, Error>),
    /// A `baton run`'s result.
    Run(Box<RunResult>),
}

/// Re-runs the run recorded in `bundle` with the recorded inputs and effects, comparing
/// every event: a recorded tool call, or a recorded `baton run`. `component` replaces the
/// recorded component of the same name (to test a new version against a recorded run).
pub async fn replay(
    host: &Host,
    bundle: &Path,
    component: Option<&Path>,
) -> Result<ReplayReport<Replayed>, Error> {
    let recorded = host.open_recorded(bundle, component).await?;
    if !recorded.is_workflow() {
        let report = host.replay_call(recorded).await?;
        return Ok(ReplayReport {
            run: report.run,
            events: report.events,
            root: report.root,
            outcome: Replayed::Call(report.outcome),
        });
    }
    replay_workflow(host, recorded).await
}

/// Replays a recorded `baton run`: the recorded planner and tools, task, input and settings,
/// with every effect served from the record and every event compared.
async fn replay_workflow(
    host: &Host,
    recorded: RecordedRun,
) -> Result<ReplayReport<Replayed>, Error> {
    let recorded::RecordedWorkflow {
        event: workflow,
        task,
        input,
        settings,
        mut planner,
        mut tools,
        prompts,
    } = recorded::RecordedWorkflow::read(&recorded.events, &recorded.components)
        .map_err(|reason| recorded.invalid(reason))?;
    if let Some(replacement) = &recorded.replacement {
        let name = replacement.name().to_string();
        if name == planner.name() {
            planner = replacement.clone();
        } else if let Some(tool) = tools.get_mut(&name) {
            *tool = replacement.clone();
        } else {
            return Err(recorded.invalid(format!(
                "the run used no component named '{name}' to replace"
            )));
        }
    }
    check_planner(&planner)?;
    let journal = RunJournal::replay(&recorded.events, None);
    let ctx = RunContext::recorded(
        host,
        recorded.policy.clone(),
        (tools, prompts),
        journal.chains(),
    );
    // Budget decisions are recorded too; a replay does not make them again.
    let ledger = Ledger::run(Default::default());
    let request = RunRequest {
        planner,
        task,
        input: &input,
        settings: &settings,
    };
    let (record, result) = drive(
        ctx,
        journal,
        request,
        Some(workflow),
        BTreeMap::new(),
        ledger,
        Arc::new(progress::Quiet),
    )
    .await
    .map_err(Error::Diverged)?;
    Ok(ReplayReport {
        run: record.id,
        events: record.events,
        root: record.root,
        outcome: Replayed::Run(Box::new(result)),
    })
}

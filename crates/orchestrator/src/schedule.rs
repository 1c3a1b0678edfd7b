//! One decision's steps scheduled: each started as soon as the steps it depends on have
//! succeeded, at most `max_parallel` at once, entered in the run chain in plan order.

use baton_budget::BudgetReport;
use baton_effects::Divergence;
use baton_journal::event::{EventKind, step_chain};
use baton_policy::LimitsSpec;
use baton_runtime::bindings::types::{StepResult, ToolError};
use baton_runtime::flow::Labels;
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

use crate::plan::PlannedStep;
use crate::progress::Progress;
use crate::result::StepStatus;
use crate::session::Orchestrator;
use crate::step::{Attempt, StepDone, StepJob, step_ledger};
use crate::{resume, template};
use std::future::Future;
use std::pin::Pin;

impl Orchestrator<'_> {
    /// Runs one decision's steps: each as soon as the steps it depends on have succeeded
    /// (skipped if one of them did not), at most `max_parallel` at once. Returns why the
    /// run must stop if the budget ran out.
    pub(crate) async fn run_steps(
        &mut self,
        planned: Vec<PlannedStep>,
    ) -> Result<Option<String>, Divergence> {
        let mut slots: Vec<Option<StepDone>> = planned.iter().map(|_| None).collect();
        let mut status: Vec<Option<StepStatus>> = vec![None; planned.len()];
        let mut started = vec![false; planned.len()];
        let mut tasks = tokio::task::JoinSet::new();
        let mut recorded = 0;
        let mut out_of_budget: Option<String> = None;
        // Whether steps entered in the run chain are not yet committed.
        let mut uncommitted = false;
        loop {
            // A step that ended is kept before any step after it starts, so that a run
            // resumed after a crash takes it over rather than running it again.
            uncommitted |= self.enter_finished(&mut slots, &mut recorded)?;
            if uncommitted && started.contains(&false) {
                uncommitted = false;
                if let Err(e) = self.journal.commit() {
                    tracing::warn!("the steps that ended cannot be kept yet: {e}");
                }
            }
            if recorded == planned.len() {
                return Ok(out_of_budget);
            }
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
                            (&step.id, &step.tool),
                            StepStatus::Skipped,
                            reason,
                            self.elapsed_ms(),
                        )),
                        None if !ready || running >= self.settings.max_parallel => continue,
                        None => match self.prepare(i, step) {
                            Ok(job) => {
                                Arc::make_mut(&mut self.inputs)
                                    .insert(job.id.clone(), job.input.clone());
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
                let done = self.start(job).await;
                self.step_ended(done, &mut status, &mut slots, &mut out_of_budget);
            }
            for job in launch {
                tasks.spawn(self.start(job).in_current_span());
            }
            uncommitted |= self.enter_finished(&mut slots, &mut recorded)?;
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

    /// Enters the steps that ended in the run chain, in plan order from `recorded` (the
    /// number entered so far); returns whether it entered any.
    fn enter_finished(
        &mut self,
        slots: &mut [Option<StepDone>],
        recorded: &mut usize,
    ) -> Result<bool, Divergence> {
        let before = *recorded;
        while let Some(done) = slots.get_mut(*recorded).and_then(Option::take) {
            self.record(done)?;
            *recorded += 1;
        }
        Ok(*recorded > before)
    }

    /// A step's run: here, or on a worker when the run dispatches its steps (a step that
    /// takes over a recorded output runs nothing, so it stays here).
    fn start(&mut self, job: StepJob) -> Pin<Box<dyn Future<Output = StepDone> + Send>> {
        let Some(dispatch) = self.dispatch.clone().filter(|_| job.taken_over.is_none()) else {
            return Box::pin(job.run());
        };
        // Workers read the run's start (its workflow, policy and components) from the store.
        if !self.committed {
            if let Err(e) = self.journal.commit() {
                let reason = format!("the run's start cannot be shared with workers: {e}");
                let at = self.elapsed_ms();
                let step = (job.id.as_str(), job.plugin.name());
                let done = StepDone::not_run(job.index, step, StepStatus::Failed, reason, at);
                return Box::pin(std::future::ready(done));
            }
            self.committed = true;
        }
        let signatures = crate::remote::signatures(
            std::iter::once(&self.planner)
                .chain(self.ctx.tools().values())
                .chain(self.ctx.prompts().values()),
        );
        Box::pin(job.remote(dispatch, self.journal.id().to_string(), signatures))
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
        self.labels
            .insert(done.report.id.clone(), done.labels.clone());
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
                (&step.id, &step.tool),
                StepStatus::Failed,
                reason,
                at,
            ))
        };
        // What the input renders to may be no larger than a call takes.
        let (max_input, _) = self.ctx.policy().max_input(&LimitsSpec::default());
        // A fork may give its step another input than the plan's.
        let input = match self.settings.inputs.get(&step.id) {
            Some(given) => given.clone(),
            None => template::render(&step.input, &self.scope(), max_input)
                .map_err(|e| fail(format!("its input cannot be made: {e}")))?,
        };
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
            max_parallel: self.settings.max_parallel,
            embedding_model: self.settings.embedding_model.clone(),
            progress: self.progress.clone(),
            taken_over: self
                .given_output(&step.id)
                .or_else(|| self.taken_over(&step.id, &step.tool, &input)),
            ledger: step_ledger(
                &self.ledger,
                &step.id,
                self.settings.step_budget(&step.id),
                self.ctx
                    .policy()
                    .step_budget(&step.tool, self.ctx.tools()[&step.tool].subject()),
            ),
            cancel: self.cancel.clone(),
            started: self.started,
            cache: self.settings.cache,
            labels: self.input_labels(step),
        })
    }

    /// What step `id` takes over instead of running: live, the output of the interrupted run
    /// being resumed (same tool, same input); in a replay, what the record took over. The
    /// event its chain records and the output.
    fn taken_over(
        &self,
        id: &str,
        tool: &str,
        input: &Value,
    ) -> Option<(EventKind, String, Labels)> {
        if let Some(events) = self.ctx.recorded_chain(&step_chain(id)) {
            let (output, labels) = resume::Resumed::recorded(events)?;
            return Some((events[0].kind.clone(), output, labels));
        }
        let earlier = self.resumable.get(id)?;
        let same_input = serde_json::from_str::<Value>(&earlier.input).is_ok_and(|v| v == *input);
        (earlier.tool == tool && same_input).then(|| {
            let output = earlier.output.clone();
            (earlier.event(), output, earlier.labels.clone())
        })
    }

    /// The result a fork gave step `id` instead of running it (`--response`): its chain
    /// records it as taken over from no run.
    fn given_output(&self, id: &str) -> Option<(EventKind, String, Labels)> {
        let output = self.settings.outputs.get(id)?.to_string();
        let event = EventKind::Resumed {
            chain: String::new(),
            output: output.clone(),
            root: String::new(),
            run: String::new(),
        };
        Some((event, output, Labels::public()))
    }

    /// What step `step`'s input carries: the labels of the planner decision that asked for
    /// it and of the outputs its input refers to.
    fn input_labels(&self, step: &PlannedStep) -> Labels {
        let mut labels = self.decided.clone();
        for id in template::steps_referenced(&step.input).unwrap_or_default() {
            if let Some(carried) = self.labels.get(&id) {
                labels.join(carried);
            }
        }
        labels
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Enters a finished step in the run chain and the results.
    fn record(&mut self, done: StepDone) -> Result<(), Divergence> {
        let digest = self.ctx.tools()[&done.report.tool]
            .loaded
            .digest
            .to_string();
        for (attempt, chain) in done.attempts {
            match chain {
                Attempt::Open(gate) => {
                    self.journal
                        .record_step(&attempt, &done.report.tool, &digest, &*gate)?
                }
                Attempt::Sealed(sealed) => {
                    self.journal
                        .record_sealed(&attempt, &done.report.tool, &digest, sealed)?
                }
            }
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
            .report(Progress::StepFinished(Box::new(done.report.clone())));
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

//! `baton run --resume RUN`: continue a run that was interrupted (or stopped by its budget or
//! a failed step) without repeating the steps it completed.
//!
//! The resumed run is a new run of the same planner, tools, task, input, settings and policy,
//! read from the journal. The planner is asked again from the start; a step it asks for that
//! the earlier run completed, with the same tool and the same input, is not run again: its
//! chain holds one `resumed` event with the earlier output, the earlier run's id and the root
//! of the chain that produced it. Only steps the earlier run chain entered count as completed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use baton_budget::Ledger;
use baton_journal::event::{Event, EventKind, InvocationOutcome, RUN_CHAIN, step_chain};
use baton_journal::verify_run;
use baton_runtime::flow::Labels;
use baton_runtime::recorded::recorded_policy;
use baton_runtime::run::{RunContext, RunJournal};
use baton_runtime::{Error, Host};

use super::progress::ProgressSink;
use super::recorded::RecordedWorkflow;
use super::{Controls, Launch, RunRequest, WorkflowRun, drive};

/// A step output a resumed run takes over instead of running the step again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resumed {
    pub tool: String,
    /// The step's input (compact JSON), which must be the same again.
    pub input: String,
    pub output: String,
    /// Where it was produced: the run, the chain and that chain's root hash.
    pub run: String,
    pub chain: String,
    pub root: String,
    /// What the output carried.
    pub labels: Labels,
}

impl Resumed {
    pub fn event(&self) -> EventKind {
        EventKind::Resumed {
            chain: self.chain.clone(),
            output: self.output.clone(),
            root: self.root.clone(),
            run: self.run.clone(),
        }
    }

    /// The output a recorded chain took over (a replay of a resumed run), and what it
    /// carried.
    pub fn recorded(events: &[Event]) -> Option<(String, Labels)> {
        match events.first().map(|e| &e.kind) {
            Some(EventKind::Resumed { output, .. }) => Some((
                output.clone(),
                Labels::at_end(events.iter().map(|e| &e.kind)),
            )),
            _ => None,
        }
    }
}

/// The steps `events` (one run) completed, by step id: the last attempt of each step the run
/// chain entered, if it returned an output.
pub(crate) fn completed(events: &[Event]) -> BTreeMap<String, Resumed> {
    let run = events.first().map(|e| e.run.clone()).unwrap_or_default();
    let mut tools = BTreeMap::new();
    let mut done = BTreeMap::new();
    for event in events.iter().filter(|e| e.chain == RUN_CHAIN) {
        match &event.kind {
            EventKind::StepStarted { step, tool, .. } => {
                tools.insert(step.clone(), tool.clone());
            }
            EventKind::StepEnded { step, root, .. } => {
                // Decisions, tool searches and replicates are not steps to take over.
                if step.contains([':', '#']) {
                    continue;
                }
                let id = step.split('~').next().unwrap_or(step).to_string();
                let chain = step_chain(step);
                let chain_events: Vec<&Event> =
                    events.iter().filter(|e| e.chain == chain).collect();
                let input = chain_events.iter().find_map(|e| match &e.kind {
                    EventKind::InvocationStarted { input, .. } => Some(input.clone()),
                    _ => None,
                });
                let output = chain_events.iter().rev().find_map(|e| match &e.kind {
                    EventKind::InvocationEnded {
                        outcome: InvocationOutcome::Returned { output },
                        ..
                    } => Some(output.clone()),
                    _ => None,
                });
                let taken_over = chain_events.first().and_then(|e| match &e.kind {
                    EventKind::Resumed { .. } => done.get(&id).cloned(),
                    _ => None,
                });
                match (taken_over, input, output) {
                    (Some(earlier), _, _) => {
                        done.insert(id, earlier);
                    }
                    (None, Some(input), Some(output)) => {
                        let resumed = Resumed {
                            tool: tools.get(step).cloned().unwrap_or_default(),
                            input,
                            output,
                            run: run.clone(),
                            chain,
                            root: root.clone(),
                            labels: Labels::at_end(chain_events.iter().map(|e| &e.kind)),
                        };
                        done.insert(id, resumed);
                    }
                    _ => {
                        done.remove(&id);
                    }
                }
            }
            _ => {}
        }
    }
    done
}

/// Continues `run` (an id or a unique prefix) from `host`'s journal as a new run, taking
/// over the outputs of the steps it completed.
pub async fn resume(
    host: &Host,
    run: &str,
    progress: Arc<dyn ProgressSink>,
) -> Result<WorkflowRun, Error> {
    resume_with(host, run, progress, Launch::default()).await
}

/// `resume`, with the new run's id, budget, account and cancellation as `how` says (its
/// components are the recorded ones).
pub async fn resume_with(
    host: &Host,
    run: &str,
    progress: Arc<dyn ProgressSink>,
    how: Launch<'_>,
) -> Result<WorkflowRun, Error> {
    let refuse = |reason: String| Error::Resume {
        run: run.to_string(),
        reason,
    };
    let journal = host
        .journal()
        .ok_or_else(|| refuse("there is no journal to read it from".into()))?;
    // Messages name the store as its users gave it.
    let location = PathBuf::from(journal.location());
    let summary = journal.find_run(run)?.ok_or_else(|| {
        refuse(format!(
            "no run '{run}' is recorded in {} (see `baton trace ls`)",
            location.display()
        ))
    })?;
    let events = journal.events(&summary.run)?;
    let verified = verify_run(&events).map_err(|source| Error::Tampered {
        path: location.clone(),
        source,
    })?;
    if verified.complete && summary.status == "succeeded" {
        return Err(refuse("it succeeded; there is nothing left to do".into()));
    }
    if !events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Workflow { .. }))
    {
        return Err(refuse(format!(
            "it was recorded by `baton {}`, not `baton run`",
            summary.command
        )));
    }
    let components = host
        .recorded_components(journal, &summary.run, &events, &location)
        .await?;
    let RecordedWorkflow {
        event: workflow,
        task,
        input,
        settings,
        planner,
        tools,
        prompts,
    } = RecordedWorkflow::read(&events, &components).map_err(refuse)?;
    let policy = recorded_policy(journal, &summary.run, &events).map_err(refuse)?;
    let Some(EventKind::RunStarted { policies, .. }) = events.first().map(|e| &e.kind) else {
        return Err(refuse("its run does not start with run_started".into()));
    };
    let recorder = journal.recorder().cloned();
    let resumed = RunJournal::live(
        recorder.clone(),
        host.signer().cloned(),
        host.pure_cache().cloned(),
        host.journal_allowance(),
        how.id,
        "run",
        policies.clone(),
    );
    for (digest, bytes) in journal.blobs(&summary.run, "policy")? {
        resumed.blob("policy", &digest, &bytes.into());
    }
    for plugin in components.values() {
        resumed.blob(
            "component",
            &plugin.loaded.digest.to_string(),
            &plugin.loaded.bytes,
        );
    }
    let ctx = RunContext::recorded(host, policy, (tools, prompts), resumed.chains());
    let request = RunRequest {
        planner,
        task,
        input: &input,
        settings: &settings,
    };
    let budget = how.budget.unwrap_or(host.budget());
    let ledger = Ledger::run_for(budget, how.account);
    let (record, result) = drive(
        ctx,
        resumed,
        request,
        Some(workflow),
        completed(&events),
        Controls {
            ledger,
            progress,
            cancel: how.cancel,
            dispatch: None,
        },
    )
    .await
    .expect("a live run records, it cannot diverge");
    Ok(WorkflowRun {
        run: Some(record).filter(|_| recorder.is_some()),
        result,
    })
}

//! `baton replay BUNDLE --fork-at STEP`: a recorded run replayed exactly up to one of its
//! steps, then live from there with a change (another input for that step, another result
//! in place of running it, or another version of a tool), as a new run whose journal names its parent and the fork point. The
//! planner decisions and steps the record holds before the fork point are replayed and
//! copied (their requests compared, their answers served); the fork runs under the recorded
//! policy, on this host.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use baton_budget::Ledger;
use baton_journal::event::{EventKind, RUN_CHAIN};
use baton_runtime::run::{RunContext, RunJournal};
use baton_runtime::{Error, Host};

use crate::progress::ProgressSink;
use crate::workflow::ForkPoint;
use crate::{Controls, RunRequest, WorkflowRun, check_planner, drive, keep_components, recorded};

/// What a fork changes.
#[derive(Debug, Default)]
pub struct ForkChange<'a> {
    /// The forked step's input, instead of the recorded one.
    pub input: Option<Value>,
    /// The forked step's result, instead of running it.
    pub output: Option<Value>,
    /// A component run instead of the recorded one of its name, from the fork on.
    pub component: Option<&'a Path>,
}

/// Forks the `baton run` recorded in `bundle` at its step `at`, with `change`.
pub async fn fork(
    host: &Host,
    bundle: &Path,
    at: &str,
    change: ForkChange<'_>,
    progress: Arc<dyn ProgressSink>,
) -> Result<WorkflowRun, Error> {
    let refuse = |reason: String| Error::Fork {
        bundle: bundle.to_owned(),
        reason,
    };
    let recorded = host.open_recorded(bundle, change.component).await?;
    if !recorded.is_workflow() {
        return Err(refuse(
            "it records no `baton run`; only a workflow's run can be forked".into(),
        ));
    }
    let events = &recorded.events;
    let read = recorded::RecordedWorkflow::read(events, &recorded.components).map_err(refuse)?;
    let (task, input, mut settings) = (read.task.to_string(), read.input, read.settings);
    let (planner, mut tools, prompts) = (read.planner, read.tools, read.prompts);
    let started: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.chain == RUN_CHAIN)
        .filter_map(|e| match &e.kind {
            EventKind::StepStarted { step, tool, .. } => Some((step.as_str(), tool.as_str())),
            _ => None,
        })
        .collect();
    let Some(position) = started.iter().position(|(step, _)| *step == at) else {
        let steps: Vec<&str> = started
            .iter()
            .map(|(step, _)| *step)
            .filter(|s| !s.contains(':'))
            .collect();
        return Err(refuse(format!(
            "it never started a step '{at}'; its steps are {}",
            steps.join(", ")
        )));
    };
    if let Some(replacement) = &recorded.replacement {
        let name = replacement.name();
        if !tools.contains_key(name) {
            return Err(refuse(format!(
                "the run used no tool named '{name}' to replace"
            )));
        }
        if let Some((step, _)) = started[..position].iter().find(|(_, tool)| *tool == name) {
            return Err(refuse(format!(
                "'{name}' ran at step '{step}', before the fork point, where the record is \
                 replayed as it is; fork at '{step}' to replace it"
            )));
        }
        tools.insert(name.to_string(), replacement.clone());
    }
    check_planner(&planner)?;
    let parent = events.first().map(|e| e.run.clone()).unwrap_or_default();
    settings.forked_from = Some(ForkPoint {
        run: parent,
        step: at.to_string(),
    });
    if let Some(input) = change.input {
        settings.inputs.insert(at.to_string(), input);
    }
    if let Some(output) = change.output {
        settings.outputs.insert(at.to_string(), output);
    }
    let Some(EventKind::RunStarted { policies, .. }) = events.first().map(|e| &e.kind) else {
        return Err(refuse("its run does not start with run_started".into()));
    };
    let recorder = host
        .journal()
        .and_then(|j| j.recorder().cloned())
        .ok_or_else(|| refuse("this host keeps no journal to record the fork in".into()))?;
    let journal = RunJournal::fork(
        events,
        at,
        Some(recorder),
        host.signer().cloned(),
        host.journal_allowance(),
        "run",
        policies.clone(),
    )
    .ok_or_else(|| refuse(format!("it never started a step '{at}'")))?;
    for (_, text) in recorded.policy.texts() {
        let digest = baton_core::Digest::of(text.as_bytes()).to_string();
        journal.blob("policy", &digest, &text.as_bytes().into());
    }
    let ctx = RunContext::recorded(
        host,
        recorded.policy.clone(),
        (tools, prompts),
        journal.chains(),
    );
    keep_components(&journal, &ctx, &planner);
    let request = RunRequest {
        planner,
        task: &task,
        input: &input,
        settings: &settings,
    };
    let (record, result) = drive(
        ctx,
        journal,
        request,
        None,
        BTreeMap::new(),
        Controls::recorded(Ledger::run(host.budget()), progress),
    )
    .await
    .map_err(Error::Diverged)?;
    Ok(WorkflowRun {
        run: Some(record),
        result,
    })
}

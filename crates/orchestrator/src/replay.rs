//! A recorded run replayed: a tool call, or a whole workflow, from its bundle.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use baton_budget::Ledger;
use baton_journal::event::EventKind;
use baton_runtime::completion::ModelReply;
use baton_runtime::run::{RunContext, RunJournal};
use baton_runtime::{Error, Host, RecordedRun, ReplayReport, ToolCall};

use crate::result::RunResult;
use crate::{Controls, RunRequest, check_planner, drive, progress, recorded};

/// What a replay reproduced (a recorded failure replays as the same failure).
#[derive(Debug)]
pub enum Replayed {
    /// The results of a run's tool calls (one for `baton call`; one per call of an MCP
    /// session).
    Calls(Vec<Result<ToolCall, Error>>),
    /// A `baton run`'s result.
    Run(Box<RunResult>),
    /// The answers to a run of model requests (`baton llm complete`, the gateway of
    /// `baton serve`).
    Models(Vec<ModelReply>),
}

/// Re-runs the run recorded in `bundle` with the recorded inputs and effects, comparing
/// every event: recorded tool calls (`baton call`, an MCP session), or a recorded
/// `baton run`. `component` replaces the
/// recorded component of the same name (to test a new version against a recorded run).
pub async fn replay(
    host: &Host,
    bundle: &Path,
    component: Option<&Path>,
) -> Result<ReplayReport<Replayed>, Error> {
    let recorded = host.open_recorded(bundle, component).await?;
    if recorded.is_models() {
        let report = host.replay_models(recorded).await?;
        return Ok(ReplayReport {
            run: report.run,
            events: report.events,
            root: report.root,
            outcome: Replayed::Models(report.outcome),
            replaced: report.replaced,
        });
    }
    if !recorded.is_workflow() {
        let report = host.replay_calls(recorded).await?;
        return Ok(ReplayReport {
            run: report.run,
            events: report.events,
            root: report.root,
            outcome: Replayed::Calls(report.outcome),
            replaced: report.replaced,
        });
    }
    replay_workflow(host, recorded).await
}

/// Replays a recorded `baton run`: the recorded planner and tools, task, input and settings,
/// with every effect served from the record and every event compared.
async fn replay_workflow(
    host: &Host,
    mut recorded: RecordedRun,
) -> Result<ReplayReport<Replayed>, Error> {
    let read = recorded::RecordedWorkflow::read(&recorded.events, &recorded.components)
        .map_err(|reason| recorded.invalid(reason))?;
    let (task, input, settings) = (read.task.to_string(), read.input, read.settings);
    let (mut planner, mut tools, prompts) = (read.planner, read.tools, read.prompts);
    if let Some(replacement) = recorded.replacement.clone() {
        let name = replacement.name().to_string();
        let replaced = match tools.get_mut(&name) {
            _ if name == planner.name() => &mut planner,
            Some(tool) => tool,
            None => {
                return Err(recorded.invalid(format!(
                    "the run used no component named '{name}' to replace"
                )));
            }
        };
        let old = replaced.loaded.digest.to_string();
        *replaced = replacement.clone();
        recorded.expect_replacement(&replacement, &old, &name)?;
    }
    check_planner(&planner)?;
    // The workflow event as the replay expects it (naming a replacement's digest).
    let workflow = recorded
        .events
        .iter()
        .map(|e| &e.kind)
        .find(|kind| matches!(kind, EventKind::Workflow { .. }))
        .ok_or_else(|| recorded.invalid("it records no `baton run` workflow".into()))?;
    let journal = RunJournal::replay(&recorded.events, None, recorded.replaced.is_some());
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
        task: &task,
        input: &input,
        settings: &settings,
    };
    let (record, result) = drive(
        ctx,
        journal,
        request,
        Some(workflow),
        BTreeMap::new(),
        Controls::recorded(ledger, Arc::new(progress::Quiet)),
    )
    .await
    .map_err(Error::Diverged)?;
    Ok(ReplayReport {
        run: record.id,
        events: record.events,
        root: record.root.get()?,
        outcome: Replayed::Run(Box::new(result)),
        replaced: recorded.replaced,
    })
}

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
mod fork;
mod recorded;
pub mod remote;
mod replay;
mod resume;
mod schedule;
mod session;
mod step;

pub use fork::{ForkChange, fork};
pub use replay::{Replayed, replay};
pub use resume::{resume, resume_with};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use baton_budget::{BudgetLimits, Ledger};
use baton_effects::{Divergence, NoSecrets};
use baton_journal::event::EventKind;
use baton_runtime::bindings::types::ToolInfo;
use baton_runtime::host::RunStart;
use baton_runtime::plugin::Entry;
use baton_runtime::run::{RunContext, RunJournal, RunRecord};
use baton_runtime::{Error, Host, Info, Plugin};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use progress::{Progress, ProgressSink};
use remote::Dispatch;
use result::{RunResult, Totals};
use session::Orchestrator;
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
    launch(host, &request.planner, Launch::default())?
        .run(request, progress)
        .await
}

/// How a run is launched when not as `baton run` launches it: with components of its own,
/// a budget of its own, spending from an account, cancellable.
#[derive(Default)]
pub struct Launch<'a> {
    /// The run's id (`None`: a new one).
    pub id: Option<String>,
    /// The tools and prompts of the run (`None`: those the host holds).
    pub components: Option<(Arc<ByName>, Arc<ByName>)>,
    /// The run's budget (`None`: the host's).
    pub budget: Option<BudgetLimits>,
    /// A ledger the run's spend also counts against (an API key's).
    pub account: Option<&'a Arc<Ledger>>,
    /// Cancelling it stops the steps in flight and the planner loop.
    pub cancel: CancellationToken,
    /// Where its steps run (`None`: here). The run's budget is then kept in the shared
    /// account the dispatch names.
    pub dispatch: Option<Arc<dyn Dispatch>>,
}

/// Components by name.
pub type ByName = BTreeMap<String, Arc<Plugin>>;

/// A run journaled from its start, not yet driven: its id is known.
pub struct Launched {
    ctx: Arc<RunContext>,
    journal: RunJournal,
    ledger: Arc<Ledger>,
    cancel: CancellationToken,
    dispatch: Option<Arc<dyn Dispatch>>,
    recording: bool,
}

/// Starts journaling a run of `planner` as `how` says.
pub fn launch(host: &Host, planner: &Plugin, how: Launch<'_>) -> Result<Launched, Error> {
    check_planner(planner)?;
    let (journal, mut ledger) = host.start_run_as(RunStart {
        command: "run",
        id: how.id,
        budget: how.budget,
        account: how.account,
    });
    if let Some(dispatch) = &how.dispatch {
        let limits = how.budget.unwrap_or(host.budget());
        let account = dispatch
            .account(journal.id(), limits)
            .map_err(|reason| Error::Engine(format!("the run's shared budget: {reason}")))?;
        ledger = Ledger::run_within_for(limits, account, how.account);
    }
    let ctx = match how.components {
        Some((tools, prompts)) => RunContext::live_with(host, journal.chains(), tools, prompts),
        None => RunContext::live(host, journal.chains()),
    };
    Ok(Launched {
        ctx,
        journal,
        ledger,
        cancel: how.cancel,
        dispatch: how.dispatch,
        recording: host.recording(),
    })
}

impl Launched {
    /// The run's id, as the journal knows it.
    pub fn id(&self) -> &str {
        self.journal.id()
    }

    /// Drives the run to its end.
    pub async fn run(
        self,
        request: RunRequest<'_>,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<WorkflowRun, Error> {
        let Launched {
            ctx,
            journal,
            ledger,
            cancel,
            dispatch,
            recording,
        } = self;
        keep_components(&journal, &ctx, &request.planner);
        let (record, result) = drive(
            ctx,
            journal,
            request,
            None,
            BTreeMap::new(),
            Controls {
                ledger,
                progress,
                cancel,
                dispatch,
            },
        )
        .await
        .expect("a live run records, it cannot diverge");
        Ok(WorkflowRun {
            run: Some(record).filter(|_| recording),
            result,
        })
    }
}

/// What governs a run while it runs: the ledger it spends from, where its progress goes,
/// and what cancels it.
pub(crate) struct Controls {
    pub ledger: Arc<Ledger>,
    pub progress: Arc<dyn ProgressSink>,
    pub cancel: CancellationToken,
    pub dispatch: Option<Arc<dyn Dispatch>>,
}

/// Keeps in `journal` the bytes of the planner and of every component `ctx` may load, so that
/// the run's bundle carries them.
fn keep_components(journal: &RunJournal, ctx: &RunContext, planner: &Arc<Plugin>) {
    let components = ctx.tools().values().chain(ctx.prompts().values());
    for plugin in std::iter::once(planner).chain(components) {
        journal.blob(
            "component",
            &plugin.loaded.digest.to_string(),
            &plugin.loaded.bytes,
        );
    }
}

impl Controls {
    /// A recorded run's (a replay, or a fork's replayed prefix and what follows it): never
    /// cancelled, and every step answered on this host.
    fn recorded(ledger: Arc<Ledger>, progress: Arc<dyn ProgressSink>) -> Self {
        Controls {
            ledger,
            progress,
            cancel: CancellationToken::new(),
            dispatch: None,
        }
    }
}

/// Runs the orchestration in `journal` (live or replaying) and finishes it, in a span of
/// its own; a replay that diverges stops at the first divergence.
pub(crate) async fn drive(
    ctx: Arc<RunContext>,
    journal: RunJournal,
    request: RunRequest<'_>,
    recorded: Option<&EventKind>,
    resumable: BTreeMap<String, resume::Resumed>,
    controls: Controls,
) -> Result<(RunRecord, RunResult), Divergence> {
    let span = tracing::info_span!(
        "run",
        otel.name = format!("run {}", request.settings.name),
        baton.run.id = journal.id(),
        baton.workflow = request.settings.name.as_str(),
        baton.planner = request.planner.name(),
        baton.status = tracing::field::Empty,
    );
    let done = orchestrate(ctx, journal, request, recorded, resumable, controls)
        .instrument(span.clone())
        .await;
    if let Ok((_, result)) = &done {
        span.record("baton.status", result.status.name());
    }
    done
}

async fn orchestrate(
    ctx: Arc<RunContext>,
    mut journal: RunJournal,
    request: RunRequest<'_>,
    recorded: Option<&EventKind>,
    resumable: BTreeMap<String, resume::Resumed>,
    Controls {
        ledger,
        progress,
        cancel,
        dispatch,
    }: Controls,
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
        inputs: Default::default(),
        labels: BTreeMap::new(),
        decided: baton_runtime::flow::Labels::public(),
        warned: false,
        planner_fuel: 0,
        resumable,
        cancel,
        dispatch,
        committed: false,
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
        root: record.root.get().ok(),
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

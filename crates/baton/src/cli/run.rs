//! `baton run`: hand a task to a planner and its tools, and report the result.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use baton::cluster::{Cluster, NatsDispatch};
use baton::journal::store::StoreUrl;
use baton::orchestrator::progress::{Progress, ProgressSink};
use baton::orchestrator::remote::Dispatch;
use baton::orchestrator::result::{RunResult, RunStatus, StepStatus};
use baton::orchestrator::workflow::{Settings, Workflow};
use baton::orchestrator::{Launch, RunRequest, WorkflowRun};
use baton::runtime::versions::Requirement;
use baton::{Error, Host, HostOptions};

use super::Failure;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (TOML); with --planner, the task instead
    #[arg(value_name = "WORKFLOW|TASK")]
    target: Option<String>,
    /// The task, in words (replaces the workflow's)
    #[arg(long)]
    task: Option<String>,
    /// The run's input document (JSON; "-" reads standard input); replaces the workflow's
    #[arg(long, short, value_name = "JSON")]
    input: Option<String>,
    /// The planner component (.wasm), to run without a workflow file
    #[arg(long, value_name = "WASM")]
    planner: Option<PathBuf>,
    /// A directory of tool components, or one component, the planner may use; may be
    /// repeated (added to the workflow's)
    #[arg(long, value_name = "PATH")]
    tools: Vec<PathBuf>,
    /// A directory of prompt components, or one component, the planner may render; may be
    /// repeated (added to the workflow's)
    #[arg(long, value_name = "PATH")]
    prompts: Vec<PathBuf>,
    /// Steps run at once (replaces the workflow's max_parallel)
    #[arg(long, value_name = "N")]
    max_parallel: Option<usize>,
    /// Steps and planner decisions a run may take (replaces the workflow's max_steps)
    #[arg(long, value_name = "N")]
    max_steps: Option<u32>,
    /// Write the result (JSON: status, output, steps, totals) to this file
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write the run to this bundle file, for `baton replay`
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Stream progress and the result as JSON lines on standard output
    #[arg(long)]
    json: bool,
    /// Continue this interrupted (or stopped) run from the journal, without repeating the
    /// steps it completed
    #[arg(long, value_name = "RUN", conflicts_with_all = ["target", "planner", "task", "input", "tools"])]
    resume: Option<String>,
    /// Run the steps on the workers of this NATS server (JetStream) instead of here; the
    /// run and its budget are kept in the --store they share (postgres://…)
    #[arg(
        long,
        env = "BATON_NATS",
        value_name = "URL",
        conflicts_with = "resume"
    )]
    nats: Option<String>,
    #[command(flatten)]
    pub limits: super::LimitArgs,
    #[command(flatten)]
    pub budget: super::BudgetArg,
}

/// What `baton run` was asked to run, before the host exists: the host's policies and
/// budget come from the workflow too.
pub struct Plan {
    args: RunArgs,
    planner: PathBuf,
    tools: Vec<PathBuf>,
    prompts: Vec<PathBuf>,
    task: String,
    input: Value,
    settings: Settings,
}

impl Plan {
    /// Reads the workflow (if any) and layers its policies and budget under `options`.
    pub fn new(args: RunArgs, options: &mut HostOptions) -> Result<Self, Error> {
        let (workflow, task) = match (&args.planner, &args.target) {
            // A resumed run reads everything else from the journal.
            _ if args.resume.is_some() => (Workflow::of_planner(PathBuf::new(), None), None),
            (Some(planner), task) => (
                Workflow::of_planner(planner.clone(), task.clone()),
                args.task.clone(),
            ),
            (None, Some(path)) => {
                let path = Path::new(path);
                let workflow = Workflow::load(path).map_err(|reason| Error::Workflow {
                    path: path.to_owned(),
                    reason,
                })?;
                (workflow, args.task.clone())
            }
            (None, None) => {
                return Err(Error::InputUnreadable(
                    "`baton run` needs a workflow file, or --planner with --tools and a task"
                        .into(),
                ));
            }
        };
        let Workflow {
            task: default_task,
            input: default_input,
            planner,
            mut tools,
            mut prompts,
            policies,
            budget,
            mut settings,
            ..
        } = workflow;
        options.policies.extend(policies);
        options.budget = budget.overridden_by(&options.budget);
        tools.extend(args.tools.iter().cloned());
        prompts.extend(args.prompts.iter().cloned());
        let input = match &args.input {
            Some(text) => {
                serde_json::from_str(&super::text_or_stdin(text.clone())?).map_err(|e| {
                    Error::InputNotJson {
                        reason: e.to_string(),
                    }
                })?
            }
            None => default_input,
        };
        if let Some(n) = args.max_parallel {
            if n == 0 {
                return Err(Error::InputUnreadable(
                    "--max-parallel must be at least 1".into(),
                ));
            }
            settings.max_parallel = n;
        }
        if let Some(n) = args.max_steps {
            settings.max_steps = n;
        }
        Ok(Self {
            task: task.or(default_task).unwrap_or_default(),
            args,
            planner,
            tools,
            prompts,
            input,
            settings,
        })
    }
}

pub async fn run(host: &mut Host, plan: Plan, store: &StoreUrl) -> Result<(), Failure> {
    let Plan {
        args,
        planner,
        tools,
        prompts,
        task,
        input,
        settings,
    } = plan;
    let dispatch = match &args.nats {
        Some(url) => Some(dispatch(url, store).await?),
        None => None,
    };
    let display = std::sync::Arc::new(Display::new(args.json));
    let WorkflowRun { run, mut result } = match &args.resume {
        Some(run) => baton::orchestrator::resume(host, run, display.clone()).await?,
        None => {
            let components = Components {
                planner,
                tools,
                prompts,
            };
            let how = Launch {
                dispatch,
                ..Launch::default()
            };
            start(
                host,
                components,
                (&task, &input, &settings),
                how,
                display.clone(),
            )
            .await?
        }
    };
    display.finish();
    if let (Some(run), Some(journal)) = (&run, host.journal()) {
        for denial in &run.denials {
            eprintln!("denied: {denial}");
        }
        if let Some(bundle) = &args.bundle {
            host.settle();
            journal.export(&run.id, bundle).map_err(Error::from)?;
            result.bundle = Some(bundle.clone());
        }
    }
    if let Some(path) = &args.output {
        write_result(path, &result)?;
    }
    if args.json {
        print_line(&Progress::RunFinished(Box::new(result.clone())));
    } else {
        summarize(&result);
        if let Some(output) = &result.output {
            super::print_json(output);
        }
    }
    match result.status {
        RunStatus::Succeeded => Ok(()),
        status => Err(Failure::RunEnded {
            status,
            reason: result.reason.unwrap_or_default(),
        }),
    }
}

/// Where a run's components are.
struct Components {
    planner: PathBuf,
    tools: Vec<PathBuf>,
    prompts: Vec<PathBuf>,
}

/// The cluster at NATS `url` whose workers share `store`, as a run's steps are sent there.
pub(super) async fn dispatch(url: &str, store: &StoreUrl) -> Result<Arc<dyn Dispatch>, Failure> {
    let cluster = Cluster::connect(url, store, baton::cluster::connect::ACK_WAIT)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let dispatch = NatsDispatch::new(cluster)
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(dispatch)
}

/// Loads the tools, prompts and the planner and runs them as `how` says.
async fn start(
    host: &mut Host,
    Components {
        planner,
        tools,
        prompts,
    }: Components,
    (task, input, settings): (&str, &Value, &Settings),
    how: Launch<'_>,
    display: std::sync::Arc<Display>,
) -> Result<WorkflowRun, Error> {
    // Entries like `greet@^1.2` say which versions of a tool the run needs.
    let (requirements, paths): (Vec<_>, Vec<_>) = tools
        .into_iter()
        .partition(|p| p.to_str().and_then(Requirement::parse).is_some());
    let requirements: Vec<Requirement> = requirements
        .iter()
        .filter_map(|p| p.to_str().and_then(Requirement::parse)?.ok())
        .collect();
    for chosen in host.add_tools_choosing(&paths, &requirements).await? {
        let asked = chosen.requirement.as_deref().unwrap_or("the newest");
        tracing::info!(
            "tool {} {} ({}) for {asked}",
            chosen.name,
            chosen.version,
            chosen.digest
        );
        if chosen.found.len() > 1 && chosen.requirement.is_none() {
            tracing::warn!(
                "{} tools are named '{}' ({}): {} runs, the newest; name a version in the \
                 workflow's tools (\"{}@=VERSION\") to choose another",
                chosen.found.len(),
                chosen.name,
                chosen.found.join(", "),
                chosen.version,
                chosen.name
            );
        }
        for (version, unmet) in &chosen.held {
            tracing::warn!(
                "{} {version} is held: it requests {unmet}, which its policy does not grant; \
                 {} {} runs instead",
                chosen.name,
                chosen.name,
                chosen.version
            );
        }
    }
    for path in &prompts {
        let names = host.add_prompts_from(path).await?;
        tracing::info!("prompts from {}: {}", path.display(), names.join(", "));
    }
    let planner = std::sync::Arc::new(host.load(&planner).await?);
    let request = RunRequest {
        planner,
        task,
        input,
        settings,
    };
    baton::orchestrator::launch(host, &request.planner.clone(), how)?
        .run(request, display)
        .await
}

/// Writes `result` to `path` through a temporary file, so that a reader never sees half.
fn write_result(path: &Path, result: &RunResult) -> Result<(), Error> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let unwritable = |e: std::io::Error| {
        Error::InputUnreadable(format!(
            "cannot write the result to {}: {e}",
            path.display()
        ))
    };
    let mut file =
        tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(unwritable)?;
    serde_json::to_writer_pretty(&mut file, result).expect("a result serializes");
    file.write_all(b"\n").map_err(unwritable)?;
    file.persist(path).map_err(|e| unwritable(e.error))?;
    Ok(())
}

/// The summary on standard error: one line per step, then the totals.
fn summarize(result: &RunResult) {
    for step in &result.steps {
        let mark = match step.status {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        let mut line = format!(
            "  {:<16} {:<12} {mark:<7} {:>6} ms",
            step.id,
            step.tool,
            step.finished_ms - step.started_ms
        );
        if let Some(run) = &step.resumed_from {
            line += &format!(", taken over from run {run}");
        }
        if step.replicates > 1 {
            line += &format!(", {} replicates", step.replicates);
        }
        // Invocations beyond one per replicate are retries.
        if step.attempts > step.replicates.max(1) {
            line += &format!(", {} attempts", step.attempts);
        }
        if step.tokens > 0 {
            line += &format!(", {} tokens", step.tokens);
        }
        match step.cache_hits {
            0 => {}
            1 => line += ", 1 cache hit",
            n => line += &format!(", {n} cache hits"),
        }
        if let Some(tier) = step.cache_tier {
            line += &format!(" ({tier})");
        }
        if let Some(error) = &step.error {
            line += &format!(": {}", baton::text::quote(error, 160));
        }
        eprintln!("{line}");
        for note in &step.notes {
            eprintln!("    note: {note}");
        }
    }
    let t = &result.totals;
    eprintln!(
        "run {} {}: {} steps ({} ok, {} failed, {} skipped), {} decisions, {} ms",
        result.run,
        result.status.name(),
        t.steps,
        t.succeeded,
        t.failed,
        t.skipped,
        t.decisions,
        t.duration_ms
    );
    eprintln!("budget: {}", result.budget);
    if let Some(bundle) = &result.bundle {
        eprintln!(
            "bundle: {} (replay it with `baton replay`)",
            bundle.display()
        );
    }
}

/// Progress as JSON lines, or a live line on a terminal.
struct Display {
    json: bool,
    bar: Option<ProgressBar>,
    so_far: Mutex<SoFar>,
}

/// What the live line adds up.
#[derive(Default)]
struct SoFar {
    started: u32,
    finished: u32,
    tokens: u64,
    cost_usd: f64,
    cache_hits: u64,
}

impl Display {
    fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .expect("the template is valid"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self {
            json,
            bar,
            so_far: Mutex::default(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ProgressSink for Display {
    fn report(&self, event: Progress) {
        if self.json {
            if !matches!(event, Progress::RunFinished(_)) {
                print_line(&event);
            }
            return;
        }
        let Some(bar) = &self.bar else {
            if let Progress::BudgetWarning { message } = &event {
                eprintln!("warning: {message}");
            }
            return;
        };
        let mut so_far = self.so_far.lock().expect("progress totals");
        match &event {
            Progress::StepStarted { attempt: 1, .. } => so_far.started += 1,
            Progress::StepFinished(step) => {
                for note in &step.notes {
                    bar.println(format!("note: {}: {note}", step.id));
                }
                so_far.finished += 1;
                so_far.tokens += step.tokens;
                so_far.cost_usd += step.cost_usd;
                so_far.cache_hits += step.cache_hits;
            }
            Progress::BudgetWarning { message } => bar.println(format!("warning: {message}")),
            Progress::Error { message } => {
                bar.println(format!("error: {}", baton::text::escape_controls(message)))
            }
            _ => {}
        }
        let message = match &event {
            Progress::Planning { iteration } => format!("planning (decision {})", iteration + 1),
            Progress::StepStarted { id, tool, .. } => format!("started {id} ({tool})"),
            Progress::StepFinished(step) => format!("finished {}", step.id),
            _ => return,
        };
        bar.set_message(format!(
            "{}/{} steps done, {} tokens, ${:.4}, {} cache hits; {message}",
            so_far.finished, so_far.started, so_far.tokens, so_far.cost_usd, so_far.cache_hits
        ));
    }
}

fn print_line(event: &Progress) {
    let line = serde_json::to_string(event).expect("progress events serialize");
    let mut out = std::io::stdout().lock();
    // A closed pipe is the reader's choice; the run itself goes on.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

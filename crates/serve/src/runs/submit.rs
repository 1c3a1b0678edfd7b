//! A submitted run: the request read and checked against the server's allowlists, its
//! components loaded, then run (or resumed) in its own task once a slot is free.

use std::path::PathBuf;
use std::sync::Arc;

use baton_budget::{BudgetLimits, Ledger};
use baton_orchestrator::workflow::{Settings, Workflow};
use baton_orchestrator::{ByName, Launch, RunRequest, WorkflowRun, launch, resume_with};
use baton_runtime::Plugin;
use baton_runtime::plugin::Entry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::table::RUNNING;
use super::tracker::{Sink, Tracked};
use crate::app::App;
use crate::error::ApiError;
use crate::library::Library;
use crate::webhooks;

/// The body of `POST /v1/runs`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// A workflow file in the server's workflow directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workflow: Option<String>,
    /// Or a planner component inside the server's component directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    planner: Option<PathBuf>,
    /// Tool components or directories (added to the workflow's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tools: Vec<PathBuf>,
    /// Prompt components or directories (added to the workflow's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    prompts: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    /// The planner's configuration (replaces the workflow's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_parallel: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_steps: Option<u32>,
    /// What the run may spend, as `--budget` takes it (over the workflow's and the
    /// policy's; the key's budget still bounds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<String>,
}

/// What a run's task does.
pub enum Work {
    Fresh(Box<Prepared>),
    /// Resume the interrupted run of this id.
    Resume(String),
}

/// A fresh run, ready.
pub struct Prepared {
    planner: Arc<Plugin>,
    tools: Arc<ByName>,
    prompts: Arc<ByName>,
    task: String,
    input: Value,
    settings: Settings,
    /// The workflow's budget with the request's over it.
    budget: BudgetLimits,
}

impl Submit {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a request serializes")
    }

    /// Checks the request against `library` and loads what it names.
    pub async fn prepare(&self, library: &Library) -> Result<Work, ApiError> {
        let workflow = match (&self.workflow, &self.planner) {
            (Some(name), None) => library.workflow(name)?,
            (None, Some(planner)) => Workflow::of_planner(library.allowed(planner)?, None),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give a workflow or a planner, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "a run needs a workflow (a file in the server's workflow directories) or \
                     a planner (a component inside its component directories)",
                ));
            }
        };
        let mut settings = workflow.settings;
        if let Some(config) = &self.config {
            settings.config = config.clone();
        }
        match self.max_parallel {
            Some(0) => return Err(ApiError::bad_request("max_parallel must be at least 1")),
            Some(n) => settings.max_parallel = n,
            None => {}
        }
        if let Some(n) = self.max_steps {
            settings.max_steps = n;
        }
        let asked = match &self.budget {
            Some(text) => BudgetLimits::parse(text)
                .map_err(|e| ApiError::bad_request(format!("budget: {e}")))?,
            None => BudgetLimits::default(),
        };
        let mut tools = workflow.tools;
        for path in &self.tools {
            tools.push(library.allowed(path)?);
        }
        let mut prompts = workflow.prompts;
        for path in &self.prompts {
            prompts.push(library.allowed(path)?);
        }
        let planner = library.load(&workflow.planner).await?;
        if !matches!(planner.entry(), Entry::Planner(_)) {
            return Err(ApiError::bad_request(format!(
                "{} is not a planner",
                workflow.planner.display()
            )));
        }
        Ok(Work::Fresh(Box::new(Prepared {
            planner,
            tools: Arc::new(library.components(&tools, false).await?),
            prompts: Arc::new(library.components(&prompts, true).await?),
            task: self.task.clone().or(workflow.task).unwrap_or_default(),
            input: self.input.clone().unwrap_or(workflow.input),
            settings,
            budget: workflow.budget.overridden_by(&asked),
        })))
    }
}

impl Work {
    /// The whole plan, when the planner is the static one: its configuration's steps.
    pub fn plan(&self) -> Option<Value> {
        match self {
            Work::Fresh(p) if p.planner.name() == "static" => {
                p.settings.config.get("steps").cloned()
            }
            _ => None,
        }
    }
}

/// Runs `work` as the tracked run of key `key_id` once a slot is free, spending from its
/// `account`; records how it ended and delivers that to the key's webhooks.
pub async fn execute(
    app: Arc<App>,
    tracked: Arc<Tracked>,
    work: Work,
    key_id: String,
    account: Arc<Ledger>,
) {
    let runs = &app.runs;
    let permit = tokio::select! {
        permit = runs.slots.clone().acquire_owned() => permit.ok(),
        _ = tracked.cancel.cancelled() => None,
    };
    let (status, result) = match permit {
        // Cancelled while waiting: it never started.
        None => ("cancelled".to_string(), None),
        Some(_permit) => {
            tracked.set_status(RUNNING);
            if let Err(e) = runs.table.update(&tracked.id, RUNNING, None) {
                tracing::error!("{e}");
            }
            runs.gauge();
            run(&app, &tracked, work, &account).await
        }
    };
    metrics::counter!("baton_runs_total", "status" => status.clone()).increment(1);
    tracked.end(&status, result.clone());
    let events = tracked.since(0).events;
    if let Err(e) = runs
        .table
        .end(&tracked.id, &status, result.as_ref(), &events)
    {
        tracing::error!("{e}");
    }
    runs.release(&tracked.id);
    webhooks::deliver_run(&app, &key_id, &tracked.id, &status, result);
}

/// Drives the run: its status and its result (or why it could not run).
async fn run(
    app: &App,
    tracked: &Arc<Tracked>,
    work: Work,
    account: &Arc<Ledger>,
) -> (String, Option<Value>) {
    let sink = Arc::new(Sink(tracked.clone()));
    let mut how = Launch {
        id: Some(tracked.id.clone()),
        account: Some(account),
        cancel: tracked.cancel.clone(),
        dispatch: app.dispatch.clone(),
        ..Launch::default()
    };
    let host = &app.host;
    let ran = match work {
        Work::Fresh(prepared) => {
            let Prepared {
                planner,
                tools,
                prompts,
                task,
                input,
                settings,
                budget,
            } = *prepared;
            how.budget = Some(host.budget().overridden_by(&budget));
            how.components = Some((tools, prompts));
            match launch(host, &planner, how) {
                Ok(launched) => {
                    let request = RunRequest {
                        planner,
                        task: &task,
                        input: &input,
                        settings: &settings,
                    };
                    launched.run(request, sink).await
                }
                Err(e) => Err(e),
            }
        }
        Work::Resume(from) => resume_with(host, &from, sink, how).await,
    };
    match ran {
        Ok(WorkflowRun { result, .. }) => (
            result.status.name().to_string(),
            Some(serde_json::to_value(&result).expect("a result serializes")),
        ),
        Err(e) => (
            "failed".to_string(),
            Some(serde_json::json!({"error": e.to_string()})),
        ),
    }
}

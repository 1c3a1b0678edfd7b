//! A tool called, or a prompt rendered, on its own (`baton call`): journaled as a run of one
//! step.

use baton_budget::{BudgetReport, Ledger};
use tokio_util::sync::CancellationToken;

use crate::bindings::types::TokenBudget;
use crate::error::Error;
use crate::host::Host;
use crate::plugin::{Plugin, ToolCall, check_input, wrong_world};
use crate::run::{Invocation, RunContext, RunRecord, live_access, render_input};

/// The step id of a `baton call` run.
pub(crate) const CALL_STEP: &str = "call";

/// A tool call run and journaled as a run.
#[derive(Debug)]
pub struct ToolRun {
    /// The run that journaled it (`None` when the host has no journal, or the input was
    /// refused before the run started).
    pub run: Option<RunRecord>,
    /// What the run spent, against its budget.
    pub budget: BudgetReport,
    pub result: Result<ToolCall, Error>,
}

impl Host {
    /// Calls a tool with `input` (JSON text): validates the input, runs `invoke` in a fresh
    /// sandbox under the tool's limits, then checks the output's size, syntax and schema.
    /// The call is journaled as a run when the host has a journal.
    pub async fn call_tool(&self, plugin: &Plugin, input: &str) -> Result<ToolCall, Error> {
        self.run_tool(plugin, input).await.result
    }

    /// Like `call_tool`, and also returns the run that journaled the call and what it spent.
    pub async fn run_tool(&self, plugin: &Plugin, input: &str) -> ToolRun {
        if let Err(e) = self
            .check_size(input)
            .and_then(|()| check_input(plugin, input))
        {
            return self.refused(e);
        }
        self.run_one(plugin, input).await
    }

    /// Renders the prompt `plugin` with `vars` (JSON text) within `budget`, journaled as a
    /// run like a tool's call: its output is the messages, as a JSON array of
    /// `{role, content}`.
    pub async fn run_prompt(&self, plugin: &Plugin, vars: &str, budget: &TokenBudget) -> ToolRun {
        if !plugin.is_prompt() {
            return self.refused(wrong_world(plugin));
        }
        if let Err(e) = self.check_size(vars) {
            return self.refused(e);
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(vars) {
            return self.refused(Error::InputNotJson {
                reason: e.to_string(),
            });
        }
        self.run_one(plugin, &render_input(vars, budget)).await
    }

    /// Refuses input larger than a call may take, before anything reads it.
    fn check_size(&self, input: &str) -> Result<(), Error> {
        let (limit, set_by) = self.max_input();
        match input.len() as u64 {
            size if size > limit => Err(Error::InputTooLarge {
                size,
                limit,
                set_by,
            }),
            _ => Ok(()),
        }
    }

    /// A call refused before its run started.
    fn refused(&self, error: Error) -> ToolRun {
        ToolRun {
            run: None,
            budget: Ledger::run(self.budget()).report(),
            result: Err(error),
        }
    }

    /// `plugin` invoked with `input` as the one step of a run.
    async fn run_one(&self, plugin: &Plugin, input: &str) -> ToolRun {
        // What the tool may reach is settled before anything is journaled.
        let access = match live_access(&self.policy, plugin) {
            Ok(access) => access,
            Err(e) => return self.refused(e),
        };
        let digest = plugin.loaded.digest.to_string();
        let (mut run, ledger) = self.start_run("call");
        run.blob("component", &digest, &plugin.loaded.bytes);
        let gate = run
            .start_step(CALL_STEP, plugin.name(), &digest, access.redactor())
            .expect("a live run records, it cannot diverge");
        let ctx = RunContext::live(self, run.chains());
        let result = ctx
            .invoke(Invocation::step(
                plugin,
                input,
                access,
                gate.clone(),
                ctx.step_ledger(plugin, &ledger),
                CancellationToken::new(),
            ))
            .await;
        // A live run records what happens; it cannot diverge.
        let _ = run.end_step(CALL_STEP, &*gate);
        // The journal's writer commits in the background; `Journal::export` and dropping the
        // journal wait for it.
        let record = run.finish(status_of(std::slice::from_ref(&result))).ok();
        ToolRun {
            // Without a journal nothing was recorded, so there is no run to report.
            run: record.filter(|_| self.recording()),
            budget: ledger.report(),
            result,
        }
    }
}

/// A run's status by how its calls ended: failed when any one failed (a call its caller
/// cancelled did not fail).
pub(crate) fn status_of<T>(results: &[Result<T, Error>]) -> &'static str {
    match results
        .iter()
        .all(|r| r.as_ref().is_ok() || r.as_ref().is_err_and(Error::is_cancelled))
    {
        true => "ok",
        false => "failed",
    }
}

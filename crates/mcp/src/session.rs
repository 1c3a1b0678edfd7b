//! An MCP session is one run: it starts with the session's first call, each tool call is a
//! step in its own chain (entered in the run chain when it ends), and it ends when the
//! session does (the client goes, or the server stops). `baton trace show` lists it; its
//! bundle replays like any other. A session that calls nothing records nothing.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use baton_budget::Ledger;
use baton_runtime::bindings::types::TokenBudget;
use baton_runtime::flow::{Flow, Labels};
use baton_runtime::plugin::check_input;
use baton_runtime::run::{Invocation, RunContext, RunJournal, RunRecord, render_input};
use baton_runtime::{Error, Host, Plugin, ToolCall};

use crate::catalog::Catalog;
use tokio_util::sync::CancellationToken;

/// The `command` an MCP session's run is recorded with.
pub const COMMAND: &str = "mcp";

pub struct Session {
    host: Arc<Host>,
    /// The tools served; those served when the run starts are those its tools may call.
    catalog: Arc<Catalog>,
    /// The run, once the first call has started it.
    run: Mutex<Option<Run>>,
    /// Steps taken so far (numbering them).
    steps: AtomicU32,
    /// Whether a call failed (the run's status says so, as a `baton call`'s does).
    failed: AtomicBool,
    /// What the outputs the client has been given carry: the client decides the next call
    /// having seen them, so each call starts with them (the control flow is tainted).
    seen: Mutex<Labels>,
}

struct Run {
    journal: RunJournal,
    ctx: Arc<RunContext>,
    ledger: Arc<Ledger>,
}

impl Session {
    /// A session offering the tools of `catalog`.
    pub fn new(host: Arc<Host>, catalog: Arc<Catalog>) -> Self {
        Self {
            host,
            catalog,
            run: Mutex::new(None),
            steps: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            seen: Mutex::default(),
        }
    }

    fn run(&self) -> MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session's run, started now if this is its first call.
    fn started(&self) -> (Arc<RunContext>, Arc<Ledger>) {
        let mut run = self.run();
        let run = run.get_or_insert_with(|| {
            let (journal, ledger) = self.host.start_run(COMMAND);
            let tools = Arc::new(self.catalog.tools());
            let ctx = RunContext::live_with_tools(&self.host, journal.chains(), tools);
            Run {
                journal,
                ctx,
                ledger,
            }
        });
        (run.ctx.clone(), run.ledger.clone())
    }

    /// Calls `plugin` with `input` (JSON text) as the session's next step: checked against
    /// its schema, run in a fresh sandbox under the policy until it ends or `cancel` is
    /// cancelled, journaled either way.
    pub async fn call(
        &self,
        plugin: &Plugin,
        input: &str,
        cancel: CancellationToken,
    ) -> Result<ToolCall, Error> {
        check_input(plugin, input)?;
        self.step("call", plugin, input, cancel).await
    }

    /// Renders the prompt `plugin` with `vars` (JSON text) within `budget` as the session's
    /// next step: its messages, as a JSON array of `{role, content}`.
    pub async fn render(
        &self,
        plugin: &Plugin,
        vars: &str,
        budget: &TokenBudget,
        cancel: CancellationToken,
    ) -> Result<ToolCall, Error> {
        let input = render_input(vars, budget);
        self.step("render", plugin, &input, cancel).await
    }

    /// `plugin` invoked with `input` as the step `<kind>:<n>`, in a fresh sandbox.
    async fn step(
        &self,
        kind: &str,
        plugin: &Plugin,
        input: &str,
        cancel: CancellationToken,
    ) -> Result<ToolCall, Error> {
        let (ctx, ledger) = self.started();
        // The bundle carries every component the run called, to replay it.
        let digest = plugin.loaded.digest.to_string();
        ctx.chains()
            .blob("component", &digest, &plugin.loaded.bytes);
        let access = ctx.access(plugin)?;
        let step = format!("{kind}:{}", self.steps.fetch_add(1, Ordering::Relaxed) + 1);
        let gate = ctx.gate(baton_journal::event::step_chain(&step), &access);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let flow = Flow::new(seen);
        let result = ctx
            .invoke(Invocation {
                flow: flow.clone(),
                ..Invocation::step(
                    plugin,
                    input,
                    access,
                    gate.clone(),
                    ctx.step_ledger(plugin, &ledger),
                    cancel,
                )
            })
            .await;
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join(&flow.labels());
        // A call its client cancelled did not fail.
        if result.as_ref().is_err_and(|e| !e.is_cancelled()) {
            self.failed.store(true, Ordering::Relaxed);
        }
        if let Some(run) = &mut *self.run() {
            // A live run records what happens; it cannot diverge.
            let _ = run
                .journal
                .record_step(&step, plugin.name(), &digest, &*gate);
        }
        result
    }

    /// Ends the session's run: its record, when it called something and the host journals.
    pub fn end(&self) -> Option<RunRecord> {
        let run = self.run().take()?;
        let status = match self.failed.load(Ordering::Relaxed) {
            true => "failed",
            false => "ok",
        };
        let record = run.journal.finish(status).ok()?;
        self.host.recording().then_some(record)
    }
}

impl Drop for Session {
    /// A session that goes away (its client disconnected, the server stopped) ends its run.
    fn drop(&mut self) {
        self.end();
    }
}

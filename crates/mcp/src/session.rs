//! An MCP session is one run: it starts when the client connects, each tool call is a step
//! in its own chain (entered in the run chain when it ends), and it ends when the client goes.
//! `baton trace show` lists it; its bundle replays like any other.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use baton_budget::Ledger;
use baton_runtime::plugin::check_input;
use baton_runtime::run::{RunContext, RunJournal, RunRecord};
use baton_runtime::{Error, Host, Plugin, ToolCall};

/// The `command` an MCP session's run is recorded with.
pub const COMMAND: &str = "mcp";

pub struct Session {
    host: Arc<Host>,
    ctx: Arc<RunContext>,
    /// `None` once the session has ended.
    run: Mutex<Option<RunJournal>>,
    ledger: Arc<Ledger>,
    /// Calls made so far (numbering their steps).
    calls: AtomicU32,
    /// Whether a call failed (the run's status says so, as a `baton call`'s does).
    failed: AtomicBool,
}

impl Session {
    /// Starts the run of a session offering `tools`; their bytes go into its bundle.
    pub fn start<'a>(host: Arc<Host>, tools: impl IntoIterator<Item = &'a Arc<Plugin>>) -> Self {
        let (run, ledger) = host.start_run(COMMAND);
        for plugin in tools {
            run.blob(
                "component",
                &plugin.loaded.digest.to_string(),
                &plugin.loaded.bytes,
            );
        }
        let ctx = RunContext::live(&host, run.chains());
        Self {
            host,
            ctx,
            run: Mutex::new(Some(run)),
            ledger,
            calls: AtomicU32::new(0),
            failed: AtomicBool::new(false),
        }
    }

    fn run(&self) -> MutexGuard<'_, Option<RunJournal>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `plugin` with `input` (JSON text) as the session's next step: checked against
    /// its schema, run in a fresh sandbox under the policy, journaled.
    pub async fn call(&self, plugin: &Plugin, input: &str) -> Result<ToolCall, Error> {
        check_input(plugin, input)?;
        let access = self.ctx.access(plugin)?;
        let step = format!("call:{}", self.calls.fetch_add(1, Ordering::Relaxed) + 1);
        let gate = match &*self.run() {
            Some(run) => run.step_gate(&step, access.redactor()),
            None => return Err(Error::Engine("the MCP session has ended".into())),
        };
        let result = self
            .ctx
            .invoke_step(plugin, input, access, gate.clone(), &self.ledger)
            .await;
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        if let Some(run) = &mut *self.run() {
            let digest = plugin.loaded.digest.to_string();
            // A live run records what happens; it cannot diverge.
            let _ = run.record_step(&step, plugin.name(), &digest, &*gate);
        }
        result
    }

    /// Ends the session's run; its record, when the host journals.
    pub fn end(&self) -> Option<RunRecord> {
        let run = self.run().take()?;
        let status = match self.failed.load(Ordering::Relaxed) {
            true => "failed",
            false => "ok",
        };
        let record = run.finish(status).ok()?;
        self.host.recording().then_some(record)
    }
}

//! Steps run on other hosts: what the orchestrator sends (a [`StepRequest`]), what comes back
//! (a [`StepOutcome`]: the step's report and the roots of the chains it committed), the
//! [`Dispatch`] seam a transport implements, and the worker's side, [`StepRunner`], which
//! rebuilds a run from the shared store and runs one step of it exactly as the orchestrator
//! would have run it locally.
//!
//! A distributed run journals the same events as a local one: the worker writes the step's
//! chains into the shared store, and the orchestrator enters their roots in the run chain in
//! plan order, so the run exports one bundle that replays on one machine.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_budget::{Account, BudgetLimits, Ledger, Spend, Usd};
use baton_effects::Sealed;
use baton_journal::event::step_chain;
use baton_runtime::flow::Labels;
use baton_runtime::recorded::recorded_policy;
use baton_runtime::run::{Chains, RunContext};
use baton_runtime::{Error, Host};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::progress::Quiet;
use crate::recorded::RecordedWorkflow;
use crate::result::{StepStatus, cache_tier, dollars};
use crate::step::{Attempt, StepDone, StepJob};
use crate::workflow::Settings;

/// One step of a run, as sent to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRequest {
    pub run: String,
    /// The step's id in the plan.
    pub id: String,
    pub tool: String,
    /// The rendered input (JSON text).
    pub input: String,
    pub replicates: u32,
    /// The signature of each of the run's components, by digest: a worker verifies each
    /// component under its own policy with it before it runs anything.
    pub signatures: BTreeMap<String, String>,
    /// The shared ledgers the step's spend is reserved in, nearest first: the run's, then
    /// any above it (an API key's).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// What the step's input carries (see `baton_runtime::flow`).
    #[serde(default, skip_serializing_if = "Labels::is_public")]
    pub labels: Labels,
}

impl StepRequest {
    /// The owner of the step's budget holds in a shared account.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.run, self.id)
    }
}

/// A shared ledger a step reserves in, with its limits and what was spent or held in it when
/// the step began: a call's fuel is then granted up to what is left across the cluster.
pub struct SharedLedger {
    pub account: Arc<dyn Account>,
    pub limits: BudgetLimits,
    pub used: Spend,
}

/// A chain a worker sealed and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedChain {
    /// The chain's step name (`ID`, `ID~2`, `ID#1`...).
    pub name: String,
    pub root: String,
    pub events: u64,
    pub denials: Vec<String>,
    pub nested: u64,
}

/// How a step a worker ran ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    pub ok: bool,
    /// The output (JSON text) when it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub out_of_budget: bool,
    pub invocations: u32,
    pub fuel: u64,
    pub tokens: u64,
    /// In nano-dollars.
    pub usd: u64,
    pub calls: u64,
    pub cache_hits: u64,
    pub semantic_hits: u64,
    pub chains: Vec<SealedChain>,
    /// The worker that ran it.
    pub worker: String,
    /// Decisions the budget made for it (see `StepReport::notes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What its output carries.
    #[serde(default, skip_serializing_if = "Labels::is_public")]
    pub labels: Labels,
}

type Outcome = Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send>>;

/// Where steps run when not here: a transport to workers that share this host's store.
pub trait Dispatch: Send + Sync + std::fmt::Debug {
    /// The shared account run `run`'s budget (`limits`) is kept in, created if need be.
    fn account(&self, run: &str, limits: BudgetLimits) -> Result<Arc<dyn Account>, String>;

    /// Runs `request` on a worker; the error says why no worker could.
    fn run_step(&self, request: StepRequest) -> Outcome;
}

impl StepJob {
    /// The step run by a worker through `dispatch`, as a step of run `run`.
    /// `signatures` are those of the run's components (see [`StepRequest`]).
    pub(crate) async fn remote(
        self,
        dispatch: Arc<dyn Dispatch>,
        run: String,
        signatures: BTreeMap<String, String>,
    ) -> StepDone {
        let started_ms = self.started.elapsed().as_millis() as u64;
        let request = StepRequest {
            run,
            id: self.id.clone(),
            tool: self.plugin.name().to_string(),
            input: self.input.clone(),
            replicates: self.replicates,
            signatures,
            accounts: self.ledger.accounts_above(),
            labels: self.labels.clone(),
        };
        let outcome = tokio::select! {
            outcome = dispatch.run_step(request) => outcome,
            () = self.cancel.cancelled() => Err("the run was cancelled".into()),
        };
        let step = (self.id.as_str(), self.plugin.name());
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(reason) => {
                let mut done = StepDone::not_run(self.index, step, StepStatus::Failed, reason, 0);
                done.report.started_ms = started_ms;
                done.report.finished_ms = self.started.elapsed().as_millis() as u64;
                return done;
            }
        };
        let spent = Spend {
            tokens: outcome.tokens,
            usd: Usd(outcome.usd),
            calls: outcome.calls,
            fuel: 0,
        };
        self.ledger
            .absorb(spent, outcome.cache_hits, outcome.semantic_hits);
        let budget = self.ledger.report();
        let output = outcome
            .output
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        let status = match outcome.ok {
            true => StepStatus::Ok,
            false => StepStatus::Failed,
        };
        let mut report = StepDone::not_run(self.index, step, status, String::new(), 0).report;
        report.attempts = outcome.invocations;
        report.replicates = self.replicates;
        report.started_ms = started_ms;
        report.finished_ms = self.started.elapsed().as_millis() as u64;
        report.output = output;
        report.error = outcome.error;
        report.fuel = outcome.fuel;
        report.llm_calls = budget.spent.calls;
        report.tokens = budget.spent.tokens;
        report.cost_usd = dollars(budget.spent.usd);
        report.cache_hits = budget.cache_hits;
        report.cache_tier = cache_tier(&budget);
        report.worker = Some(outcome.worker);
        report.notes = outcome.notes;
        let attempts = outcome
            .chains
            .into_iter()
            .map(|c| {
                let sealed = Sealed {
                    root: c.root,
                    events: c.events,
                    denials: c.denials,
                    nested: c.nested,
                };
                (c.name, Attempt::Sealed(sealed))
            })
            .collect();
        StepDone {
            index: self.index,
            attempts,
            report,
            out_of_budget: outcome.out_of_budget,
            labels: outcome.labels,
        }
    }
}

/// The signature of each of `plugins` that verified with one, by digest.
pub(crate) fn signatures<'a>(
    plugins: impl IntoIterator<Item = &'a Arc<baton_runtime::Plugin>>,
) -> BTreeMap<String, String> {
    plugins
        .into_iter()
        .filter_map(|plugin| match &plugin.loaded.provenance {
            baton_runtime::trust::Provenance::Verified(v) => {
                Some((plugin.loaded.digest.to_string(), v.signature.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A run as a worker knows it: its context rebuilt from the shared store.
struct KnownRun {
    ctx: Arc<RunContext>,
    settings: Settings,
}

/// Runs kept rebuilt on a worker, at most.
const KNOWN_RUNS: usize = 64;

/// A worker's side: runs steps of runs recorded in the host's store.
pub struct StepRunner {
    // Declared (so dropped) before the host: they record through its store.
    runs: tokio::sync::Mutex<HashMap<String, Arc<KnownRun>>>,
    host: Arc<Host>,
    /// The worker's name, as outcomes report it.
    name: String,
}

impl StepRunner {
    pub fn new(host: Arc<Host>, name: String) -> Self {
        Self {
            host,
            name,
            runs: tokio::sync::Mutex::default(),
        }
    }

    /// The run `run` rebuilt from the store: its components verified under this worker's own
    /// `[trust]` with the signatures the run recorded, its policy and workflow as recorded.
    async fn known(
        &self,
        run: &str,
        signatures: &BTreeMap<String, String>,
    ) -> Result<Arc<KnownRun>, Error> {
        let mut runs = self.runs.lock().await;
        if let Some(known) = runs.get(run) {
            return Ok(known.clone());
        }
        let refuse = |reason: String| Error::Step {
            run: run.into(),
            reason,
        };
        let journal = self
            .host
            .journal()
            .ok_or_else(|| refuse("this worker has no store to read it from".into()))?;
        let events = journal.events(run)?;
        if events.is_empty() {
            return Err(refuse(format!("{} holds no such run", journal.location())));
        }
        let location = PathBuf::from(journal.location());
        let components = self
            .host
            .trusted_components(journal, run, signatures, &location)
            .await?;
        let workflow = RecordedWorkflow::read(&events, &components).map_err(refuse)?;
        let policy = recorded_policy(journal, run, &events).map_err(refuse)?;
        let chains = Chains::live(
            journal.recorder().cloned(),
            run,
            self.host.pure_cache().cloned(),
            self.host.journal_allowance(),
        );
        let known = Arc::new(KnownRun {
            ctx: RunContext::recorded(
                &self.host,
                policy,
                (workflow.tools, workflow.prompts),
                chains,
            ),
            settings: workflow.settings,
        });
        if runs.len() >= KNOWN_RUNS {
            runs.clear();
        }
        runs.insert(run.into(), known.clone());
        Ok(known)
    }

    /// Runs `request`, its budget held in `shared` (the ledgers its request names, nearest
    /// first); returns once the chains it wrote are committed to the store.
    pub async fn run(
        &self,
        request: &StepRequest,
        shared: Vec<SharedLedger>,
    ) -> Result<StepOutcome, Error> {
        let known = self.known(&request.run, &request.signatures).await?;
        let plugin = known
            .ctx
            .tools()
            .get(&request.tool)
            .cloned()
            .ok_or_else(|| Error::Step {
                run: request.run.clone(),
                reason: format!("it has no tool '{}'", request.tool),
            })?;
        let (retries, timeout) = known.settings.for_step(&request.id);
        // The ledgers above the step: one per shared ledger, each kept there too.
        let run_ledger = shared
            .into_iter()
            .rev()
            .fold(None, |parent, shared| {
                let scope = format!("ledger '{}'", shared.account.id());
                Some(Ledger::account_in(
                    scope,
                    shared.limits,
                    shared.used,
                    shared.account,
                    parent,
                ))
            })
            .unwrap_or_else(|| Ledger::run(BudgetLimits::default()));
        let ledger = super::step::step_ledger(
            &run_ledger,
            &request.id,
            known.settings.step_budget(&request.id),
            known
                .ctx
                .policy()
                .step_budget(&request.tool, plugin.subject()),
        );
        let job = StepJob {
            ctx: known.ctx.clone(),
            index: 0,
            id: request.id.clone(),
            plugin,
            input: request.input.clone(),
            retries,
            timeout,
            backoff: Duration::from_millis(known.settings.retry_backoff_ms),
            replicates: request.replicates,
            max_parallel: known.settings.max_parallel,
            embedding_model: known.settings.embedding_model.clone(),
            progress: Arc::new(Quiet),
            taken_over: None,
            ledger: ledger.clone(),
            cancel: CancellationToken::new(),
            started: Instant::now(),
            cache: known.settings.cache,
            labels: request.labels.clone(),
        };
        let done = job.run().await;
        let mut chains = Vec::new();
        for (name, attempt) in done.attempts {
            let sealed = match attempt {
                Attempt::Open(gate) => gate.seal().expect("a live chain cannot diverge"),
                Attempt::Sealed(sealed) => sealed,
            };
            // The orchestrator seals the chain with its root: hashed by this worker's
            // journal writer.
            let root = known.ctx.chains().root(&step_chain(&name), &sealed)?;
            chains.push(SealedChain {
                root,
                name,
                events: sealed.events,
                denials: sealed.denials,
                nested: sealed.nested,
            });
        }
        known.ctx.chains().flush()?;
        let spent = ledger.report();
        Ok(StepOutcome {
            ok: done.report.status == StepStatus::Ok,
            output: done.report.output.as_ref().map(ToString::to_string),
            error: done.report.error,
            out_of_budget: done.out_of_budget,
            invocations: done.report.attempts,
            fuel: done.report.fuel,
            tokens: spent.spent.tokens,
            usd: spent.spent.usd.0,
            calls: spent.spent.calls,
            cache_hits: spent.cache_hits,
            semantic_hits: spent.semantic_hits,
            chains,
            worker: self.name.clone(),
            notes: done.report.notes,
            labels: done.labels,
        })
    }
}

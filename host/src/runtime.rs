//! The library face: a `Host` loads plugins and calls them under policy.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use wasmtime::component::InstancePre;

use crate::bindings::types::{
    Error as HostError, Message, PlannerInfo, PromptInfo, Role, TokenBudget, ToolError, ToolInfo,
};
use crate::bindings::{planner_api, prompt_api, tool_api};
use crate::budget::{BudgetLimits, BudgetReport, Hold, Ledger, Spend};
use crate::caps::tools::Caller;
use crate::effect::fs::Node;
use crate::effect::llm::Llm;
use crate::effect::{Gate, NoSecrets, Redactor, Sealed, SecretRedactor};
use crate::error::{Error, host_error_parts};
use crate::journal::event::{
    Event, EventKind, InvocationOutcome, LimitsRecord, PolicyRef, ToolCallOutcome, step_chain,
};
use crate::journal::store::Journal;
use crate::journal::verify_run;
use crate::loader::LoadError;
use crate::loader::cache::CompileCache;
use crate::loader::digest::Digest;
use crate::loader::trust::{
    PolicyTrust, Provenance, RecordedTrust, Sidecars, TrustCheck, Verified,
};
use crate::loader::world::World;
use crate::loader::{Loaded, Loader};
use crate::policy::Source;
use crate::policy::{Grants, LimitsSpec, Policy, ResolvedLimits, Subject, ToolBounds};
use crate::run::{Chains, RunJournal, RunRecord};
use crate::sandbox::limits::{LimitExceeded, OutputStream};
use crate::sandbox::limits::{LimitKind, Limits};
use crate::sandbox::{Invocation, Outcome, Sandbox, SandboxError, Usage};
use crate::schema::{Direction, ToolSchemas};
use crate::state::HostState;

/// How to build a `Host`.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Policy files layered, in order, over the built-in defaults.
    pub policies: Vec<PathBuf>,
    /// Limits from the command line, overriding every policy.
    pub limits: LimitsSpec,
    /// Where compiled components are cached; `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
    /// The journal every call is recorded in; `None` records nothing.
    pub store: Option<PathBuf>,
    /// Load components whatever the policy's `[trust]` says (for signing them).
    pub accept_unsigned: bool,
    /// Budget limits from the command line, overriding the policy's `[budget]`.
    pub budget: BudgetLimits,
}

/// What a plugin says about itself, by world.
#[derive(Debug, Clone)]
pub enum Info {
    Tool(ToolInfo),
    Prompt(PromptInfo),
    Planner(PlannerInfo),
}

impl Info {
    pub fn name(&self) -> &str {
        match self {
            Info::Tool(i) => &i.name,
            Info::Prompt(i) => &i.name,
            Info::Planner(i) => &i.name,
        }
    }

    pub fn version(&self) -> &str {
        match self {
            Info::Tool(i) => &i.version,
            Info::Prompt(i) => &i.version,
            Info::Planner(i) => &i.version,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Info::Tool(i) => &i.description,
            Info::Prompt(i) => &i.description,
            Info::Planner(i) => &i.description,
        }
    }
}

/// A loaded, described plugin, ready to be called any number of times.
pub struct Plugin {
    pub loaded: Loaded,
    pub info: Info,
    name: Arc<str>,
    /// `loaded.digest` as text, as policies name it.
    digest: String,
    pre: InstancePre<HostState>,
    pub(crate) entry: Entry,
    /// Only tools have schemas the host enforces.
    schemas: Option<ToolSchemas>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What policy sections are resolved for: its digest and, if its signature verified,
    /// its signer.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            digest: &self.digest,
            signer: match &self.loaded.provenance {
                Provenance::Verified(v) => Some(&v.name),
                Provenance::Unverified => None,
            },
        }
    }
}

/// Where a plugin's exports are, looked up once at load.
pub(crate) enum Entry {
    Tool(tool_api::GuestIndices),
    Prompt(prompt_api::GuestIndices),
    Planner(planner_api::GuestIndices),
}

impl Entry {
    fn new(world: World, pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(match world {
            World::Tool => Entry::Tool(tool_api::GuestIndices::new(pre)?),
            World::Prompt => Entry::Prompt(prompt_api::GuestIndices::new(pre)?),
            World::Planner => Entry::Planner(planner_api::GuestIndices::new(pre)?),
        })
    }
}

/// A successful tool call.
#[derive(Debug)]
pub struct ToolCall {
    pub output: Value,
    pub usage: Usage,
}

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

pub struct Host {
    pub(crate) sandbox: Arc<Sandbox>,
    loader: Loader,
    /// Decides, by the policy's `[trust]`, which components may be compiled.
    trust: PolicyTrust,
    pub(crate) policy: Arc<Policy>,
    pub(crate) overrides: LimitsSpec,
    /// Tools other tools may call through the host (as their policy allows), by name.
    pub(crate) tools: Arc<BTreeMap<String, Arc<Plugin>>>,
    /// Prompts a run's planner may render, by name.
    pub(crate) prompts: Arc<BTreeMap<String, Arc<Plugin>>>,
    pub(crate) journal: Option<Journal>,
    /// The policy files in force and their texts, as runs record and bundles carry them.
    pub(crate) policy_files: Vec<(PolicyRef, Arc<[u8]>)>,
    /// The model providers and routes of the policy.
    pub(crate) llm: Arc<Llm>,
    /// What a run may spend: the policy's `[budget]` with the command line's on top.
    pub(crate) budget: BudgetLimits,
}

impl Host {
    pub fn new(options: HostOptions) -> Result<Self, Error> {
        let policy = Policy::load_all(&options.policies)?;
        let sandbox = Sandbox::new().map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cache = match &options.cache_dir {
            Some(dir) => CompileCache::new(dir, sandbox.engine()),
            None => CompileCache::disabled(),
        };
        let journal = options.store.as_deref().map(Journal::open).transpose()?;
        let policy_files = policy
            .texts()
            .map(|(name, text)| {
                let reference = PolicyRef {
                    name: name.into(),
                    digest: Digest::of(text.as_bytes()).to_string(),
                };
                (reference, text.as_bytes().into())
            })
            .collect();
        let llm = Llm::new(policy.llm(), options.store.as_deref());
        let budget = policy.run_budget().overridden_by(&options.budget);
        let trust = match options.accept_unsigned {
            true => PolicyTrust::accept_unsigned(),
            false => PolicyTrust::new(policy.trust()).map_err(|e| Error::TrustConfig(e.reason))?,
        };
        Ok(Self {
            policy_files,
            sandbox: Arc::new(sandbox),
            loader: Loader::new(cache),
            trust,
            policy: Arc::new(policy),
            overrides: options.limits,
            tools: Arc::default(),
            prompts: Arc::default(),
            journal,
            llm: Arc::new(llm),
            budget,
        })
    }

    /// Makes a loaded tool callable by other tools through the `tools` import, under its
    /// name (a later tool of the same name replaces it). Prompts and planners are refused.
    pub fn add_tool(&mut self, plugin: Plugin) -> Result<(), Error> {
        if plugin.schemas.is_none() {
            return Err(Error::WrongWorld {
                path: plugin.loaded.source.clone(),
                world: plugin.loaded.shape.world,
                what: "only tools can be called by other tools",
            });
        }
        Arc::make_mut(&mut self.tools).insert(plugin.name().to_string(), Arc::new(plugin));
        Ok(())
    }

    /// Makes a loaded prompt renderable by the planner of a run, under its name (a later
    /// prompt of the same name replaces it). Other worlds are refused.
    pub fn add_prompt(&mut self, plugin: Plugin) -> Result<(), Error> {
        if !matches!(plugin.entry, Entry::Prompt(_)) {
            return Err(Error::WrongWorld {
                path: plugin.loaded.source.clone(),
                world: plugin.loaded.shape.world,
                what: "only prompts can be rendered",
            });
        }
        Arc::make_mut(&mut self.prompts).insert(plugin.name().to_string(), Arc::new(plugin));
        Ok(())
    }

    /// Makes the prompt component at `path`, or every prompt component (`*.wasm`) in the
    /// directory `path`, renderable by a run's planner (other worlds in a directory are
    /// skipped). Returns the prompts' names.
    pub async fn add_prompts_from(&mut self, path: &Path) -> Result<Vec<String>, Error> {
        if !path.is_dir() {
            let prompt = self.load(path).await?;
            let name = prompt.name().to_string();
            self.add_prompt(prompt)?;
            return Ok(vec![name]);
        }
        let mut names = Vec::new();
        for file in wasm_files(path)? {
            let plugin = self.load(&file).await?;
            if let Entry::Prompt(_) = plugin.entry {
                names.push(plugin.name().to_string());
                self.add_prompt(plugin)?;
            }
        }
        Ok(names)
    }

    /// Loads every tool component (`*.wasm`) in `dir`, in name order, and makes each callable
    /// by other tools (components of other worlds are skipped). Returns the tools' names.
    pub async fn add_tools_from(&mut self, dir: &Path) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        for path in wasm_files(dir)? {
            let plugin = self.load(&path).await?;
            if plugin.schemas.is_some() {
                names.push(plugin.name().to_string());
                self.add_tool(plugin)?;
            }
        }
        Ok(names)
    }

    /// The names of the tools other tools may call.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The journal calls are recorded in, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// The policy this host enforces.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The limits `plugin` runs under.
    pub fn limits_for(&self, plugin: &Plugin) -> ResolvedLimits {
        self.policy
            .limits_for(plugin.name(), plugin.subject(), &self.overrides)
    }

    /// Loads, checks, links and describes the component at `path`.
    pub async fn load(&self, path: &Path) -> Result<Plugin, Error> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(path, &bytes).await
    }

    /// Loads, checks, links and describes `bytes`, with the signatures found beside `path`
    /// (which also names them in messages).
    pub async fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Plugin, Error> {
        self.load_checked(path, bytes, &Sidecars::beside(path), &self.trust)
            .await
    }

    /// Loads `bytes` if `trust` accepts them with `sidecars`.
    async fn load_checked(
        &self,
        path: &Path,
        bytes: &[u8],
        sidecars: &Sidecars,
        trust: &dyn TrustCheck,
    ) -> Result<Plugin, Error> {
        let loaded = self
            .loader
            .load_bytes(self.sandbox.engine(), path, bytes, sidecars, trust)?;
        let pre = self
            .sandbox
            .prepare(&loaded.component)
            .map_err(|e| Error::BadInfo {
                path: path.to_owned(),
                reason: format!(
                    "its imports do not match what this host provides ({}); rebuild it against \
                 this version of wit/",
                    crate::loader::one_line(&format!("{e:#}"))
                ),
            })?;
        let entry = Entry::new(loaded.shape.world, &pre).map_err(|e| Error::BadInfo {
            path: path.to_owned(),
            reason: crate::loader::one_line(&format!("{e:#}")),
        })?;
        let info = self.describe(path, &pre, &entry).await?;
        let bad_info = |reason: String| Error::BadInfo {
            path: path.to_owned(),
            reason,
        };
        check_name(info.name()).map_err(bad_info)?;
        semver::Version::parse(info.version()).map_err(|e| {
            bad_info(format!(
                "its version '{}' is not semver ({e})",
                info.version()
            ))
        })?;
        let schemas = match &info {
            Info::Tool(t) => Some(
                ToolSchemas::compile(&t.input_schema, &t.output_schema)
                    .map_err(|e| bad_info(e.to_string()))?,
            ),
            Info::Prompt(_) | Info::Planner(_) => None,
        };
        Ok(Plugin {
            name: info.name().into(),
            digest: loaded.digest.to_string(),
            loaded,
            info,
            pre,
            entry,
            schemas,
        })
    }

    /// Calls `describe()` under the policy's default limits.
    async fn describe(
        &self,
        path: &Path,
        pre: &InstancePre<HostState>,
        entry: &Entry,
    ) -> Result<Info, Error> {
        let limits = self.policy.limits_for("", "", &LimitsSpec::default());
        let who: Arc<str> = path.display().to_string().into();
        // Loading is not part of any run: describe's effects are performed but not recorded.
        let invocation = Invocation {
            plugin: who,
            gate: Gate::live("", "describe".into(), None, Arc::new(NoSecrets)),
            limits: limits.limits,
            grants: Grants::default(),
            secrets: Vec::new(),
            preopens: Vec::new(),
            caller: None,
        };
        let outcome = self
            .sandbox
            .run(pre, &invocation, async |store, instance| {
                Ok(match entry {
                    Entry::Tool(e) => Info::Tool(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                    Entry::Prompt(e) => Info::Prompt(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                    Entry::Planner(e) => Info::Planner(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                })
            })
            .await;
        outcome.result.map_err(|error| Error::Sandbox {
            who: format!("{} (while describing itself)", path.display()),
            error,
            limits: Box::new(limits),
        })
    }

    /// Calls a tool with `input` (JSON text): validates the input, runs `invoke` in a fresh
    /// sandbox under the tool's limits, then checks the output's size, syntax and schema.
    /// The call is journaled as a run when the host has a journal.
    pub async fn call_tool(&self, plugin: &Plugin, input: &str) -> Result<ToolCall, Error> {
        self.run_tool(plugin, input).await.result
    }

    /// Like `call_tool`, and also returns the run that journaled the call and what it spent.
    pub async fn run_tool(&self, plugin: &Plugin, input: &str) -> ToolRun {
        let ledger = Ledger::run(self.budget);
        let refused = |e| ToolRun {
            run: None,
            budget: ledger.report(),
            result: Err(e),
        };
        if let Err(e) = check_input(plugin, input) {
            return refused(e);
        }
        let digest = plugin.loaded.digest.to_string();
        let access = match live_access(&self.policy, plugin) {
            Ok(access) => access,
            Err(e) => return refused(e),
        };
        let recorder = self.journal.as_ref().and_then(|j| j.recorder().cloned());
        let policies = self.policy_files.iter().map(|(r, _)| r.clone()).collect();
        let mut run = RunJournal::live(recorder.clone(), "call", policies);
        run.blob("component", &digest, &plugin.loaded.bytes);
        for (reference, text) in &self.policy_files {
            run.blob("policy", &reference.digest, text);
        }
        let limits = self.limits_for(plugin);
        let redactor = Arc::new(SecretRedactor::new(&access.secrets));
        let gate = run
            .start_step(CALL_STEP, plugin.name(), &digest, redactor)
            .expect("a live run records, it cannot diverge");
        let ctx = RunContext::live(self, run.chains());
        let step = Ledger::step(
            &ledger,
            plugin.name(),
            self.policy.step_budget(plugin.name(), plugin.subject()),
        );
        let result = ctx
            .invoke(
                plugin,
                input,
                &limits,
                access,
                &gate,
                CallMode::Live,
                0,
                &step,
            )
            .await;
        // A live run records what happens; it cannot diverge.
        let _ = run.end_step(CALL_STEP, &gate);
        // The journal's writer commits in the background; `Journal::export` and dropping the
        // journal wait for it.
        let record = run.finish(status_of(&result)).ok();
        ToolRun {
            // Without a journal nothing was recorded, so there is no run to report.
            run: record.filter(|_| recorder.is_some()),
            budget: ledger.report(),
            result,
        }
    }

    /// Re-runs the run recorded in `bundle` with the recorded inputs and effects, comparing
    /// every event. `component` replaces the recorded component (to test a new version
    /// against a recorded run).
    pub async fn replay(
        &self,
        bundle: &Path,
        component: Option<&Path>,
    ) -> Result<ReplayReport, Error> {
        let journal = Journal::open_read_only(bundle)?;
        let runs = journal.runs(2)?;
        let [summary] = runs.as_slice() else {
            return Err(Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: format!("it holds {} runs instead of one", runs.len()),
            });
        };
        let events = journal.events(&summary.run)?;
        let verified = verify_run(&events).map_err(|source| Error::Tampered {
            path: bundle.to_owned(),
            source,
        })?;
        if !verified.complete {
            return Err(Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: format!(
                    "run {} did not finish (it was interrupted while recording)",
                    summary.run
                ),
            });
        }
        let components = self
            .recorded_components(&journal, &summary.run, &events, bundle)
            .await?;
        let replacement = match component {
            Some(path) => Some(Arc::new(self.load(path).await?)),
            None => None,
        };
        let policy = recorded_policy(&journal, &summary.run, &events).map_err(|reason| {
            Error::BundleInvalid {
                path: bundle.to_owned(),
                reason,
            }
        })?;
        let recorded = Recorded {
            bundle,
            events: &events,
            components,
            replacement,
            policy,
        };
        if recorded.is_workflow() {
            return crate::orchestrator::replay(self, recorded).await;
        }
        let Recorded {
            components,
            replacement,
            policy,
            ..
        } = recorded;
        let recorded = RecordedCall::find(&events, &step_chain(CALL_STEP)).ok_or_else(|| {
            Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: "it records no tool call".into(),
            }
        })?;
        let main = components.get(&recorded.digest).cloned();
        let mut tools = tools_by_name(components.into_values());
        let plugin = match replacement {
            Some(replacement) => {
                tools.insert(replacement.name().to_string(), replacement.clone());
                replacement
            }
            None => main.ok_or_else(|| Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: format!("it lacks the bytes of component {}", recorded.digest),
            })?,
        };
        let access = replay_access(&policy, &plugin);
        let limits = recorded_limits(&recorded, &format!("{} (recorded)", bundle.display()));
        let mut run = RunJournal::replay(&events);
        let gate = run
            .start_step(
                CALL_STEP,
                plugin.name(),
                &plugin.loaded.digest.to_string(),
                Arc::new(NoSecrets),
            )
            .map_err(Error::Diverged)?;
        let ctx = RunContext::replay(self, policy, (tools, BTreeMap::new()), run.chains());
        let mode = CallMode::Replay {
            timed_out_after: recorded.timed_out_after,
        };
        // Budget decisions are recorded too; a replay does not make them again.
        let ledger = Ledger::run(BudgetLimits::default());
        let result = ctx
            .invoke(
                &plugin,
                &recorded.input,
                &limits,
                access,
                &gate,
                mode,
                0,
                &ledger,
            )
            .await;
        run.end_step(CALL_STEP, &gate).map_err(Error::Diverged)?;
        let record = run.finish(status_of(&result)).map_err(Error::Diverged)?;
        Ok(ReplayReport {
            run: record.id,
            events: record.events,
            root: record.root,
            outcome: Replayed::Call(result),
        })
    }
}

impl Host {
    /// Every component `run` of `journal` used, by digest; each must hash to its digest and
    /// verify again with the signature and key the run recorded for it (`path` names the
    /// journal in messages).
    pub(crate) async fn recorded_components(
        &self,
        journal: &Journal,
        run: &str,
        events: &[Event],
        path: &Path,
    ) -> Result<BTreeMap<String, Arc<Plugin>>, Error> {
        let trust = RecordedTrust {
            recorded: events.iter().filter_map(recorded_signature).collect(),
        };
        let mut components = BTreeMap::new();
        for (digest, bytes) in journal.blobs(run, "component")? {
            let actual = Digest::of(&bytes).to_string();
            if actual != digest {
                return Err(Error::BundleInvalid {
                    path: path.to_owned(),
                    reason: format!("the bytes stored for component {digest} hash to {actual}"),
                });
            }
            let label = path.join(&digest);
            let none = Sidecars::default();
            let loaded = Arc::new(self.load_checked(&label, &bytes, &none, &trust).await?);
            components.insert(digest, loaded);
        }
        Ok(components)
    }
}

/// What the invocations of one run share, nested calls to other tools included: the sandbox,
/// the policy in force (in a replay, the recorded one), the tools that may be called, and
/// the run's chains.
pub(crate) struct RunContext {
    sandbox: Arc<Sandbox>,
    policy: Arc<Policy>,
    overrides: LimitsSpec,
    tools: Arc<BTreeMap<String, Arc<Plugin>>>,
    /// Prompts the run's planner may render, by name.
    prompts: Arc<BTreeMap<String, Arc<Plugin>>>,
    bounds: ToolBounds,
    chains: Chains,
    /// Calls to other tools made so far in this run.
    calls: AtomicU32,
    replay: bool,
    /// The model providers (never asked in a replay).
    pub(crate) llm: Arc<Llm>,
}

impl RunContext {
    /// A live run's context.
    pub(crate) fn live(host: &Host, chains: Chains) -> Arc<Self> {
        Arc::new(Self {
            sandbox: host.sandbox.clone(),
            policy: host.policy.clone(),
            overrides: host.overrides,
            tools: host.tools.clone(),
            prompts: host.prompts.clone(),
            bounds: host.policy.tool_bounds(),
            chains,
            calls: AtomicU32::new(0),
            replay: false,
            llm: host.llm.clone(),
        })
    }

    /// A replay's context: the recorded policy and components; no provider is ever asked.
    pub(crate) fn replay(
        host: &Host,
        policy: Policy,
        components: Components,
        chains: Chains,
    ) -> Arc<Self> {
        Self::recorded(host, policy, components, chains, true)
    }

    /// A resumed run's context: live, under the policy the interrupted run recorded.
    pub(crate) fn resumed(
        host: &Host,
        policy: Policy,
        components: Components,
        chains: Chains,
    ) -> Arc<Self> {
        Self::recorded(host, policy, components, chains, false)
    }

    /// A context under a recorded policy and components. A replay asks no provider (its
    /// completions are in the record) and takes no limits from the command line (they are
    /// recorded too).
    fn recorded(
        host: &Host,
        policy: Policy,
        (tools, prompts): Components,
        chains: Chains,
        replay: bool,
    ) -> Arc<Self> {
        let store = host.journal.as_ref().map(Journal::path).filter(|_| !replay);
        Arc::new(Self {
            llm: Arc::new(Llm::new(policy.llm(), store)),
            sandbox: host.sandbox.clone(),
            bounds: policy.tool_bounds(),
            policy: Arc::new(policy),
            overrides: match replay {
                true => LimitsSpec::default(),
                false => host.overrides,
            },
            tools: Arc::new(tools),
            prompts: Arc::new(prompts),
            chains,
            calls: AtomicU32::new(0),
            replay,
        })
    }

    pub(crate) fn is_replay(&self) -> bool {
        self.replay
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn chains(&self) -> &Chains {
        &self.chains
    }

    /// The tools steps may call, by name.
    pub(crate) fn tools(&self) -> &BTreeMap<String, Arc<Plugin>> {
        &self.tools
    }

    /// The prompts the planner may render, by name.
    pub(crate) fn prompts(&self) -> &BTreeMap<String, Arc<Plugin>> {
        &self.prompts
    }

    /// What `plugin` may reach in this run (in a replay, what it was recorded with).
    pub(crate) fn access(&self, plugin: &Plugin) -> Result<Access, Error> {
        match self.replay {
            true => Ok(replay_access(&self.policy, plugin)),
            false => live_access(&self.policy, plugin),
        }
    }

    /// The limits and mode of an invocation of `plugin` in `chain`: the recorded ones when
    /// the chain was recorded, else the policy's (with `timeout` replacing its deadline).
    pub(crate) fn limits_and_mode(
        &self,
        chain: &str,
        plugin: &Plugin,
        timeout: Option<std::time::Duration>,
    ) -> (ResolvedLimits, CallMode) {
        let recorded = self
            .chains
            .recorded(chain)
            .and_then(|events| RecordedCall::find(events, chain));
        if let Some(recorded) = &recorded {
            return (
                recorded_limits(recorded, &format!("the recorded chain {chain}")),
                CallMode::Replay {
                    timed_out_after: recorded.timed_out_after,
                },
            );
        }
        let mut limits = self
            .policy
            .limits_for(plugin.name(), plugin.subject(), &self.overrides);
        if let Some(timeout) = timeout {
            limits.limits.timeout = timeout;
            limits.timeout = Source::File("the workflow's step timeout".into());
        }
        let mode = match self.replay {
            true => CallMode::Replay {
                timed_out_after: None,
            },
            false => CallMode::Live,
        };
        (limits, mode)
    }

    /// A call from the tool `caller_name`, running in `caller`'s chain, to the tool `name`:
    /// checked against the run's bounds, run in its own sandbox under its own policy and
    /// limits with its own chain (`<caller chain>/<index>`), and recorded in the caller's
    /// chain as a `tool_call` event sealing that chain. Returns what the caller receives.
    pub(crate) async fn call_tool(
        self: &Arc<Self>,
        caller: &Caller,
        caller_gate: &Arc<Gate>,
        caller_name: &str,
        index: u32,
        name: &str,
        input: &str,
    ) -> Result<String, HostError> {
        let refuse = |message: String| {
            caller_gate.emit(EventKind::Denied {
                capability: "tools".into(),
                message: message.clone(),
            });
            HostError::BudgetExceeded(message)
        };
        if caller.depth >= self.bounds.max_depth {
            return Err(refuse(format!(
                "'{caller_name}' calling tool '{name}' would nest tool calls deeper than {} \
                 (tools.max_depth)",
                self.bounds.max_depth
            )));
        }
        let made = self.calls.fetch_add(1, Ordering::Relaxed);
        if made >= self.bounds.max_calls {
            return Err(refuse(format!(
                "'{caller_name}' calling tool '{name}' would exceed {} tool calls in one run \
                 (tools.max_calls)",
                self.bounds.max_calls
            )));
        }
        let record =
            |chain: String, sealed: Option<&Sealed>, outcome: &Result<String, HostError>| {
                nested_call_record(name, input, chain, sealed, outcome)
            };
        let prepared = self.tools.get(name).cloned().ok_or_else(|| {
            HostError::Unavailable(format!(
                "no tool named '{name}' is loaded; give it to baton with --tools"
            ))
        });
        let prepared = prepared.and_then(|callee| {
            check_input(&callee, input).map_err(|e| HostError::InvalidArgument(e.to_string()))?;
            let access = self
                .access(&callee)
                .map_err(|e| HostError::Failed(e.to_string()))?;
            Ok((callee, access))
        });
        let (callee, access) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let result = Err(e);
                caller_gate.emit(record(String::new(), None, &result));
                return result;
            }
        };
        let digest = callee.loaded.digest.to_string();
        self.chains.blob("component", &digest, &callee.loaded.bytes);
        let chain = format!("{}/{index}", caller.chain);
        let (limits, mode) = self.limits_and_mode(&chain, &callee, None);
        let redactor = Arc::new(SecretRedactor::new(&access.secrets));
        let gate = self.chains.gate(chain.clone(), redactor.clone());
        let result = Box::pin(self.invoke(
            &callee,
            input,
            &limits,
            access,
            &gate,
            mode,
            caller.depth + 1,
            &caller.ledger,
        ))
        .await;
        let result = result
            .map(|call| call.output.to_string())
            .map_err(|e| callee_error(name, e));
        let sealed = match gate.seal() {
            Ok(sealed) => sealed,
            Err(divergence) => {
                caller_gate.diverged(divergence);
                return Err(HostError::Failed("the replay diverged".into()));
            }
        };
        caller_gate.absorb(&sealed);
        // The callee's secrets stay out of the caller's chain too.
        let mut event = record(chain, Some(&sealed), &result);
        redactor.redact(&mut event);
        caller_gate.emit(event);
        result
    }

    /// The planner in `caller`'s chain rendering the prompt `name`: run in its own sandbox,
    /// under its own policy, with its own chain (`<caller chain>/<index>`), and recorded in
    /// the caller's chain as a `tool_call` event (named after the prompt) sealing that chain.
    pub(crate) async fn render_prompt(
        self: &Arc<Self>,
        caller: &Caller,
        caller_gate: &Arc<Gate>,
        index: u32,
        name: &str,
        vars: &str,
        budget: TokenBudget,
    ) -> Result<Vec<Message>, HostError> {
        let input = serde_json::json!({
            "budget": {"max_tokens": budget.max_tokens, "model": budget.model},
            "vars": vars,
        })
        .to_string();
        let prepared = match self.prompts.get(name) {
            None => Err(HostError::Unavailable(format!(
                "no prompt named '{name}' is loaded; name it in the workflow's prompts"
            ))),
            Some(prompt) => self
                .access(prompt)
                .map(|access| (prompt.clone(), access))
                .map_err(|e| HostError::Failed(e.to_string())),
        };
        let (prompt, access) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let outcome = Err(e);
                caller_gate.emit(nested_call_record(
                    name,
                    &input,
                    String::new(),
                    None,
                    &outcome,
                ));
                return outcome.map(|_| Vec::new());
            }
        };
        self.chains.blob(
            "component",
            &prompt.loaded.digest.to_string(),
            &prompt.loaded.bytes,
        );
        let chain = format!("{}/{index}", caller.chain);
        let (limits, mode) = self.limits_and_mode(&chain, &prompt, None);
        let redactor = Arc::new(SecretRedactor::new(&access.secrets));
        let gate = self.chains.gate(chain.clone(), redactor.clone());
        let Entry::Prompt(entry) = &prompt.entry else {
            unreachable!("add_prompt admits only prompts")
        };
        let rendered = std::sync::OnceLock::new();
        let call = async |store: &mut wasmtime::Store<HostState>, instance: &_| {
            let messages = entry
                .load(&mut *store, instance)?
                .call_render(&mut *store, vars, &budget)
                .await?;
            Ok(match messages {
                Ok(messages) => {
                    let text = messages_json(&messages);
                    let _ = rendered.set(messages);
                    Ok(text)
                }
                Err(e) => Err(ToolError::Host(e)),
            })
        };
        let result = Box::pin(self.invoke_with(
            &prompt,
            &input,
            &limits,
            access,
            &gate,
            mode,
            caller.depth + 1,
            &caller.ledger,
            call,
        ))
        .await;
        let outcome = match result {
            Ok((Ok(text), _)) => Ok(text),
            Ok((Err(ToolError::Host(e)), _)) => Err(e),
            Ok((Err(e), _)) => Err(HostError::Failed(format!("prompt '{name}' failed: {e:?}"))),
            Err(e) => Err(HostError::Failed(e.to_string())),
        };
        let sealed = match gate.seal() {
            Ok(sealed) => sealed,
            Err(divergence) => {
                caller_gate.diverged(divergence);
                return Err(HostError::Failed("the replay diverged".into()));
            }
        };
        caller_gate.absorb(&sealed);
        let mut event = nested_call_record(name, &input, chain, Some(&sealed), &outcome);
        redactor.redact(&mut event);
        caller_gate.emit(event);
        outcome.map(|_| rendered.into_inner().expect("render returned messages"))
    }

    /// One invocation of a tool in its step's chain: `invocation_started`, the sandboxed
    /// call (effects through `gate`), `invocation_ended`, then the output checks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        plugin: &Plugin,
        input: &str,
        limits: &ResolvedLimits,
        access: Access,
        gate: &Arc<Gate>,
        mode: CallMode,
        depth: u32,
        ledger: &Arc<Ledger>,
    ) -> Result<ToolCall, Error> {
        let (Entry::Tool(entry), Some(schemas)) = (&plugin.entry, &plugin.schemas) else {
            return Err(wrong_world(plugin));
        };
        let call = async |store: &mut wasmtime::Store<HostState>, instance: &_| {
            entry
                .load(&mut *store, instance)?
                .call_invoke(&mut *store, input)
                .await
        };
        let (output, usage) = self
            .invoke_with(
                plugin, input, limits, access, gate, mode, depth, ledger, call,
            )
            .await?;
        let tool = || plugin.name().to_string();
        let output = output.map_err(|error| Error::ToolFailed {
            tool: tool(),
            error,
        })?;
        let output: Value = serde_json::from_str(&output).map_err(|e| Error::OutputNotJson {
            tool: tool(),
            reason: e.to_string(),
        })?;
        schemas
            .check(Direction::Output, &output)
            .map_err(|error| Error::OutputSchema {
                tool: tool(),
                error,
            })?;
        Ok(ToolCall { output, usage })
    }

    /// One invocation of any export of `plugin` (`call`) in a chain: `invocation_started`
    /// with `input`, the sandboxed call (effects through `gate`), then `invocation_ended`
    /// with the text it returned. Returns that text, or how the guest failed, and what the
    /// call consumed; a sandbox failure (trap, limit) is the error.
    ///
    /// A replay of a recorded timeout is deterministic: the call gets exactly the fuel it had
    /// burned when its deadline struck, and running out of it is that same timeout.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn invoke_with(
        self: &Arc<Self>,
        plugin: &Plugin,
        input: &str,
        limits: &ResolvedLimits,
        Access {
            grants,
            secrets,
            preopens,
        }: Access,
        gate: &Arc<Gate>,
        mode: CallMode,
        depth: u32,
        ledger: &Arc<Ledger>,
        call: impl AsyncFnOnce(
            &mut wasmtime::Store<HostState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<String, ToolError>>,
    ) -> Result<(Result<String, ToolError>, Usage), Error> {
        // Fuel and time are charged like tokens: the call's fuel limit is reserved (and cut
        // to what the budget has left), the fuel burned committed after.
        // A refusal is journaled as the chain's only event, and a replay repeats it.
        let refused = |message: String| {
            gate.emit(EventKind::Denied {
                capability: BUDGET_CAPABILITY.into(),
                message: message.clone(),
            });
            Error::BudgetRefused(message)
        };
        let (limits, fuel_hold) = match mode {
            CallMode::Live => charge_limits(limits, ledger).map_err(|e| refused(e.to_string()))?,
            CallMode::Replay { .. } => {
                let recorded = self.chains.recorded(&gate.chain());
                if let Some(EventKind::Denied {
                    capability,
                    message,
                }) = recorded.and_then(|events| events.first()).map(|e| &e.kind)
                    && capability == BUDGET_CAPABILITY
                {
                    return Err(refused(message.clone()));
                }
                (Cow::Borrowed(limits), None)
            }
        };
        let limits = &*limits;
        gate.emit(EventKind::InvocationStarted {
            digest: plugin.loaded.digest.to_string(),
            input: input.into(),
            limits: LimitsRecord {
                budget_fuel: limits.fuel == Source::Budget,
                budget_timeout: limits.timeout == Source::Budget,
                ..LimitsRecord::from(&limits.limits)
            },
            secrets: grants.secrets.clone(),
        });
        if let Provenance::Verified(v) = &plugin.loaded.provenance {
            gate.emit(EventKind::Verified {
                attestation: v.attestation.clone(),
                digest: plugin.loaded.digest.to_string(),
                key: v.key.clone(),
                name: v.name.clone(),
                signature: v.signature.clone(),
                signer: v.signer.clone(),
                trusted_root: v.trusted_root.clone(),
            });
        }
        if let CallMode::Replay { .. } = mode
            && !grants.secrets.is_empty()
        {
            gate.adopt_recorded_usage();
        }
        let timed_out_after = match mode {
            CallMode::Replay { timed_out_after } => timed_out_after,
            CallMode::Live => None,
        };
        let mut run_limits = limits.limits;
        if let Some(fuel) = timed_out_after {
            run_limits.fuel = fuel.max(1);
        }
        if let CallMode::Replay { .. } = mode {
            // In a replay, fuel is the CPU limit; wall time (recorded effects are served at
            // once) is only a safety net, loose enough for a slower machine.
            run_limits.timeout = run_limits.timeout * 10 + REPLAY_TIMEOUT_SLACK;
        }
        let invocation = Invocation {
            plugin: plugin.name.clone(),
            gate: gate.clone(),
            limits: run_limits,
            grants,
            secrets,
            preopens,
            caller: Some(Caller {
                ctx: self.clone(),
                chain: gate.chain(),
                depth,
                ledger: ledger.clone(),
                digest: plugin.digest.as_str().into(),
                may_render: matches!(plugin.entry, Entry::Planner(_)),
            }),
        };
        let Outcome { mut result, usage } = self.sandbox.run(&plugin.pre, &invocation, call).await;
        if timed_out_after.is_some()
            && let Err(SandboxError::Limit(LimitExceeded::Fuel { .. })) = result
        {
            result = Err(SandboxError::Limit(LimitExceeded::Timeout {
                limit: limits.limits.timeout,
            }));
        }
        let sandbox_error = |error| Error::Sandbox {
            who: format!("{} '{}'", plugin.loaded.shape.world, plugin.name()),
            error,
            limits: Box::new(limits.clone()),
        };
        // Output past the limit is not journaled; everything else is, as returned.
        let result = match result {
            Ok(Ok(output)) if output.len() as u64 > limits.limits.output => {
                Err(SandboxError::Limit(LimitExceeded::Output {
                    limit: limits.limits.output,
                    stream: OutputStream::Result,
                }))
            }
            other => other,
        };
        if let Some(hold) = fuel_hold {
            hold.commit(Spend {
                fuel: usage.fuel,
                ..Spend::default()
            });
        }
        gate.emit(EventKind::InvocationEnded {
            outcome: outcome_record(&result),
            fuel: usage.fuel,
            peak_memory: usage.peak_memory,
            duration_us: usage.duration.as_micros() as u64,
        });
        Ok((result.map_err(sandbox_error)?, usage))
    }
}

/// `limits` cut to what `ledger` has left of fuel and time, with the fuel reserved; a
/// budget with nothing left refuses the call.
fn charge_limits<'a>(
    limits: &'a ResolvedLimits,
    ledger: &Arc<Ledger>,
) -> Result<(Cow<'a, ResolvedLimits>, Option<Hold>), Error> {
    // Without a fuel or time budget (the usual case), the call's limits stand as they are.
    if ledger.time_left().is_none() && ledger.fuel_left().is_none() {
        return Ok((Cow::Borrowed(limits), None));
    }
    let mut limits = limits.clone();
    if let Some(left) = ledger.time_left()
        && left < limits.limits.timeout
    {
        (limits.limits.timeout, limits.timeout) = (left, Source::Budget);
    }
    let mut hold = None;
    if let Some(left) = ledger.fuel_left() {
        if left < limits.limits.fuel {
            (limits.limits.fuel, limits.fuel) = (left, Source::Budget);
        }
        // With no fuel left, asking for one unit says so.
        hold = Some(ledger.reserve(Spend {
            fuel: limits.limits.fuel.max(1),
            ..Spend::default()
        })?);
    }
    if limits.limits.timeout.is_zero() {
        // Reserving nothing checks the time budget, and says which one ran out.
        ledger.reserve(Spend::default())?;
    }
    Ok((Cow::Owned(limits), hold))
}

/// The provenance a recorded `verified` event holds, by component digest.
fn recorded_signature(event: &Event) -> Option<(String, Verified)> {
    let EventKind::Verified {
        attestation,
        digest,
        key,
        name,
        signature,
        signer,
        trusted_root,
    } = &event.kind
    else {
        return None;
    };
    let verified = Verified {
        signer: signer.clone(),
        name: name.clone(),
        key: key.clone(),
        signature: signature.clone(),
        attestation: attestation.clone(),
        trusted_root: trusted_root.clone(),
    };
    Some((digest.clone(), verified))
}

/// What one invocation of a plugin may reach.
pub(crate) struct Access {
    grants: Grants,
    /// Values of the granted secrets (none in a replay).
    pub(crate) secrets: Vec<(String, String)>,
    preopens: Vec<Node>,
}

/// What `plugin` may reach in a live call: its grants, the values of its secrets and its
/// directories, opened.
fn live_access(policy: &Policy, plugin: &Plugin) -> Result<Access, Error> {
    let grants = policy.grants_for(plugin.name(), plugin.subject());
    let secrets = resolve_secrets(policy, plugin, &grants)?;
    let preopens =
        crate::effect::fs::preopen_all(&grants.fs).map_err(|(mount, reason)| Error::FsMount {
            plugin: plugin.name().into(),
            host: mount.host,
            policy: mount.source,
            reason,
        })?;
    Ok(Access {
        grants,
        secrets,
        preopens,
    })
}

/// What `plugin` may reach in a replay: its recorded grants, no secret values (the record
/// holds placeholders) and no host directories (the record holds every answer).
fn replay_access(policy: &Policy, plugin: &Plugin) -> Access {
    let grants = policy.grants_for(plugin.name(), plugin.subject());
    Access {
        preopens: grants.fs.iter().map(Node::replayed).collect(),
        grants,
        secrets: Vec::new(),
    }
}

/// The limits a recorded call ran under, attributed to `source`.
fn recorded_limits(recorded: &RecordedCall, source: &str) -> ResolvedLimits {
    let source = Source::File(source.into());
    let or_budget = |cut: bool| match cut {
        true => Source::Budget,
        false => source.clone(),
    };
    ResolvedLimits {
        limits: Limits::from(&recorded.limits),
        fuel: or_budget(recorded.limits.budget_fuel),
        memory: source.clone(),
        timeout: or_budget(recorded.limits.budget_timeout),
        output: source.clone(),
    }
}

/// The `tool_call` event recording a nested call (of a tool, or a prompt's render) in the
/// caller's chain: `chain` is the callee's (empty if it never ran), sealed by `sealed`.
fn nested_call_record(
    name: &str,
    input: &str,
    chain: String,
    sealed: Option<&Sealed>,
    outcome: &Result<String, HostError>,
) -> EventKind {
    let (events, root) = sealed.map_or((0, String::new()), |s| (s.events, s.root.clone()));
    EventKind::ToolCall {
        chain,
        events,
        input: input.into(),
        outcome: match outcome {
            Ok(output) => ToolCallOutcome::Returned {
                output: output.clone(),
            },
            Err(e) => {
                let (kind, message) = host_error_parts(e);
                ToolCallOutcome::Failed {
                    kind: kind.into(),
                    message: message.into(),
                }
            }
        },
        root,
        tool: name.into(),
    }
}

/// Rendered messages as journaled: `[{"role": ..., "content": ...}]`.
fn messages_json(messages: &[Message]) -> String {
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            serde_json::json!({"role": role, "content": m.content})
        })
        .collect();
    Value::Array(messages).to_string()
}

/// What a caller receives when the tool it called fails.
fn callee_error(name: &str, error: Error) -> HostError {
    match error {
        Error::ToolFailed { error, .. } => match error {
            ToolError::InvalidInput(m) => HostError::InvalidArgument(m),
            ToolError::Failed(m) => HostError::Failed(m),
            ToolError::Host(e) => e,
        },
        // Where the limit came from is the host's business (and differs in a replay).
        Error::Sandbox {
            error: SandboxError::Limit(limit),
            ..
        } => match limit {
            LimitExceeded::Timeout { .. } => HostError::Timeout(format!("tool '{name}' {limit}")),
            _ => HostError::Failed(format!("tool '{name}' {limit}")),
        },
        Error::InputNotJson { .. } | Error::InputSchema { .. } => {
            HostError::InvalidArgument(error.to_string())
        }
        other => HostError::Failed(other.to_string()),
    }
}

/// The values of the secrets granted to `plugin`.
fn resolve_secrets(
    policy: &Policy,
    plugin: &Plugin,
    grants: &Grants,
) -> Result<Vec<(String, String)>, Error> {
    grants
        .secrets
        .iter()
        .map(|name| {
            policy
                .secret(name)
                .map(|value| (name.clone(), value))
                .map_err(|hint| Error::SecretMissing {
                    plugin: plugin.name().into(),
                    name: name.clone(),
                    hint,
                })
        })
        .collect()
}

/// Whether a call happens for the first time or replays its record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallMode {
    Live,
    /// `timed_out_after`: the fuel a recorded timeout had burned (see `Host::invoke`).
    Replay {
        timed_out_after: Option<u64>,
    },
}

/// The `denied` capability of a call the budget refused before it started.
const BUDGET_CAPABILITY: &str = "budget";

/// Added to ten times the recorded timeout of a replayed call.
const REPLAY_TIMEOUT_SLACK: std::time::Duration = std::time::Duration::from_secs(10);

/// The step id of a `baton call` run.
const CALL_STEP: &str = "call";

fn wrong_world(plugin: &Plugin) -> Error {
    Error::WrongWorld {
        path: plugin.loaded.source.clone(),
        world: plugin.loaded.shape.world,
        what: "only tools can be called with input; prompts and planners run inside a workflow",
    }
}

/// The policy a recorded run was governed by, rebuilt from the bundle's policy texts.
pub(crate) fn recorded_policy(
    journal: &Journal,
    run: &str,
    events: &[Event],
) -> Result<Policy, String> {
    let Some(EventKind::RunStarted { policies, .. }) = events.first().map(|e| &e.kind) else {
        return Err("its run does not start with run_started".into());
    };
    let texts = journal.blobs(run, "policy").map_err(|e| e.to_string())?;
    let layers = policies
        .iter()
        .map(|reference| {
            let (_, bytes) = texts
                .iter()
                .find(|(digest, _)| *digest == reference.digest)
                .ok_or_else(|| format!("it lacks the text of policy {}", reference.name))?;
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| format!("policy {} is not UTF-8", reference.name))?;
            Ok((reference.name.clone(), text))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Policy::from_texts(layers).map_err(|e| e.to_string())
}

/// Refuses input that is not JSON or breaks the tool's input schema.
pub(crate) fn check_input(plugin: &Plugin, input: &str) -> Result<(), Error> {
    let Some(schemas) = &plugin.schemas else {
        return Err(wrong_world(plugin));
    };
    let document: Value = serde_json::from_str(input).map_err(|e| Error::InputNotJson {
        reason: e.to_string(),
    })?;
    schemas
        .check(Direction::Input, &document)
        .map_err(|error| Error::InputSchema {
            tool: plugin.name().to_string(),
            error,
        })
}

pub(crate) fn status_of<T>(result: &Result<T, Error>) -> &'static str {
    if result.is_ok() { "ok" } else { "failed" }
}

/// How an invocation ended, as journaled.
fn outcome_record(result: &Result<Result<String, ToolError>, SandboxError>) -> InvocationOutcome {
    match result {
        Ok(Ok(output)) => InvocationOutcome::Returned {
            output: output.clone(),
        },
        Ok(Err(error)) => {
            let (kind, message) = match error {
                ToolError::InvalidInput(m) => ("invalid_input", m.clone()),
                ToolError::Failed(m) => ("failed", m.clone()),
                ToolError::Host(e) => ("host", format!("{e:?}")),
            };
            InvocationOutcome::ToolError {
                kind: kind.into(),
                message,
            }
        }
        Err(SandboxError::Limit(limit)) => InvocationOutcome::Limit {
            limit: limit.kind().map_or("stack", LimitKind::name).into(),
            message: limit.to_string(),
        },
        Err(error) => InvocationOutcome::Trap {
            message: error.to_string(),
        },
    }
}

/// What a bundle recorded about its tool call.
struct RecordedCall {
    digest: String,
    input: String,
    limits: LimitsRecord,
    /// The fuel burned when a recorded timeout struck.
    timed_out_after: Option<u64>,
}

impl RecordedCall {
    /// The call recorded in `chain` of `events`.
    fn find(events: &[Event], chain: &str) -> Option<Self> {
        let mut steps = events.iter().filter(|e| e.chain == chain);
        let EventKind::InvocationStarted {
            digest,
            input,
            limits,
            ..
        } = &steps.next()?.kind
        else {
            return None;
        };
        let timed_out_after = steps.find_map(|e| match &e.kind {
            EventKind::InvocationEnded {
                outcome: InvocationOutcome::Limit { limit, .. },
                fuel,
                ..
            } if limit == LimitKind::Timeout.name() => Some(*fuel),
            _ => None,
        });
        Some(Self {
            digest: digest.clone(),
            input: input.clone(),
            limits: *limits,
            timed_out_after,
        })
    }
}

/// The result of a replay whose every event matched the record.
#[derive(Debug)]
pub struct ReplayReport {
    pub run: String,
    pub events: usize,
    pub root: String,
    pub outcome: Replayed,
}

/// What a replay reproduced (a recorded failure replays as the same failure).
#[derive(Debug)]
pub enum Replayed {
    /// A `baton call`'s result.
    Call(Result<ToolCall, Error>),
    /// A `baton run`'s result.
    Run(Box<crate::orchestrator::result::RunResult>),
}

/// A verified bundle's run, ready to be replayed.
pub(crate) struct Recorded<'a> {
    pub bundle: &'a Path,
    pub events: &'a [Event],
    /// Its components, verified again, by digest.
    pub components: BTreeMap<String, Arc<Plugin>>,
    /// A component to replay instead of the recorded one of the same name.
    pub replacement: Option<Arc<Plugin>>,
    /// The policy it ran under, rebuilt from its texts.
    pub policy: Policy,
}

impl Recorded<'_> {
    fn is_workflow(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Workflow { .. }))
    }
}

/// A run's tools and prompts, each by name.
pub(crate) type Components = (BTreeMap<String, Arc<Plugin>>, BTreeMap<String, Arc<Plugin>>);

/// The tools among `plugins`, by name.
pub(crate) fn tools_by_name(
    plugins: impl IntoIterator<Item = Arc<Plugin>>,
) -> BTreeMap<String, Arc<Plugin>> {
    plugins
        .into_iter()
        .filter(|p| p.schemas.is_some())
        .map(|p| (p.name().to_string(), p))
        .collect()
}

/// The components (`*.wasm` files) in `dir`, in name order.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let unreadable = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Plugin names key policy sections, so they must be plain identifiers.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "its name '{}' must be 1-64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter",
            crate::sandbox::truncate(name, 80)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_policy_keys() {
        assert!(check_name("json-query").is_ok());
        assert!(check_name("v2.tool_x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Calc").is_err());
        assert!(check_name("9lives").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }
}

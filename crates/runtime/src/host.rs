//! The library's face: a `Host` loads plugins and calls them under its policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_budget::{BudgetLimits, Ledger};
use baton_core::Digest;
use baton_core::source::is_oci;
use baton_effects::JournalAllowance;
use baton_journal::event::PolicyRef;
use baton_journal::store::{Store, StoreUrl};
use baton_llm::{Llm, Stores};

use crate::provenance::{BackgroundSigner, RunSigner};
use crate::pure_cache::PureCache;
use baton_policy::{LimitsSpec, Policy, ResolvedLimits};
use baton_registry::{Pulled, Registry};

use crate::error::Error;
use crate::loader::Loader;
use crate::loader::cache::CompileCache;
use crate::plugin::{Entry, Plugin, wasm_files};
use crate::run::RunJournal;
use crate::runner::Runner;
use crate::trust::PolicyTrust;

/// How a run starts: what it is recorded as, what it may spend, and from whose account.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    /// The `command` the run is recorded with.
    pub command: &'a str,
    /// Its id (`None`: a new one).
    pub id: Option<String>,
    /// Its budget (`None`: the host's).
    pub budget: Option<BudgetLimits>,
    /// A ledger its spend also counts against (an API key's).
    pub account: Option<&'a Arc<Ledger>>,
}

impl<'a> RunStart<'a> {
    pub fn new(command: &'a str) -> Self {
        Self {
            command,
            id: None,
            budget: None,
            account: None,
        }
    }
}

/// How to build a `Host`.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Policy files layered, in order, over the built-in defaults.
    pub policies: Vec<PathBuf>,
    /// Limits from the command line, overriding every policy.
    pub limits: LimitsSpec,
    /// Where compiled components are cached; `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
    /// The store every call is recorded in; `None` records nothing.
    pub store: Option<StoreUrl>,
    /// Load components whatever the policy's `[trust]` says (for signing them).
    pub accept_unsigned: bool,
    /// Budget limits from the command line, overriding the policy's `[budget]`.
    pub budget: BudgetLimits,
    /// Run every call, even one the cache of pure calls could answer (for measuring the
    /// calls themselves).
    pub no_pure_cache: bool,
}

pub struct Host {
    pub(crate) runner: Arc<Runner>,
    pub(crate) loader: Loader,
    /// Decides, by the policy's `[trust]`, which components may be compiled.
    pub(crate) trust: PolicyTrust,
    pub(crate) policy: Arc<Policy>,
    pub(crate) overrides: LimitsSpec,
    /// Tools other tools may call through the host (as their policy allows), by name.
    pub(crate) tools: Arc<BTreeMap<String, Arc<Plugin>>>,
    /// Prompts a run's planner may render, by name.
    pub(crate) prompts: Arc<BTreeMap<String, Arc<Plugin>>>,
    pub(crate) journal: Option<Arc<dyn Store>>,
    /// Signs the runs this host records (`[journal] signing_key`).
    pub(crate) signer: Option<Arc<BackgroundSigner>>,
    /// The policy files in force and their texts, as runs record and bundles carry them.
    pub(crate) policy_files: Vec<(PolicyRef, Arc<[u8]>)>,
    /// The model providers and routes of the policy.
    pub(crate) llm: Arc<Llm>,
    /// Where the LLM layer keeps idempotency keys and the completion cache.
    pub(crate) llm_stores: Stores,
    /// Answers pure calls made before (kept where the LLM layer keeps its stores).
    pub(crate) pure_cache: Option<Arc<PureCache>>,
    /// What a run may spend: the policy's `[budget]` with the command line's on top.
    pub(crate) budget: BudgetLimits,
    /// Where components named by `oci://` references come from.
    pub(crate) registry: Registry,
}

impl Host {
    pub fn new(options: HostOptions) -> Result<Self, Error> {
        let policy = Policy::load_all(&options.policies)?;
        let runner = Runner::new().map_err(|e| Error::Engine(format!("{e:#}")))?;
        // Pulled components are cached even when compiled ones are not.
        let registry = Registry::new(
            &options
                .cache_dir
                .clone()
                .or_else(CompileCache::default_dir)
                .unwrap_or_else(|| std::env::temp_dir().join("baton")),
        );
        let cache = match &options.cache_dir {
            Some(dir) => CompileCache::new(dir, runner.engine()),
            None => CompileCache::disabled(),
        };
        let (journal, llm_stores) = match &options.store {
            Some(url) => {
                let (journal, stores) =
                    crate::stores::open_for_host(url, options.cache_dir.as_deref())?;
                (Some(journal), stores)
            }
            None => (None, Stores::Memory),
        };
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
        let llm = Llm::new(policy.llm(), &llm_stores);
        let signer = match (policy.run_signing(), &journal) {
            (Some(signing), Some(store)) => {
                let signer = RunSigner::open(signing, store.clone()).map_err(Error::TrustConfig)?;
                let background = BackgroundSigner::start(signer)
                    .map_err(|e| Error::Engine(format!("cannot start the signing thread: {e}")))?;
                Some(Arc::new(background))
            }
            _ => None,
        };
        let budget = policy.run_budget().overridden_by(&options.budget);
        let trust = match options.accept_unsigned {
            true => PolicyTrust::accept_unsigned(),
            false => PolicyTrust::new(policy.trust()).map_err(|e| Error::TrustConfig(e.reason))?,
        };
        Ok(Self {
            policy_files,
            runner: Arc::new(runner),
            loader: Loader::new(cache),
            trust,
            policy: Arc::new(policy),
            overrides: options.limits,
            tools: Arc::default(),
            prompts: Arc::default(),
            signer,
            journal,
            llm: Arc::new(llm),
            pure_cache: (!options.no_pure_cache).then(|| PureCache::new(&llm_stores)),
            llm_stores,
            budget,
            registry,
        })
    }

    /// Makes a loaded tool callable by other tools through the `tools` import, under its
    /// name (a later tool of the same name replaces it). Prompts and planners are refused.
    pub fn add_tool(&mut self, plugin: Plugin) -> Result<(), Error> {
        if !plugin.is_tool() {
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
        if is_oci(dir) {
            let tool = self.load(dir).await?;
            let name = tool.name().to_string();
            self.add_tool(tool)?;
            return Ok(vec![name]);
        }
        let mut names: Vec<String> = Vec::new();
        let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in wasm_files(dir)? {
            let plugin = self.load(&path).await?;
            if plugin.is_tool() {
                let name = plugin.name().to_string();
                // Which of two tools of one name a call reaches must not depend on file names.
                if let Some(first) = sources.insert(name.clone(), path.clone()) {
                    return Err(Error::DuplicateTool {
                        name,
                        dir: dir.to_owned(),
                        files: (first, path),
                    });
                }
                names.push(name);
                self.add_tool(plugin)?;
            }
        }
        Ok(names)
    }

    /// The component an `oci://` reference names, pulled into the cache (or found there) with
    /// its signature files beside it; nothing is verified until it is loaded.
    pub async fn pull(&self, reference: &str) -> Result<Pulled, Error> {
        let pulled = self.registry.pull(reference).await?;
        let how = match pulled.cached {
            true => "cached",
            false => "pulled",
        };
        tracing::info!("{reference}: {} ({how})", pulled.manifest);
        Ok(pulled)
    }

    /// The names of the tools other tools may call.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The PostgreSQL store's database, when the host records there (for the tables of
    /// other layers: API keys, shared ledgers).
    pub fn database(&self) -> Option<&baton_postgres::Database> {
        match &self.llm_stores {
            Stores::Postgres { db, .. } => Some(db),
            Stores::Memory | Stores::Beside(_) => None,
        }
    }

    /// The journal calls are recorded in, if any.
    pub fn journal(&self) -> Option<&dyn Store> {
        self.journal.as_deref()
    }

    /// The policy this host enforces.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The model providers of the policy.
    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// The limits `plugin` runs under.
    pub fn limits_for(&self, plugin: &Plugin) -> ResolvedLimits {
        self.policy
            .limits_for(plugin.name(), plugin.subject(), &self.overrides)
    }

    /// Starts journaling a new run of `command` under this host's policies, with the
    /// policy texts its bundle must carry, and the budget it may spend.
    pub fn start_run(&self, command: &str) -> (RunJournal, Arc<Ledger>) {
        self.start_run_as(RunStart::new(command))
    }

    /// Starts journaling a new run as `start` says.
    pub fn start_run_as(&self, start: RunStart<'_>) -> (RunJournal, Arc<Ledger>) {
        let recorder = self.journal.as_ref().and_then(|j| j.recorder().cloned());
        let policies = self.policy_files.iter().map(|(r, _)| r.clone()).collect();
        let run = RunJournal::live(
            recorder,
            self.signer.clone(),
            self.pure_cache.clone(),
            self.journal_allowance(),
            start.id,
            start.command,
            policies,
        );
        let budget = start.budget.unwrap_or(self.budget);
        for (reference, text) in &self.policy_files {
            run.blob("policy", &reference.digest, text);
        }
        let ledger = Ledger::run_for(budget, start.account);
        (run, ledger)
    }

    /// A fresh allowance of what one run may record, as the policy sets it.
    pub fn journal_allowance(&self) -> Arc<JournalAllowance> {
        let (max, source) = self.policy.journal_max_bytes();
        JournalAllowance::new(max, source)
    }

    /// The largest input a call takes, and where that limit was set.
    pub fn max_input(&self) -> (u64, String) {
        self.policy.max_input(&self.overrides)
    }

    /// What signs the runs this host records, if it signs them.
    pub fn signer(&self) -> Option<&Arc<BackgroundSigner>> {
        self.signer.as_ref()
    }

    /// The cache that answers this host's pure calls (`None` when it is off).
    pub fn pure_cache(&self) -> Option<&Arc<PureCache>> {
        self.pure_cache.as_ref()
    }

    /// Waits until the runs this host ended are signed and logged (they are signed off the
    /// thread that ran them): a bundle exported after this carries its statement.
    pub fn settle(&self) {
        if let Some(signer) = &self.signer {
            signer.wait();
        }
    }

    /// Whether runs are journaled.
    pub fn recording(&self) -> bool {
        self.journal().and_then(Store::recorder).is_some()
    }

    /// The budget a run may spend.
    pub fn budget(&self) -> BudgetLimits {
        self.budget
    }
}

//! Host capabilities, after Spin's factors: each is one module that links its own
//! interfaces, builds its per-store state from what the call is granted, and decides inside
//! its host functions what a plugin may reach (policy check → budget → gate → effect).
//!
//! The list at the bottom of this file is the only other place that names them: it declares
//! each module, gives the store's data ([`HostState`]) one field per capability, links them
//! all, and is where the loader learns which imports a component may have. Adding a
//! capability is its module plus one line there.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use baton_budget::Ledger;
use baton_effects::fs::Node;
use baton_effects::{BoxFuture, Gate};
use baton_journal::event::{ChainId, EventKind};
use baton_llm::Llm;
use baton_policy::Grants;
use baton_sandbox::Stdio;
use baton_sandbox::memory::MemoryLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};

use crate::bindings::baton::plugin;
use crate::bindings::types::{Error as HostError, Message, TokenBudget};
use crate::flow::Flow;

/// One host capability.
pub trait Capability {
    /// What each store keeps for it.
    type State: Send + 'static;

    /// The interfaces it provides. A component importing anything no capability provides is
    /// refused at load.
    const INTERFACES: &'static [Interfaces];

    /// Links its interfaces (once, when the host starts).
    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()>;

    /// Its state for one call.
    fn prepare(call: &CallSetup<'_>) -> Self::State;
}

/// Interfaces of one package a capability provides: `package/name@version...`.
pub struct Interfaces {
    pub package: &'static str,
    pub names: &'static [&'static str],
    /// The prefix every version must start with (`0.2.`).
    pub version: &'static str,
}

/// Who runs, with what it is granted, journaled through which gate.
pub struct Grant<'a> {
    pub plugin: &'a Arc<str>,
    /// Every effect of the call goes through it.
    pub gate: &'a Arc<dyn Gate>,
    /// The labels its data carries, checked at every sink.
    pub flow: &'a Arc<Flow>,
    pub grants: &'a Grants,
    /// Values of the granted secrets (empty in a replay, which serves the recorded ones).
    pub secrets: &'a [(String, String)],
    /// The granted directories (see `baton_effects::fs::Node`).
    pub preopens: &'a [Node],
}

/// What one call of a plugin is given, from which each capability builds its state.
pub struct CallSetup<'a> {
    pub grant: Grant<'a>,
    /// Its bounded standard output and error.
    pub stdio: &'a Stdio,
}

/// What a call needs of the run it belongs to, to reach other components and the models
/// (implemented by the run's context; capabilities see only this).
pub trait Run: Send + Sync {
    /// Calls the tool `name` for `caller`, numbered `index` among its calls.
    fn call_tool<'a>(
        self: Arc<Self>,
        caller: &'a Caller,
        index: u32,
        name: &'a str,
        input: &'a str,
    ) -> BoxFuture<'a, Result<String, HostError>>;

    /// Renders the prompt `name` for `caller` (a planner), numbered `index` among its calls.
    fn render_prompt<'a>(
        self: Arc<Self>,
        caller: &'a Caller,
        index: u32,
        name: &'a str,
        vars: &'a str,
        budget: TokenBudget,
    ) -> BoxFuture<'a, Result<Vec<Message>, HostError>>;

    /// The model providers (never asked in a replay).
    fn llm(&self) -> &Llm;
}

/// How an invocation reaches its run: the run itself, its chain (the parent of its callees'
/// chains) and how deeply it is nested.
#[derive(Clone)]
pub struct Caller {
    pub run: Arc<dyn Run>,
    /// The caller's name, for messages.
    pub name: Arc<str>,
    pub gate: Arc<dyn Gate>,
    pub chain: ChainId,
    pub depth: u32,
    /// The step's budget, shared with the tools it calls.
    pub ledger: Arc<Ledger>,
    /// The invoked component's digest.
    pub digest: Arc<str>,
    /// Whether it may render the run's prompts (only a run's planner may).
    pub may_render: bool,
    /// Stops the call, and the calls it makes.
    pub cancel: CancellationToken,
    /// The labels the call's data carries (its callees start with them).
    pub flow: Arc<Flow>,
}

/// The interfaces every other one builds on.
const BASE: Interfaces = Interfaces {
    package: "baton:plugin",
    names: &["types"],
    version: "0.1.",
};

/// Refuses a capability the policy does not grant: journals the denial through the gate and
/// returns the error the guest sees.
pub(crate) fn deny(state: &HostState, capability: &str, what: &str) -> HostError {
    let message = format!("{what} is not granted to '{}' by its policy", state.plugin);
    state.gate.emit(EventKind::Denied {
        capability: capability.into(),
        message: message.clone(),
    });
    HostError::NotGranted(message)
}

impl plugin::types::Host for HostState {}

/// Declares the capabilities: `module => Type`, one line each.
macro_rules! capabilities {
    ($($module:ident => $capability:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// The data of each `Store`: what every capability shares (the resource table, the
        /// gate, the caller), then one field per capability. A store lives for exactly one
        /// invocation.
        pub struct HostState {
            pub(crate) table: ResourceTable,
            pub(crate) memory: MemoryLimiter,
            /// The plugin's name, for logs and denial messages.
            pub(crate) plugin: Arc<str>,
            /// The invocation's effect gate: every effect of the guest goes through it.
            pub(crate) gate: Arc<dyn Gate>,
            /// The labels the invocation's data carries, checked at every sink.
            pub(crate) flow: Arc<Flow>,
            /// How this invocation reaches its run (`None` while a component describes
            /// itself).
            pub(crate) caller: Option<Caller>,
            /// Calls to other components it has made so far (numbering their chains).
            pub(crate) nested_calls: u32,
            $(
                // A capability with nothing to keep per store has `()` here, never read.
                #[allow(dead_code)]
                pub(crate) $module: <$module::$capability as Capability>::State,
            )*
        }

        impl HostState {
            /// The store data of one call.
            pub(crate) fn new(
                call: &CallSetup<'_>,
                memory: MemoryLimiter,
                caller: Option<Caller>,
            ) -> Self {
                Self {
                    table: bounded_table(),
                    memory,
                    plugin: call.grant.plugin.clone(),
                    gate: call.grant.gate.clone(),
                    flow: call.grant.flow.clone(),
                    caller,
                    nested_calls: 0,
                    $($module: $module::$capability::prepare(call),)*
                }
            }
        }

        /// Links every interface a plugin may import, and nothing else.
        pub fn link_all(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
            plugin::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            $($module::$capability::link(linker)?;)*
            Ok(())
        }

        /// The interfaces a plugin may import.
        pub fn provided() -> impl Iterator<Item = &'static Interfaces> {
            std::iter::once(&BASE)
                $(.chain(<$module::$capability as Capability>::INTERFACES))*
        }
    };
}

capabilities! {
    wasi => Wasi,
    fs => Filesystem,
    http => Http,
    log => Log,
    llm => Models,
    tools => Tools,
    prompts => Prompts,
    plan => Plan,
}

/// A call's table of host resources, bounded so that a component cannot hold them without
/// end (running into the bound is `LimitExceeded::Handles`).
fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(baton_core::limits::MAX_HANDLES);
    table
}

impl baton_sandbox::Sandboxed for HostState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.memory
    }
}

//! The data of each `Store`: one resource table shared by all capabilities, and one view per
//! capability. A store lives for exactly one invocation.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::caps::http::EgressHooks;
use crate::caps::tools::Caller;
use crate::effect::Gate;
use crate::effect::fs::Node;
use crate::policy::LlmGrant;
use crate::sandbox::memory::MemoryLimiter;

pub struct HostState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) egress: EgressHooks,
    pub(crate) memory: MemoryLimiter,
    /// The plugin's name, for logs and denial messages.
    pub(crate) plugin: Arc<str>,
    /// The invocation's effect gate: every effect of the guest goes through it.
    pub(crate) gate: Arc<Gate>,
    /// The directories the policy grants, preopened.
    pub(crate) preopens: Vec<Node>,
    /// How this invocation calls other tools (`None` while a component describes itself).
    pub(crate) caller: Option<Caller>,
    /// The models the policy lets it use.
    pub(crate) llm: Option<LlmGrant>,
    /// The tools the policy lets it call.
    pub(crate) tool_grants: Vec<String>,
    /// Calls to other tools it has made so far (numbering the callees' chains).
    pub(crate) tool_calls: u32,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

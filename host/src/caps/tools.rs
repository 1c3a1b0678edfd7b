//! `baton:plugin/tools`: a tool calls another tool through the host. The call is allowed only
//! if the caller's policy lists the callee in `tools.call`, and within the run's bounds on
//! nesting depth and number of calls; the callee then runs in its own sandbox, under its own
//! policy, with its own chain (see `RunContext::call_tool`).

use std::sync::Arc;

use crate::bindings::baton::plugin::tools::Host;
use crate::bindings::types::Error;
use crate::journal::event::ChainId;
use crate::runtime::RunContext;
use crate::state::HostState;

/// What an invocation needs to call other tools: the run it belongs to, its chain (the
/// parent of its callees' chains) and how deeply it is nested.
#[derive(Clone)]
pub struct Caller {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) chain: ChainId,
    pub(crate) depth: u32,
    /// The step's budget, shared with the tools it calls.
    pub(crate) ledger: Arc<crate::budget::Ledger>,
    /// The invoked component's digest.
    pub(crate) digest: Arc<str>,
    /// Whether it may render the run's prompts (only a run's planner may).
    pub(crate) may_render: bool,
}

impl Host for HostState {
    async fn call(
        &mut self,
        name: String,
        input: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let what = format!("calling tool '{name}'");
        let Some(caller) = self.caller.clone() else {
            return Ok(Err(super::deny(self, "tools", &what)));
        };
        if !self.tool_grants.contains(&name) {
            return Ok(Err(super::deny(self, "tools", &what)));
        }
        self.tool_calls += 1;
        let call = caller.ctx.call_tool(
            &caller,
            &self.gate,
            &self.plugin,
            self.tool_calls,
            &name,
            &input,
        );
        Ok(Box::pin(call).await)
    }
}

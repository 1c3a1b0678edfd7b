//! `baton:plugin/prompts`: a run's planner renders the prompt components its workflow names.
//! The prompt runs in its own sandbox, under its own policy, with its own chain (see
//! `RunContext::render_prompt`). Tools, and planners outside a run, are refused.

use crate::bindings::baton::plugin::prompts::Host;
use crate::bindings::types::{Error, Message, TokenBudget};
use crate::state::HostState;

impl Host for HostState {
    async fn render(
        &mut self,
        name: String,
        vars: String,
        budget: TokenBudget,
    ) -> wasmtime::Result<Result<Vec<Message>, Error>> {
        let what = format!("rendering prompt '{name}'");
        let Some(caller) = self.caller.clone().filter(|c| c.may_render) else {
            return Ok(Err(super::deny(self, "prompts", &what)));
        };
        self.tool_calls += 1;
        let render =
            caller
                .ctx
                .render_prompt(&caller, &self.gate, self.tool_calls, &name, &vars, budget);
        Ok(Box::pin(render).await)
    }
}

//! `baton:plugin/prompts`: a run's planner renders the prompt components its workflow names.
//! The prompt runs in its own sandbox, under its own policy, with its own chain (see the
//! run's `Run::render_prompt`). Tools, and planners outside a run, are refused.

use wasmtime::component::{HasSelf, Linker};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::bindings::baton::plugin::prompts;
use crate::bindings::types::{Error, Message, TokenBudget};

pub struct Prompts;

impl Capability for Prompts {
    type State = ();

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["prompts"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        prompts::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(_: &CallSetup<'_>) {}
}

impl prompts::Host for HostState {
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
        self.nested_calls += 1;
        let render =
            caller
                .run
                .clone()
                .render_prompt(&caller, self.nested_calls, &name, &vars, budget);
        Ok(render.await)
    }
}

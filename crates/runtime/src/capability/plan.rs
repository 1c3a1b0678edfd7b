//! `baton:plugin/plan`: what a planner says about its plan besides the steps it runs. The
//! steps it decided against are kept for the call; the orchestrator takes them after `next`
//! returns and reports them as skipped (and journals them with the decision).

use wasmtime::component::{HasSelf, Linker};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::bindings::baton::plugin::plan;

pub struct Plan;

/// A step a planner decided against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub id: String,
    pub tool: String,
    pub reason: String,
}

impl Capability for Plan {
    type State = Vec<Skipped>;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["plan"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        plan::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(_: &CallSetup<'_>) -> Self::State {
        Vec::new()
    }
}

impl plan::Host for HostState {
    async fn skip(&mut self, id: String, tool: String, reason: String) -> wasmtime::Result<()> {
        if !self.plan.iter().any(|s| s.id == id) {
            self.plan.push(Skipped { id, tool, reason });
        }
        Ok(())
    }
}

impl HostState {
    /// The steps the planner decided against in this call, in the order it said so.
    pub fn take_skipped(&mut self) -> Vec<Skipped> {
        std::mem::take(&mut self.plan)
    }
}

//! `baton:plugin/plan`: what a planner says about its plan besides the steps it runs, and
//! what it asks of the steps it ran. The steps it decided against are kept for the call; the
//! orchestrator takes them after `next` returns and reports them as skipped (and journals them
//! with the decision). The inputs the run's steps started with are given to the call before
//! `next` by the orchestrator, which knows them (a replay starts the same steps with the same
//! inputs, so the planner is told the same).

use std::collections::BTreeMap;
use std::sync::Arc;

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

/// A planner call's view of its plan.
#[derive(Debug, Default)]
pub struct PlanState {
    /// The steps it decided against in this call, in the order it said so.
    skipped: Vec<Skipped>,
    /// The input each step of the run started with, by id (shared with the orchestrator,
    /// not copied into every decision).
    inputs: Arc<BTreeMap<String, String>>,
}

impl Capability for Plan {
    type State = PlanState;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["plan"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        plan::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(_: &CallSetup<'_>) -> Self::State {
        PlanState::default()
    }
}

impl plan::Host for HostState {
    async fn skip(&mut self, id: String, tool: String, reason: String) -> wasmtime::Result<()> {
        if !self.plan.skipped.iter().any(|s| s.id == id) {
            self.plan.skipped.push(Skipped { id, tool, reason });
        }
        Ok(())
    }

    async fn step_input(&mut self, id: String) -> wasmtime::Result<Option<String>> {
        Ok(self.plan.inputs.get(&id).cloned())
    }
}

impl HostState {
    /// The steps the planner decided against in this call, in the order it said so.
    pub fn take_skipped(&mut self) -> Vec<Skipped> {
        std::mem::take(&mut self.plan.skipped)
    }

    /// Tells the planner's call what input each of the run's steps started with.
    pub fn set_step_inputs(&mut self, inputs: Arc<BTreeMap<String, String>>) {
        self.plan.inputs = inputs;
    }
}

//! A fork of a recorded run: the chains the record holds before the fork point are replayed
//! exactly (served from the record and compared, as in any replay) and copied into the new
//! run's journal; every other chain is live. The new run's chain is live from its start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use baton_budget::Ledger;
use baton_effects::fs::{FsOp, Node, Opened};
use baton_effects::{BoxFuture, Divergence, Effect, Gate, Redactor, ReplayGate, Sealed, Slot};
use baton_journal::event::{ChainId, Event, EventKind, FsAnswer};
use baton_journal::store::{Recorder, StoreError};
use baton_llm::{Llm, Stores};
use baton_policy::{LimitsSpec, Policy, ResolvedLimits};

use super::mode::{Access, CallPlan, Live, Replay, RunMode};
use crate::error::Error;
use crate::plugin::Plugin;
use crate::pure_cache::PureCache;

/// Live, but for the chains of `replay` (those before the fork point).
pub(crate) struct Fork {
    pub replay: Replay,
    pub live: Live,
}

impl Fork {
    fn replays(&self, chain: &str) -> bool {
        self.replay.chains.contains_key(chain)
    }
}

impl RunMode for Fork {
    fn gate(&self, run: &str, chain: ChainId, redactor: Arc<dyn Redactor>) -> Arc<dyn Gate> {
        let live = self.live.gate(run, chain.clone(), redactor.clone());
        match self.replay.chains.get(&chain) {
            Some(recorded) => Arc::new(Copied {
                replay: ReplayGate::open(run, chain, recorded.clone()),
                recorded: recorded.iter().map(|e| e.kind.clone()).collect(),
                live,
            }),
            None => live,
        }
    }

    fn blob(&self, run: &str, role: &str, digest: &str, bytes: &Arc<[u8]>) {
        self.live.blob(run, role, digest, bytes);
    }

    fn recorded(&self, chain: &str) -> Option<&[Event]> {
        self.replay.recorded(chain)
    }

    fn access(&self, policy: &Policy, plugin: &Plugin) -> Result<Access, Error> {
        // A replayed chain never reaches the world (its gate serves the record), so every
        // call may be given what a live one is.
        self.live.access(policy, plugin)
    }

    fn plan<'a>(
        &self,
        chain: &str,
        limits: &'a ResolvedLimits,
        ledger: &Arc<Ledger>,
        gate: &dyn Gate,
        secrets: bool,
    ) -> Result<CallPlan<'a>, Error> {
        match self.replays(chain) {
            true => self.replay.plan(chain, limits, ledger, gate, secrets),
            false => self.live.plan(chain, limits, ledger, gate, secrets),
        }
    }

    fn retry_delay(&self, delay: Duration) -> Duration {
        self.live.retry_delay(delay)
    }

    fn run_ended(&self, run: &str, status: &str, root: &str) {
        self.live.run_ended(run, status, root);
    }

    fn recorder(&self) -> Option<&Recorder> {
        self.live.recorder()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.live.flush()
    }

    fn models(&self, policy: &Policy, stores: &Stores) -> Llm {
        self.live.models(policy, stores)
    }

    fn overrides(&self, command_line: LimitsSpec) -> LimitsSpec {
        self.live.overrides(command_line)
    }

    fn pure_cache(&self) -> Option<&Arc<PureCache>> {
        // A cached answer must not stand in for a call the record says ran.
        None
    }
}

/// A chain replayed from the record, then copied into the new run's journal as recorded
/// once the replay has reproduced it.
struct Copied {
    replay: Arc<ReplayGate>,
    recorded: Vec<EventKind>,
    live: Arc<dyn Gate>,
}

impl Gate for Copied {
    fn chain(&self) -> ChainId {
        self.replay.chain()
    }

    fn effect(&self, effect: Effect) -> EventKind {
        self.replay.effect(effect)
    }

    fn fs(&self, node: &Node, op: &FsOp) -> (FsAnswer, Opened) {
        self.replay.fs(node, op)
    }

    fn emit(&self, kind: EventKind) {
        self.replay.emit(kind);
    }

    fn reserve(&self, probe: EventKind) -> Slot {
        self.replay.reserve(probe)
    }

    fn resolve<'a>(
        &'a self,
        slot: Slot,
        request: EventKind,
        perform: BoxFuture<'a, EventKind>,
    ) -> BoxFuture<'a, Option<EventKind>> {
        self.replay.resolve(slot, request, perform)
    }

    fn send(&self) {}

    fn adopt_recorded_usage(&self) {
        self.replay.adopt_recorded_usage();
    }

    fn absorb(&self, callee: &Sealed) {
        self.replay.absorb(callee);
    }

    fn diverged(&self, divergence: Divergence) {
        self.replay.diverged(divergence);
    }

    fn divergence(&self) -> Option<Divergence> {
        self.replay.divergence()
    }

    fn seal(&self) -> Result<Sealed, Divergence> {
        let replayed = self.replay.seal()?;
        for kind in &self.recorded {
            self.live.emit(kind.clone());
        }
        let copied = self.live.seal()?;
        Ok(Sealed {
            root: copied.root,
            events: copied.events,
            denials: replayed.denials,
            nested: replayed.nested,
        })
    }
}

/// The chains of `events` (one run) before step `at`: each chain the run chain started
/// before it (decisions and steps, retries and replicates), and the chains of the calls
/// they made. `None` when the run chain never started step `at`.
pub(crate) fn before(events: &[Event], at: &str) -> Option<BTreeMap<String, Vec<Event>>> {
    let mut started = BTreeSet::new();
    let mut found = false;
    for event in events
        .iter()
        .filter(|e| e.chain == baton_journal::event::RUN_CHAIN)
    {
        if let EventKind::StepStarted { step, .. } = &event.kind {
            if step == at {
                found = true;
                break;
            }
            started.insert(baton_journal::event::step_chain(step));
        }
    }
    if !found {
        return None;
    }
    let mut chains: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for event in events {
        let chain = event.chain.as_str();
        let ours = started.contains(chain)
            || started.iter().any(|s| {
                chain
                    .strip_prefix(s.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            });
        if ours {
            chains
                .entry(chain.to_string())
                .or_default()
                .push(event.clone());
        }
    }
    Some(chains)
}

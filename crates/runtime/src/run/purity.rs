//! Watching a call for what would make it impure: a gate that passes everything on to the
//! gate it wraps and keeps the events of the call, noting any that read the world.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use baton_effects::fs::{FsOp, Node, Opened};
use baton_effects::{BoxFuture, Divergence, Effect, Gate, Sealed, Slot};
use baton_journal::event::{ChainId, EventKind, FsAnswer};

/// A gate that watches the call it serves.
pub(crate) struct Watched {
    inner: Arc<dyn Gate>,
    events: Mutex<Vec<EventKind>>,
    /// The call read a clock, randomness, the environment, a file, the network, a model or
    /// another tool, or was refused one.
    impure: AtomicBool,
}

impl Watched {
    pub(crate) fn new(inner: Arc<dyn Gate>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            events: Mutex::default(),
            impure: AtomicBool::new(false),
        })
    }

    /// The events of the call so far, when nothing it did read the world: the seed of its
    /// instance (the host's draw, not the guest's) and its logs.
    pub(crate) fn pure_events(&self) -> Option<Vec<EventKind>> {
        match self.impure.load(Ordering::Acquire) {
            true => None,
            false => Some(
                self.events
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
        }
    }

    fn note(&self, kind: &EventKind) {
        match kind {
            EventKind::RandomSeed { .. } | EventKind::Log { .. } => self
                .events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(kind.clone()),
            _ => self.tainted(),
        }
    }

    fn tainted(&self) {
        self.impure.store(true, Ordering::Release);
    }
}

impl Gate for Watched {
    fn chain(&self) -> ChainId {
        self.inner.chain()
    }

    fn effect(&self, effect: Effect) -> EventKind {
        let kind = self.inner.effect(effect);
        self.note(&kind);
        kind
    }

    fn fs(&self, node: &Node, op: &FsOp) -> (FsAnswer, Opened) {
        self.tainted();
        self.inner.fs(node, op)
    }

    fn emit(&self, kind: EventKind) {
        self.note(&kind);
        self.inner.emit(kind);
    }

    fn reserve(&self, probe: EventKind) -> Slot {
        self.tainted();
        self.inner.reserve(probe)
    }

    fn resolve<'a>(
        &'a self,
        slot: Slot,
        request: EventKind,
        perform: BoxFuture<'a, EventKind>,
    ) -> BoxFuture<'a, Option<EventKind>> {
        self.tainted();
        self.inner.resolve(slot, request, perform)
    }

    fn send(&self) {
        self.inner.send();
    }

    fn adopt_recorded_usage(&self) {
        self.inner.adopt_recorded_usage();
    }

    fn absorb(&self, callee: &Sealed) {
        self.tainted();
        self.inner.absorb(callee);
    }

    fn diverged(&self, divergence: Divergence) {
        self.inner.diverged(divergence);
    }

    fn divergence(&self) -> Option<Divergence> {
        self.inner.divergence()
    }

    fn seal(&self) -> Result<Sealed, Divergence> {
        self.inner.seal()
    }
}

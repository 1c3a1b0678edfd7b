//! The effect gate: the one door through which every nondeterministic input reaches a
//! component, and through which every event of a chain is written.
//!
//! A `Gate` serves one chain (a step's, or the run's). In live mode it performs an effect
//! through `world` (the only module that touches clocks and randomness) and records the
//! event; in replay mode it checks the request against the next recorded event and returns
//! the recorded one, touching nothing. Capabilities get a gate and nothing else, so they
//! cannot reach the world another way.

pub mod wasi;
mod world;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::journal::chain::ChainWriter;
use crate::journal::event::{ChainId, Event, EventKind, RandomSource};
use crate::journal::store::Recorder;

/// What a component asks of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    WallClock,
    MonotonicClock,
    Random { source: RandomSource, len: usize },
    RandomSeed,
    Log { level: String, message: String },
}

/// The first event at which a replay differs from its record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "replay diverged at chain '{chain}', event {seq} ({kind}): expected {expected}, found {found}"
)]
pub struct Divergence {
    pub chain: ChainId,
    pub seq: u64,
    /// The recorded event's kind (or "end of chain").
    pub kind: String,
    pub expected: String,
    pub found: String,
}

/// Keeps secrets out of the journal: every event passes through it before it is hashed.
pub trait Redactor: Send + Sync {
    fn redact(&self, event: &mut EventKind);
}

/// The redactor used while no policy defines secrets: changes nothing.
#[derive(Debug, Default)]
pub struct NoSecrets;

impl Redactor for NoSecrets {
    fn redact(&self, _: &mut EventKind) {}
}

enum Mode {
    Live { recorder: Option<Recorder> },
    Replay { expected: VecDeque<Event> },
}

struct Inner {
    chain: ChainWriter,
    mode: Mode,
    divergence: Option<Divergence>,
}

/// How a chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub root: String,
    pub events: u64,
}

pub struct Gate {
    inner: Mutex<Inner>,
    redactor: Arc<dyn Redactor>,
}

impl Gate {
    /// A gate that performs effects and records every event (to `recorder`, if any).
    pub fn live(
        run: &str,
        chain: ChainId,
        recorder: Option<Recorder>,
        redactor: Arc<dyn Redactor>,
    ) -> Arc<Self> {
        Self::new(run, chain, Mode::Live { recorder }, redactor)
    }

    /// A gate that serves `recorded` (this chain's events, in order) and compares.
    pub fn replay(run: &str, chain: ChainId, recorded: Vec<Event>) -> Arc<Self> {
        let expected = recorded.into();
        Self::new(run, chain, Mode::Replay { expected }, Arc::new(NoSecrets))
    }

    fn new(run: &str, chain: ChainId, mode: Mode, redactor: Arc<dyn Redactor>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                chain: ChainWriter::new(run, chain),
                mode,
                divergence: None,
            }),
            redactor,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Performs (live) or serves (replay) an effect, returning the event that answers it.
    pub fn effect(&self, effect: Effect) -> EventKind {
        let mut inner = self.lock();
        match &mut inner.mode {
            Mode::Live { .. } => {
                let kind = world::perform(&effect);
                inner.append(kind.clone(), &*self.redactor);
                kind
            }
            Mode::Replay { .. } => {
                // The produced event, with a placeholder response, to compare requests.
                let probe = world::probe(&effect);
                inner.check(probe.clone()).unwrap_or(probe)
            }
        }
    }

    /// Records (live) or checks (replay) an event the host itself produces.
    pub fn emit(&self, kind: EventKind) {
        let mut inner = self.lock();
        match inner.mode {
            Mode::Live { .. } => inner.append(kind, &*self.redactor),
            Mode::Replay { .. } => {
                inner.check(kind);
            }
        }
    }

    /// The first divergence of a replay so far.
    pub fn divergence(&self) -> Option<Divergence> {
        self.lock().divergence.clone()
    }

    /// Hash of the chain's last event.
    pub fn head(&self) -> String {
        self.lock().chain.head().to_string()
    }

    /// Ends the chain: its root and events, or the first divergence of a replay (including
    /// recorded events the replay never produced).
    pub fn seal(&self) -> Result<Sealed, Divergence> {
        let mut inner = self.lock();
        if let Some(d) = inner.divergence.take() {
            return Err(d);
        }
        if let Mode::Replay { expected } = &inner.mode
            && let Some(missing) = expected.front()
        {
            return Err(Divergence {
                chain: missing.chain.clone(),
                seq: missing.seq,
                kind: missing.kind.name().into(),
                expected: describe(&missing.kind),
                found: "the end of the chain".into(),
            });
        }
        Ok(Sealed {
            root: inner.chain.head().to_string(),
            events: inner.chain.len(),
        })
    }
}

impl Inner {
    fn append(&mut self, mut kind: EventKind, redactor: &dyn Redactor) {
        redactor.redact(&mut kind);
        let event = self.chain.append(kind);
        if let Mode::Live {
            recorder: Some(recorder),
        } = &self.mode
        {
            recorder.event(event);
        }
    }

    /// Compares a produced event with the next recorded one; on a match, appends the recorded
    /// event (so the replayed chain hashes to the recorded root) and returns it.
    fn check(&mut self, mut produced: EventKind) -> Option<EventKind> {
        if self.divergence.is_some() {
            return None;
        }
        let Mode::Replay { expected } = &mut self.mode else {
            return None;
        };
        let seq = self.chain.len();
        let Some(recorded) = expected.pop_front() else {
            self.divergence = Some(Divergence {
                chain: self.chain_id(),
                seq,
                kind: "end of chain".into(),
                expected: "the end of the chain".into(),
                found: describe(&produced),
            });
            return None;
        };
        produced.adopt_recorded(&recorded.kind);
        if !produced.same_as(&recorded.kind) {
            self.divergence = Some(Divergence {
                chain: recorded.chain.clone(),
                seq: recorded.seq,
                kind: recorded.kind.name().into(),
                expected: describe(&recorded.kind),
                found: describe(&produced),
            });
            return None;
        }
        self.chain.append(recorded.kind.clone());
        Some(recorded.kind)
    }

    fn chain_id(&self) -> ChainId {
        self.chain.chain().to_string()
    }
}

/// An event kind as JSON, cut to a readable length.
fn describe(kind: &EventKind) -> String {
    let json = serde_json::to_string(kind).expect("events serialize");
    crate::sandbox::truncate(&json, 300)
}

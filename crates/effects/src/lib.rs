//! The effect gate: the one door through which every nondeterministic input reaches a
//! component, and through which every event of a chain is written.
//!
//! A [`Gate`] serves one chain (a step's, or the run's). It has two implementations behind
//! the one interface, and capabilities never ask which one they hold:
//!
//! - [`LiveGate`] performs each effect through the world adapters ([`world`], [`fs`],
//!   [`http`]: the only code that touches clocks, randomness, files and the network) and
//!   records the event that answers it;
//! - [`ReplayGate`] checks each request against the next recorded event (each event kind
//!   says what "the same call" means: `EventKind::same_as`) and answers with the recorded
//!   event, touching nothing.
//!
//! An effect whose answer comes from elsewhere (an LLM layer above this crate) goes through
//! [`Gate::reserve`] and [`Gate::resolve`]: the gate runs the caller's future only when live.

mod allowance;
pub mod fs;
pub mod http;
mod live;
mod redact;
mod replay;
pub mod wasi;
mod world;

use std::future::Future;
use std::pin::Pin;

use baton_journal::event::{
    ChainId, Event, EventKind, FsAnswer, HttpOutcome, HttpRequestRecord, RandomSource,
};
use bytes::Bytes;

pub use allowance::JournalAllowance;
pub use live::LiveGate;
pub use redact::{NoSecrets, Redactor, RunRedactor, SecretRedactor};
pub use replay::ReplayGate;

/// A future the gate may or may not run (a live effect's performance).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a component asks of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    WallClock,
    MonotonicClock,
    Random {
        source: RandomSource,
        len: usize,
    },
    RandomSeed,
    Log {
        level: String,
        message: String,
    },
    /// The guest's environment: the host variables named in `names` (those set), then
    /// `secrets` as given.
    Environment {
        names: Vec<String>,
        secrets: Vec<(String, String)>,
    },
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

/// How a chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub root: String,
    pub events: u64,
    /// What the policy refused in this chain and the chains it called into
    /// ("capability: message").
    pub denials: Vec<String>,
    /// Events in the chains of the calls this chain made to other tools (at any depth).
    pub nested: u64,
}

/// A position in a chain held for an effect that completes later (an HTTP exchange, a
/// model's answer): the event's place is where the guest asked, however long the answer
/// takes. Only the gate that made it can resolve it.
#[derive(Debug)]
pub struct Slot {
    /// Live: the reservation's number.
    position: u64,
    /// Replay: the recorded event at that position (`None` once the replay has diverged).
    recorded: Option<Box<Event>>,
}

/// The door every effect of one chain goes through (see the crate documentation).
pub trait Gate: Send + Sync {
    /// This gate's chain.
    fn chain(&self) -> ChainId;

    /// Performs (live) or serves (replay) an effect of the world, returning the event that
    /// answers it.
    fn effect(&self, effect: Effect) -> EventKind;

    /// Performs (live) or serves (replay) a filesystem operation on `node`.
    fn fs(&self, node: &fs::Node, op: &fs::FsOp) -> (FsAnswer, fs::Opened);

    /// Records (live) or checks (replay) an event the host itself produces.
    fn emit(&self, kind: EventKind);

    /// Holds the chain position of an effect that completes later. `probe` is the event as
    /// far as it is known now (the request); a replay compares it with the record, and it is
    /// what a live chain records if the effect is abandoned.
    fn reserve(&self, probe: EventKind) -> Slot;

    /// Completes a held position. Live: runs `perform` and records the event it gives.
    /// Replay: compares `request` (the whole request, now known) with the recorded event and
    /// answers with that, without running `perform`; `None` when the replay has diverged.
    fn resolve<'a>(
        &'a self,
        slot: Slot,
        request: EventKind,
        perform: BoxFuture<'a, EventKind>,
    ) -> BoxFuture<'a, Option<EventKind>>;

    /// Hands the events chained so far to the recorder now rather than in a later batch, so
    /// that a crash after this loses none of them (live; a replay records nothing).
    fn send(&self);

    /// In a replay of a call that was given secrets, the guest runs on placeholders instead
    /// of the secret values, so its CPU and memory use may differ slightly: fuel and peak
    /// memory are then taken from the record, and everything else is still compared (replay
    /// only).
    fn adopt_recorded_usage(&self);

    /// Takes over the denials and the event count of a chain this one called into, for the
    /// run's summary.
    fn absorb(&self, callee: &Sealed);

    /// Records a divergence found in a chain this one called into, unless one was found
    /// already (replay only).
    fn diverged(&self, divergence: Divergence);

    /// The first divergence of a replay so far.
    fn divergence(&self) -> Option<Divergence>;

    /// Ends the chain: its root and events, or the first divergence of a replay (including
    /// recorded events the replay never produced). Effects still in flight are recorded as
    /// abandoned.
    fn seal(&self) -> Result<Sealed, Divergence>;
}

impl dyn Gate + '_ {
    /// An effect whose whole request is known when it is asked: reserved and resolved at
    /// once (see [`Gate::resolve`]).
    pub async fn exchange(
        &self,
        request: EventKind,
        perform: impl Future<Output = EventKind> + Send,
    ) -> Option<EventKind> {
        let slot = self.reserve(request.clone());
        self.resolve(slot, request, Box::pin(perform)).await
    }

    /// Completes the HTTP exchange held by `slot`: live, `request` (with `body`) goes out
    /// through the world's client under `egress`; in a replay the recorded response answers
    /// it. `None` when the replay has diverged.
    pub async fn http(
        &self,
        slot: Slot,
        request: HttpRequestRecord,
        body: Bytes,
        egress: &http::Egress,
    ) -> Option<HttpOutcome> {
        let produced = EventKind::Http {
            request: request.clone(),
            outcome: http::failed(http::code::ABANDONED, "not sent"),
        };
        let perform = async move {
            let outcome = http::send(&request, body, egress).await;
            EventKind::Http { request, outcome }
        };
        match self.resolve(slot, produced, Box::pin(perform)).await? {
            EventKind::Http { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// An event kind as JSON, cut to a readable length.
fn describe(kind: &EventKind) -> String {
    let json = serde_json::to_string(kind).expect("events serialize");
    baton_core::text::truncate(&json, 300)
}

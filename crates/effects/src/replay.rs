//! The replay gate: serves a recorded chain. Each request is compared with the next
//! recorded event; on a match the recorded event answers it and is appended to the chain
//! (so the replayed chain hashes to the recorded root), and nothing in the world is touched.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use baton_journal::chain::ChainWriter;
use baton_journal::event::{ChainId, Event, EventKind, FsAnswer};

use crate::{BoxFuture, Divergence, Effect, Gate, Sealed, Slot, describe, fs, world};

/// A gate that serves a recorded chain and compares.
pub struct ReplayGate {
    inner: Mutex<Chain>,
}

struct Chain {
    writer: ChainWriter,
    /// The recorded events not served yet.
    expected: VecDeque<Event>,
    divergence: Option<Divergence>,
    /// Take fuel and peak memory of `invocation_ended` from the record.
    adopt_usage: bool,
    /// Events in the chains this one called into.
    nested: u64,
}

impl ReplayGate {
    /// The gate of chain `chain` of run `run`, serving `recorded` (that chain's events, in
    /// order).
    pub fn open(run: &str, chain: ChainId, recorded: Vec<Event>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Chain {
                writer: ChainWriter::new(run, chain),
                expected: recorded.into(),
                divergence: None,
                adopt_usage: false,
                nested: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compares what became known after a reservation (`produced`, complete) with the
    /// recorded event it was served.
    fn confirm(&self, recorded: &Event, produced: EventKind) {
        let mut chain = self.lock();
        if chain.divergence.is_none() && !produced.same_as(&recorded.kind) {
            chain.divergence = Some(Divergence {
                chain: recorded.chain.clone(),
                seq: recorded.seq,
                kind: recorded.kind.name().into(),
                expected: describe(&recorded.kind),
                found: describe(&answered(produced, &recorded.kind)),
            });
        }
    }
}

impl Gate for ReplayGate {
    fn chain(&self) -> ChainId {
        self.lock().writer.chain().to_string()
    }

    fn effect(&self, effect: Effect) -> EventKind {
        // The produced event, with a placeholder response, to compare requests.
        let probe = world::probe(&effect);
        self.lock().check(probe.clone()).unwrap_or(probe)
    }

    fn fs(&self, node: &fs::Node, op: &fs::FsOp) -> (FsAnswer, fs::Opened) {
        let probe = EventKind::Fs {
            answer: FsAnswer::Done,
            args: op.args(),
            op: op.name().into(),
            path: node.path().into(),
        };
        let answer = match self.lock().check(probe) {
            Some(EventKind::Fs { answer, .. }) => answer,
            // Diverged: the run is lost anyway; the guest sees an I/O error.
            _ => FsAnswer::Failed { code: "io".into() },
        };
        let opened = fs::replayed(node, op, &answer);
        (answer, opened)
    }

    fn emit(&self, kind: EventKind) {
        self.lock().check(kind);
    }

    fn reserve(&self, probe: EventKind) -> Slot {
        let mut chain = self.lock();
        let seq = chain.writer.len();
        let run = chain.writer.run().to_string();
        let id = chain.writer.chain().to_string();
        let recorded = chain.check(probe).map(|kind| {
            Box::new(Event {
                run,
                chain: id,
                seq,
                kind,
                prev: String::new(),
                hash: String::new(),
            })
        });
        Slot {
            position: seq,
            recorded,
        }
    }

    fn resolve<'a>(
        &'a self,
        slot: Slot,
        request: EventKind,
        _perform: BoxFuture<'a, EventKind>,
    ) -> BoxFuture<'a, Option<EventKind>> {
        let answer = slot.recorded.map(|recorded| {
            self.confirm(&recorded, request);
            recorded.kind
        });
        Box::pin(std::future::ready(answer))
    }

    fn send(&self) {}

    fn adopt_recorded_usage(&self) {
        self.lock().adopt_usage = true;
    }

    fn absorb(&self, callee: &Sealed) {
        self.lock().nested += callee.events + callee.nested;
    }

    fn diverged(&self, divergence: Divergence) {
        let mut chain = self.lock();
        if chain.divergence.is_none() {
            chain.divergence = Some(divergence);
        }
    }

    fn divergence(&self) -> Option<Divergence> {
        self.lock().divergence.clone()
    }

    fn seal(&self) -> Result<Sealed, Divergence> {
        let mut chain = self.lock();
        if let Some(d) = chain.divergence.take() {
            return Err(d);
        }
        if let Some(missing) = chain.expected.front() {
            return Err(Divergence {
                chain: missing.chain.clone(),
                seq: missing.seq,
                kind: missing.kind.name().into(),
                expected: describe(&missing.kind),
                found: "the end of the chain".into(),
            });
        }
        Ok(Sealed {
            root: chain.writer.head().to_string(),
            events: chain.writer.len(),
            // A replay's denials are in its record; its summary does not list them again.
            denials: Vec::new(),
            nested: chain.nested,
        })
    }
}

impl Chain {
    /// Compares a produced event with the next recorded one; on a match, appends the recorded
    /// event (so the replayed chain hashes to the recorded root) and returns it.
    fn check(&mut self, mut produced: EventKind) -> Option<EventKind> {
        if self.divergence.is_some() {
            return None;
        }
        let seq = self.writer.len();
        let Some(recorded) = self.expected.pop_front() else {
            self.divergence = Some(Divergence {
                chain: self.writer.chain().to_string(),
                seq,
                kind: "end of chain".into(),
                expected: "the end of the chain".into(),
                found: describe(&produced),
            });
            return None;
        };
        produced.adopt_recorded(&recorded.kind);
        if self.adopt_usage
            && let (
                EventKind::InvocationEnded {
                    fuel, peak_memory, ..
                },
                EventKind::InvocationEnded {
                    fuel: recorded_fuel,
                    peak_memory: recorded_peak,
                    ..
                },
            ) = (&mut produced, &recorded.kind)
        {
            (*fuel, *peak_memory) = (*recorded_fuel, *recorded_peak);
        }
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
        self.writer.append(recorded.kind.clone());
        Some(recorded.kind)
    }
}

/// `request` with the answer `recorded` gave it, as a divergence shows what was found: the
/// request differs, the answer was the record's.
fn answered(request: EventKind, recorded: &EventKind) -> EventKind {
    match (request, recorded) {
        (EventKind::Http { request, .. }, EventKind::Http { outcome, .. }) => EventKind::Http {
            request,
            outcome: outcome.clone(),
        },
        (request, _) => request,
    }
}

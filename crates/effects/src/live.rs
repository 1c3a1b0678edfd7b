//! The live gate: performs each effect through the world and records the event that
//! answers it, in the order the guest asked.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use baton_journal::chain::{GENESIS, Unhashed};
use baton_journal::event::{ChainId, EventKind, FsAnswer, HttpOutcome};
use baton_journal::store::Recorder;

use crate::{
    BoxFuture, Divergence, Effect, Gate, JournalAllowance, NoSecrets, Redactor, Sealed, Slot, fs,
    http, world,
};

/// Events a live chain hands to the recorder at once: fewer wake-ups of the writer, and a
/// crash loses at most this many events past the committed prefix.
const SEND_BATCH: usize = 64;

/// A gate that performs effects and records every event (to its recorder, if any).
pub struct LiveGate {
    inner: Mutex<Chain>,
    redactor: Arc<dyn Redactor>,
    /// What the run's chains may record together.
    allowance: Arc<JournalAllowance>,
}

struct Chain {
    run: String,
    chain: ChainId,
    /// Events in the chain so far.
    len: u64,
    recorder: Option<Recorder>,
    /// What the policy refused, for the caller's summary.
    denials: Vec<String>,
    /// Events in the chains this one called into.
    nested: u64,
    /// Events not yet handed to the recorder (the last of the chain's `len`), unhashed:
    /// the recorder's writer chains and hashes them, off this thread.
    unsent: Vec<EventKind>,
    /// Events waiting behind a reserved slot, in chain order.
    queue: VecDeque<Queued>,
    next_slot: u64,
}

enum Queued {
    Ready(EventKind),
    /// A slot reserved for an effect still in flight, with the event to record if it never
    /// completes.
    Waiting {
        slot: u64,
        abandoned: EventKind,
    },
}

impl LiveGate {
    /// The gate of chain `chain` of run `run`, recording to `recorder` (`None`: events are
    /// counted, never hashed or kept), every event passing through `redactor` first and
    /// counted against the run's `allowance`.
    pub fn open(
        run: &str,
        chain: ChainId,
        recorder: Option<Recorder>,
        redactor: Arc<dyn Redactor>,
        allowance: Arc<JournalAllowance>,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Chain {
                run: run.into(),
                chain,
                len: 0,
                recorder,
                denials: Vec::new(),
                nested: 0,
                unsent: Vec::new(),
                queue: VecDeque::new(),
                next_slot: 0,
            }),
            redactor,
            allowance,
        })
    }

    /// `kind` as the run's journal allowance admits it (an answer it has no room for becomes
    /// the error the guest gets instead), its denial noted in `chain`.
    fn admit(&self, chain: &mut Chain, kind: EventKind) -> EventKind {
        let (kind, denial) = self.allowance.admit(kind);
        chain.denials.extend(denial);
        kind
    }

    /// A gate whose events nothing keeps (loading a component, benchmarks): effects are
    /// performed and counted, never recorded, redacted or limited.
    pub fn unrecorded(run: &str, chain: ChainId) -> Arc<Self> {
        Self::open(
            run,
            chain,
            None,
            Arc::new(NoSecrets),
            JournalAllowance::unlimited(),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes a reservation; events queued behind it are chained in order.
    fn fill(&self, slot: u64, kind: EventKind) -> EventKind {
        let mut chain = self.lock();
        let kind = self.admit(&mut chain, kind);
        let waiting = chain
            .queue
            .iter_mut()
            .find(|q| matches!(q, Queued::Waiting { slot: s, .. } if *s == slot));
        if let Some(entry) = waiting {
            *entry = Queued::Ready(kind.clone());
        }
        chain.drain(&*self.redactor);
        kind
    }
}

impl Gate for LiveGate {
    fn chain(&self) -> ChainId {
        self.lock().chain.clone()
    }

    fn effect(&self, effect: Effect) -> EventKind {
        let mut chain = self.lock();
        let kind = self.admit(&mut chain, world::perform(&effect));
        chain.append(kind.clone(), &*self.redactor);
        kind
    }

    fn fs(&self, node: &fs::Node, op: &fs::FsOp) -> (FsAnswer, fs::Opened) {
        let mut chain = self.lock();
        let (answer, opened) = fs::perform(node, op);
        let event = EventKind::Fs {
            answer,
            args: op.args(),
            op: op.name().into(),
            path: node.path().into(),
        };
        let event = self.admit(&mut chain, event);
        let EventKind::Fs { answer, .. } = &event else {
            unreachable!("the allowance keeps an event's kind");
        };
        let answer = answer.clone();
        chain.append(event, &*self.redactor);
        (answer, opened)
    }

    fn emit(&self, kind: EventKind) {
        let mut chain = self.lock();
        let kind = self.admit(&mut chain, kind);
        chain.append(kind, &*self.redactor);
    }

    fn reserve(&self, probe: EventKind) -> Slot {
        let mut chain = self.lock();
        let slot = chain.next_slot;
        chain.next_slot += 1;
        chain.queue.push_back(Queued::Waiting {
            slot,
            abandoned: probe,
        });
        Slot {
            position: slot,
            recorded: None,
        }
    }

    fn resolve<'a>(
        &'a self,
        slot: Slot,
        _request: EventKind,
        perform: BoxFuture<'a, EventKind>,
    ) -> BoxFuture<'a, Option<EventKind>> {
        Box::pin(async move {
            // The caller gets the answer as the allowance admitted it; the journal gets it
            // redacted too.
            Some(self.fill(slot.position, perform.await))
        })
    }

    fn send(&self) {
        self.lock().send();
    }

    fn adopt_recorded_usage(&self) {}

    fn absorb(&self, callee: &Sealed) {
        let mut chain = self.lock();
        chain.denials.extend(callee.denials.iter().cloned());
        chain.nested += callee.events + callee.nested;
    }

    /// A live chain's callees are live too: they cannot diverge.
    fn diverged(&self, _: Divergence) {}

    fn divergence(&self) -> Option<Divergence> {
        None
    }

    fn seal(&self) -> Result<Sealed, Divergence> {
        let mut chain = self.lock();
        // Effects still in flight are recorded as abandoned.
        for queued in chain.queue.iter_mut() {
            if let Queued::Waiting { abandoned, .. } = queued {
                *queued = Queued::Ready(abandoned.clone());
            }
        }
        chain.drain(&*self.redactor);
        chain.send();
        Ok(Sealed {
            // A recorded chain's root is the writer's to fill in where the seal is recorded
            // (see `chain::Hasher`); an unrecorded chain is never hashed.
            root: match chain.recorder {
                Some(_) => String::new(),
                None => GENESIS.into(),
            },
            events: chain.len,
            denials: std::mem::take(&mut chain.denials),
            nested: chain.nested,
        })
    }
}

impl Chain {
    fn append(&mut self, kind: EventKind, redactor: &dyn Redactor) {
        self.queue.push_back(Queued::Ready(kind));
        self.drain(redactor);
    }

    /// Chains the ready events at the front of the queue.
    fn drain(&mut self, redactor: &dyn Redactor) {
        while let Some(Queued::Ready(_)) = self.queue.front() {
            let Some(Queued::Ready(kind)) = self.queue.pop_front() else {
                unreachable!("the front was just seen ready");
            };
            self.chain_event(kind, redactor);
        }
    }

    fn chain_event(&mut self, mut kind: EventKind, redactor: &dyn Redactor) {
        redactor.redact(&mut kind);
        match &kind {
            EventKind::Denied {
                capability,
                message,
            } => self.denials.push(format!("{capability}: {message}")),
            EventKind::Http {
                outcome: HttpOutcome::Failed { code, message },
                ..
            } if code == http::code::DENIED => self.denials.push(format!("http: {message}")),
            _ => {}
        }
        self.len += 1;
        // Nothing keeps an unrecorded chain, so it is only counted.
        if self.recorder.is_some() {
            self.unsent.push(kind);
            if self.unsent.len() >= SEND_BATCH {
                self.send();
            }
        }
    }

    /// Hands the unsent events to the recorder.
    fn send(&mut self) {
        if let Some(recorder) = &self.recorder
            && !self.unsent.is_empty()
        {
            let kinds = std::mem::take(&mut self.unsent);
            recorder.unhashed(Unhashed {
                run: self.run.clone(),
                chain: self.chain.clone(),
                first: self.len - kinds.len() as u64,
                kinds,
            });
        }
    }
}

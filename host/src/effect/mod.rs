//! The effect gate: the one door through which every nondeterministic input reaches a
//! component, and through which every event of a chain is written.
//!
//! A `Gate` serves one chain (a step's, or the run's). In live mode it performs an effect
//! through `world` (the only module that touches clocks and randomness) and records the
//! event; in replay mode it checks the request against the next recorded event and returns
//! the recorded one, touching nothing. Capabilities get a gate and nothing else, so they
//! cannot reach the world another way.

pub mod fs;
pub mod http;
pub mod llm;
pub mod wasi;
mod world;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::budget::Ledger;
use crate::journal::chain::{ChainWriter, Stored};
use crate::journal::event::{
    ChainId, Event, EventKind, FsAnswer, HttpOutcome, HttpRequestRecord, LlmOutcome, LlmRequest,
    RandomSource,
};
use crate::journal::store::Recorder;

/// Events a live chain hands to the recorder at once: fewer wake-ups of the writer, and a
/// crash loses at most this many events past the committed prefix.
const SEND_BATCH: usize = 64;

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

/// Keeps secrets out of the journal: every event passes through it before it is hashed.
pub trait Redactor: Send + Sync {
    fn redact(&self, event: &mut EventKind);
}

/// Replaces every secret value, wherever it appears in an event (HTTP bodies included), with
/// `[secret:NAME]`, the value a replay gives the guest in its place, so that live and
/// replayed events are identical and no journal holds a secret.
#[derive(Debug, Default)]
pub struct SecretRedactor {
    /// (name, value), longest value first so that no secret is replaced inside another.
    secrets: Vec<(String, String)>,
}

impl SecretRedactor {
    pub fn new(secrets: &[(String, String)]) -> Self {
        let mut secrets: Vec<(String, String)> = secrets
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .cloned()
            .collect();
        secrets.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Self { secrets }
    }

    pub fn placeholder(name: &str) -> String {
        format!("[secret:{name}]")
    }

    fn scrub(&self, text: &str) -> Option<String> {
        let mut out = None::<String>;
        for (name, value) in &self.secrets {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(value.as_str()) {
                out = Some(current.replace(value.as_str(), &Self::placeholder(name)));
            }
        }
        out
    }

    fn scrub_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Some(clean) = self.scrub(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.scrub_json(v)),
            _ => {}
        }
    }

    /// Scrubs a base64 body, returning the new body and digest if it held a secret.
    fn scrub_body(&self, body: &str) -> Option<(String, String)> {
        let bytes = http::decode_body(body);
        let clean = self.scrub(&String::from_utf8_lossy(&bytes))?;
        let (digest, encoded) = http::encode_body(clean.as_bytes());
        Some((encoded, digest))
    }
}

impl Redactor for SecretRedactor {
    fn redact(&self, event: &mut EventKind) {
        if self.secrets.is_empty() {
            return;
        }
        if let EventKind::Http { request, outcome } = event {
            if let Some((body, digest)) = self.scrub_body(&request.body) {
                (request.body, request.body_digest) = (body, digest);
            }
            if let HttpOutcome::Response {
                body, body_digest, ..
            } = outcome
                && let Some((clean, digest)) = self.scrub_body(body)
            {
                (*body, *body_digest) = (clean, digest);
            }
        }
        if let EventKind::Fs {
            answer: FsAnswer::Bytes { data, .. },
            ..
        } = event
            && let Some((clean, _)) = self.scrub_body(data)
        {
            *data = clean;
        }
        let mut json = serde_json::to_value(&*event).expect("events serialize");
        self.scrub_json(&mut json);
        if let Ok(clean) = serde_json::from_value(json) {
            *event = clean;
        }
    }
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
    /// Replay only: take fuel and peak memory of `invocation_ended` from the record.
    adopt_usage: bool,
    /// Live only: what the policy refused, for the caller's summary.
    denials: Vec<String>,
    /// Events in the chains this one called into.
    nested: u64,
    /// Live only: chained events not yet handed to the recorder.
    unsent: Vec<Stored>,
    /// Live events waiting behind a reserved slot, in chain order.
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

/// A position in a chain held for an effect that completes later (an HTTP exchange): the
/// event's place is where the guest asked, however long the answer takes.
#[derive(Debug)]
pub enum Reservation {
    /// Live: fill it with `Gate::fill`.
    Live(u64),
    /// Replay: the recorded event at that position (`None` once the replay has diverged).
    Replayed(Option<Box<Event>>),
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
                adopt_usage: false,
                denials: Vec::new(),
                nested: 0,
                unsent: Vec::new(),
                queue: VecDeque::new(),
                next_slot: 0,
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

    /// Performs (live) or serves (replay) a filesystem operation on `node`.
    pub fn fs(&self, node: &fs::Node, op: &fs::FsOp) -> (FsAnswer, fs::Opened) {
        let mut inner = self.lock();
        let event = |answer| EventKind::Fs {
            answer,
            args: op.args(),
            op: op.name().into(),
            path: node.path().into(),
        };
        match inner.mode {
            Mode::Live { .. } => {
                let (answer, opened) = fs::perform(node, op);
                inner.append(event(answer.clone()), &*self.redactor);
                (answer, opened)
            }
            Mode::Replay { .. } => {
                let answer = match inner.check(event(FsAnswer::Done)) {
                    Some(EventKind::Fs { answer, .. }) => answer,
                    // Diverged: the run is lost anyway; the guest sees an I/O error.
                    _ => FsAnswer::Failed { code: "io".into() },
                };
                let opened = fs::replayed(node, op, &answer);
                (answer, opened)
            }
        }
    }

    /// Hands the events chained so far to the recorder now rather than in a later batch, so
    /// that a crash after this loses none of them (live only).
    pub fn send(&self) {
        let mut inner = self.lock();
        let state = &mut *inner;
        if let Mode::Live {
            recorder: Some(recorder),
        } = &state.mode
            && !state.unsent.is_empty()
        {
            recorder.events(std::mem::take(&mut state.unsent));
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

    /// Holds the chain position of an effect that completes later. `probe` is the event as far
    /// as it is known now (the request); in a replay it is compared with the record, and it is
    /// what a live chain records if the effect is abandoned.
    pub fn reserve(&self, probe: EventKind) -> Reservation {
        let mut inner = self.lock();
        match inner.mode {
            Mode::Live { .. } => {
                let slot = inner.next_slot;
                inner.next_slot += 1;
                inner.queue.push_back(Queued::Waiting {
                    slot,
                    abandoned: probe,
                });
                Reservation::Live(slot)
            }
            Mode::Replay { .. } => {
                let seq = inner.chain.len();
                let run = inner.chain.run().to_string();
                let chain = inner.chain_id();
                Reservation::Replayed(inner.check(probe).map(|kind| {
                    Box::new(Event {
                        run,
                        chain,
                        seq,
                        kind,
                        prev: String::new(),
                        hash: String::new(),
                    })
                }))
            }
        }
    }

    /// Sends a live HTTP request through the world's client and fills its reservation with
    /// the exchange.
    pub async fn send_http(
        &self,
        slot: u64,
        request: HttpRequestRecord,
        body: bytes::Bytes,
        egress: &http::Egress,
    ) -> HttpOutcome {
        let outcome = http::send(&request, body, egress).await;
        self.fill(
            slot,
            EventKind::Http {
                request,
                outcome: outcome.clone(),
            },
        );
        outcome
    }

    /// Sends a completion request to the world's model providers (live), spending from
    /// `ledger`, or serves the recorded outcome (replay, with no provider at all).
    pub async fn complete(
        &self,
        llm: &llm::Llm,
        requester: &llm::Requester<'_>,
        request: LlmRequest,
        ledger: &Arc<Ledger>,
    ) -> LlmOutcome {
        let probe = EventKind::Llm {
            attempts: Vec::new(),
            committed: Default::default(),
            outcome: LlmOutcome::Failed {
                kind: "failed".into(),
                message: "the caller stopped waiting before the model answered".into(),
            },
            request: request.clone(),
            reserved: Default::default(),
            similarity: String::new(),
            source: String::new(),
        };
        match self.reserve(probe) {
            Reservation::Live(slot) => {
                let record = llm.perform(requester, &request, ledger).await;
                let outcome = record.outcome.clone();
                self.fill(slot, record.into_event(request));
                outcome
            }
            Reservation::Replayed(Some(recorded)) => match recorded.kind {
                EventKind::Llm { outcome, .. } => outcome,
                _ => diverged_llm(),
            },
            Reservation::Replayed(None) => diverged_llm(),
        }
    }

    /// Embeds `texts` with `model` (live), or serves the recorded vectors.
    pub async fn embed(
        &self,
        llm: &llm::Llm,
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, String> {
        let json = serde_json::to_vec(texts).expect("strings serialize");
        let (texts_digest, _) = http::encode_body(&json);
        let event = |dims, error, vectors| EventKind::LlmEmbed {
            dims,
            error,
            model: model.into(),
            texts_digest: texts_digest.clone(),
            vectors,
        };
        match self.reserve(event(0, "abandoned".into(), String::new())) {
            Reservation::Live(slot) => {
                let embedded = llm.embed(model, texts).await;
                self.fill(
                    slot,
                    match &embedded {
                        Ok(vectors) => {
                            let dims = vectors.first().map_or(0, Vec::len) as u32;
                            let bytes = llm::embedding::to_bytes(vectors.iter().flatten());
                            event(dims, String::new(), http::encode_body(&bytes).1)
                        }
                        Err(e) => event(0, e.clone(), String::new()),
                    },
                );
                embedded
            }
            Reservation::Replayed(Some(recorded)) => match recorded.kind {
                EventKind::LlmEmbed {
                    dims,
                    error,
                    vectors,
                    ..
                } if error.is_empty() => {
                    let floats: Vec<f32> =
                        llm::embedding::from_bytes(&http::decode_body(&vectors)).collect();
                    Ok(floats
                        .chunks(dims.max(1) as usize)
                        .map(<[f32]>::to_vec)
                        .collect())
                }
                EventKind::LlmEmbed { error, .. } => Err(error),
                _ => Err("the replay diverged".into()),
            },
            Reservation::Replayed(None) => Err("the replay diverged".into()),
        }
    }

    /// Counts `text`'s tokens with `model`'s tokenizer (live), or serves the recorded count.
    pub async fn count_tokens(
        &self,
        llm: &llm::Llm,
        model: &str,
        text: &str,
    ) -> Result<u32, String> {
        let (text_digest, _) = http::encode_body(text.as_bytes());
        let event = |count, error| EventKind::LlmTokens {
            count,
            error,
            model: model.into(),
            text_digest: text_digest.clone(),
        };
        match self.reserve(event(0, "abandoned".into())) {
            Reservation::Live(slot) => {
                let counted = llm.count(model, text).await;
                let (count, error) = match &counted {
                    Ok(n) => (*n, String::new()),
                    Err(e) => (0, e.clone()),
                };
                self.fill(slot, event(count, error));
                counted
            }
            Reservation::Replayed(Some(recorded)) => match recorded.kind {
                EventKind::LlmTokens { count, error, .. } if error.is_empty() => Ok(count),
                EventKind::LlmTokens { error, .. } => Err(error),
                _ => Err("the replay diverged".into()),
            },
            Reservation::Replayed(None) => Err("the replay diverged".into()),
        }
    }

    /// Completes a live reservation; events queued behind it are chained in order.
    pub fn fill(&self, slot: u64, kind: EventKind) {
        let mut inner = self.lock();
        let waiting = inner
            .queue
            .iter_mut()
            .find(|q| matches!(q, Queued::Waiting { slot: s, .. } if *s == slot));
        if let Some(entry) = waiting {
            *entry = Queued::Ready(kind);
        }
        inner.drain(&*self.redactor);
    }

    /// In a replay, compares what became known after a reservation (`produced`, complete)
    /// with the recorded event it was served.
    pub fn confirm(&self, recorded: &Event, produced: &EventKind) {
        let mut inner = self.lock();
        if inner.divergence.is_none() && !produced.same_as(&recorded.kind) {
            inner.divergence = Some(Divergence {
                chain: recorded.chain.clone(),
                seq: recorded.seq,
                kind: recorded.kind.name().into(),
                expected: describe(&recorded.kind),
                found: describe(produced),
            });
        }
    }

    /// In a replay of a call that was given secrets, the guest runs on placeholders instead
    /// of the secret values, so its CPU and memory use may differ slightly: fuel and peak
    /// memory are then taken from the record, and everything else is still compared.
    pub fn adopt_recorded_usage(&self) {
        self.lock().adopt_usage = true;
    }

    /// This gate's chain.
    pub fn chain(&self) -> ChainId {
        self.lock().chain_id()
    }

    /// Takes over the denials and the event count of a chain this one called into, for the
    /// run's summary.
    pub fn absorb(&self, callee: &Sealed) {
        let mut inner = self.lock();
        inner.denials.extend(callee.denials.iter().cloned());
        inner.nested += callee.events + callee.nested;
    }

    /// Records a divergence found in a chain this one called into (replay), unless one was
    /// found already.
    pub fn diverged(&self, divergence: Divergence) {
        let mut inner = self.lock();
        if inner.divergence.is_none() {
            inner.divergence = Some(divergence);
        }
    }

    /// The first divergence of a replay so far.
    pub fn divergence(&self) -> Option<Divergence> {
        self.lock().divergence.clone()
    }

    /// Ends the chain: its root and events, or the first divergence of a replay (including
    /// recorded events the replay never produced).
    pub fn seal(&self) -> Result<Sealed, Divergence> {
        let mut inner = self.lock();
        // Effects still in flight are recorded as abandoned.
        for queued in inner.queue.iter_mut() {
            if let Queued::Waiting { abandoned, .. } = queued {
                *queued = Queued::Ready(abandoned.clone());
            }
        }
        inner.drain(&*self.redactor);
        let state = &mut *inner;
        if let Mode::Live {
            recorder: Some(recorder),
        } = &state.mode
        {
            recorder.events(std::mem::take(&mut state.unsent));
        }
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
            denials: std::mem::take(&mut inner.denials),
            nested: inner.nested,
        })
    }
}

impl Inner {
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
        // Only live chains queue events; a replay chains the recorded ones in `check`.
        let Mode::Live { recorder } = &self.mode else {
            unreachable!("replayed events are chained by check()")
        };
        match recorder {
            Some(recorder) => {
                self.unsent.push(self.chain.record(kind));
                if self.unsent.len() >= SEND_BATCH {
                    recorder.events(std::mem::take(&mut self.unsent));
                }
            }
            // Nothing keeps an unrecorded chain, so it is only counted, never hashed.
            None => self.chain.skip(),
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
        self.chain.append(recorded.kind.clone());
        Some(recorded.kind)
    }

    fn chain_id(&self) -> ChainId {
        self.chain.chain().to_string()
    }
}

fn diverged_llm() -> LlmOutcome {
    LlmOutcome::Failed {
        kind: "failed".into(),
        message: "the replay diverged".into(),
    }
}

/// An event kind as JSON, cut to a readable length.
fn describe(kind: &EventKind) -> String {
    let json = serde_json::to_string(kind).expect("events serialize");
    crate::sandbox::truncate(&json, 300)
}

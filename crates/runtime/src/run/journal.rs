//! A run's journal: its run chain, one gate per step, and the blobs a bundle needs to replay
//! it (component bytes, policy, input). Built either live (recording) or from a record
//! (replaying and comparing).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use baton_effects::{Divergence, Gate, JournalAllowance, NoSecrets, Redactor, Sealed};
use baton_journal::event::{
    ChainId, Event, EventKind, FORMAT_VERSION, PolicyRef, RUN_CHAIN, step_chain,
};
use baton_journal::store::{Recorder, StoreError, WeakRecorder};

use super::mode::{Live, Replay, RunMode};
use crate::provenance::BackgroundSigner;
use crate::pure_cache::PureCache;

/// A finished run, as reported to the user.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: String,
    /// Hash of the run chain's last event.
    pub root: RunRoot,
    /// Events in all chains of the run.
    pub events: usize,
    /// What the policy refused during the run ("capability: message").
    pub denials: Vec<String>,
}

/// A run's root hash: known (a replay computes it, an unrecorded run has none to compute),
/// or hashed by the journal's writer off the thread that ran it, and asked of it when
/// needed.
#[derive(Clone)]
pub struct RunRoot {
    run: String,
    known: Option<String>,
    /// Weak: a record kept after its host is gone must not keep the journal's writer open.
    recorder: Option<WeakRecorder>,
}

impl RunRoot {
    /// The root, once the writer has hashed everything the run recorded.
    pub fn get(&self) -> Result<String, StoreError> {
        match (&self.known, &self.recorder) {
            (Some(root), _) => Ok(root.clone()),
            (None, Some(recorder)) => recorder
                .upgrade()
                .ok_or(StoreError::WriterGone)?
                .root(&self.run, RUN_CHAIN),
            (None, None) => Ok(String::new()),
        }
    }
}

impl std::fmt::Debug for RunRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.known {
            Some(root) => write!(f, "{root:?}"),
            None => write!(f, "(run {}: hashed by the journal writer)", self.run),
        }
    }
}

/// Opens further chains of a run, for its steps and the calls they make to other tools:
/// live, chains that record; in a replay, chains that serve and compare the recorded chain
/// of the same id.
#[derive(Clone)]
pub struct Chains {
    run: String,
    mode: Arc<dyn RunMode>,
}

impl Chains {
    /// The chains of run `run`, recorded live to `recorder`, opened on another host than the
    /// one driving the run (a worker running one of its steps).
    /// `pure_cache` answers its pure calls; `allowance` is what they may record (this host's
    /// share of the run's).
    pub fn live(
        recorder: Option<Recorder>,
        run: &str,
        pure_cache: Option<Arc<PureCache>>,
        allowance: Arc<JournalAllowance>,
    ) -> Self {
        Self {
            run: run.into(),
            mode: Arc::new(Live {
                recorder,
                sent: Mutex::default(),
                // Runs are signed by the host that ends them.
                signer: None,
                pure_cache,
                secrets: Arc::default(),
                allowance,
            }),
        }
    }

    /// The run's id.
    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn gate(&self, chain: ChainId, redactor: Arc<dyn Redactor>) -> Arc<dyn Gate> {
        self.mode.gate(&self.run, chain, redactor)
    }

    /// Stores a blob the run's bundle must carry (live only; a replay has them already).
    pub fn blob(&self, role: &str, digest: &str, bytes: &Arc<[u8]>) {
        self.mode.blob(&self.run, role, digest, bytes);
    }

    /// Waits until everything these chains recorded is kept.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.mode.flush()
    }

    /// The root of a chain sealed as `sealed`: a recorded chain's is asked of the journal's
    /// writer, which hashes it off the thread that recorded it.
    pub fn root(&self, chain: &str, sealed: &Sealed) -> Result<String, StoreError> {
        match self.mode.recorder() {
            Some(recorder) if sealed.root.is_empty() => recorder.root(&self.run, chain),
            _ => Ok(sealed.root.clone()),
        }
    }

    /// How this run meets the world.
    pub(crate) fn mode(&self) -> &dyn RunMode {
        &*self.mode
    }
}

pub struct RunJournal {
    id: String,
    run_gate: Arc<dyn Gate>,
    mode: Arc<dyn RunMode>,
    /// Events sealed in step chains so far.
    events: u64,
    denials: Vec<String>,
}

impl RunJournal {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts recording a new run of `command` under `policies`, as `id` (`None`: a new
    /// id).
    /// `signer` signs the run when it ends; `pure_cache` answers its pure calls; `allowance`
    /// is what its chains may record together.
    pub fn live(
        recorder: Option<Recorder>,
        signer: Option<Arc<BackgroundSigner>>,
        pure_cache: Option<Arc<PureCache>>,
        allowance: Arc<JournalAllowance>,
        id: Option<String>,
        command: &str,
        policies: Vec<PolicyRef>,
    ) -> Self {
        let id = id.unwrap_or_else(new_run_id);
        let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        if let Some(r) = &recorder {
            r.run_started(&id, &started_at, command);
        }
        let mode = Arc::new(Live {
            recorder,
            sent: Mutex::default(),
            signer,
            pure_cache,
            secrets: Arc::default(),
            allowance,
        });
        let run_gate = mode.gate(&id, RUN_CHAIN.into(), Arc::new(NoSecrets));
        Self::started(id, run_gate, mode, command.into(), started_at, policies)
    }

    /// A fork of the run `recorded` at its step `at`: a new run of `command` under
    /// `policies`, recorded to `recorder`, whose chains before `at` (see `fork::before`) are
    /// replayed from the record, compared, and copied into it; everything else is live.
    /// `None` when the record never started step `at`.
    pub fn fork(
        recorded: &[Event],
        at: &str,
        recorder: Option<Recorder>,
        signer: Option<Arc<BackgroundSigner>>,
        allowance: Arc<JournalAllowance>,
        command: &str,
        policies: Vec<PolicyRef>,
    ) -> Option<Self> {
        let chains = super::fork::before(recorded, at)?;
        let id = new_run_id();
        let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        if let Some(r) = &recorder {
            r.run_started(&id, &started_at, command);
        }
        let mode = Arc::new(super::fork::Fork {
            replay: Replay {
                chains,
                source: None,
                usage_from_record: false,
            },
            live: Live {
                recorder,
                sent: Mutex::default(),
                signer,
                pure_cache: None,
                secrets: Arc::default(),
                allowance,
            },
        });
        let run_gate = mode.gate(&id, RUN_CHAIN.into(), Arc::new(NoSecrets));
        Some(Self::started(
            id,
            run_gate,
            mode,
            command.into(),
            started_at,
            policies,
        ))
    }

    /// Re-runs the record of a run: every event produced is compared with `recorded`.
    /// `source` names where the record came from, in messages about its limits (by default,
    /// the chain that recorded them). With `usage_from_record`, each call's fuel and peak
    /// memory are taken from the record rather than compared (a replaced component's).
    pub fn replay(recorded: &[Event], source: Option<String>, usage_from_record: bool) -> Self {
        let id = recorded.first().map(|e| e.run.clone()).unwrap_or_default();
        let mut chains: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for event in recorded {
            chains
                .entry(event.chain.clone())
                .or_default()
                .push(event.clone());
        }
        // The run chain stays among the others too: the orchestrator reads where a recorded
        // run stopped from it.
        let run_chain = chains.get(RUN_CHAIN).cloned().unwrap_or_default();
        let (command, policies) = match run_chain.first().map(|e| &e.kind) {
            Some(EventKind::RunStarted {
                command, policies, ..
            }) => (command.clone(), policies.clone()),
            _ => Default::default(),
        };
        // Secrets are replayed as their placeholders, which are not as long: any call that
        // handled one (its plugin's own, or one a callee or an earlier step passed on) burns
        // other fuel, so where a run had secrets, usage comes from the record.
        let had_secrets = recorded.iter().any(|e| {
            matches!(&e.kind, EventKind::InvocationStarted { secrets, .. } if !secrets.is_empty())
        });
        let mode = Arc::new(Replay {
            chains,
            source,
            usage_from_record: usage_from_record || had_secrets,
        });
        let run_gate = baton_effects::ReplayGate::open(&id, RUN_CHAIN.into(), run_chain);
        // When it started is taken from the record.
        Self::started(id, run_gate, mode, command, String::new(), policies)
    }

    /// A run whose chain begins with `run_started`.
    fn started(
        id: String,
        run_gate: Arc<dyn Gate>,
        mode: Arc<dyn RunMode>,
        command: String,
        started_at: String,
        policies: Vec<PolicyRef>,
    ) -> Self {
        let journal = Self {
            id,
            run_gate,
            mode,
            events: 0,
            denials: Vec::new(),
        };
        journal.run_gate.emit(EventKind::RunStarted {
            format: FORMAT_VERSION,
            baton: env!("CARGO_PKG_VERSION").into(),
            command,
            started_at,
            policies,
        });
        journal
    }

    /// Stores a blob the run's bundle must carry (live only; a replay has them already).
    pub fn blob(&self, role: &str, digest: &str, bytes: &Arc<[u8]>) {
        self.chains().blob(role, digest, bytes);
    }

    /// A handle that opens further chains of this run.
    pub fn chains(&self) -> Chains {
        Chains {
            run: self.id.clone(),
            mode: self.mode.clone(),
        }
    }

    /// Starts a step: records it in the run chain and returns the gate of its own chain. A
    /// replay whose run chain already differs from the record stops here.
    pub fn start_step(
        &self,
        step: &str,
        tool: &str,
        digest: &str,
        redactor: Arc<dyn Redactor>,
    ) -> Result<Arc<dyn Gate>, Divergence> {
        self.run_gate.emit(EventKind::StepStarted {
            step: step.into(),
            tool: tool.into(),
            digest: digest.into(),
        });
        if let Some(divergence) = self.run_gate.divergence() {
            return Err(divergence);
        }
        Ok(self.chains().gate(step_chain(step), redactor))
    }

    /// Records a host decision in the run chain (a replay compares it with the record).
    pub fn note(&self, kind: EventKind) -> Result<(), Divergence> {
        self.run_gate.emit(kind);
        self.run_gate.divergence().map_or(Ok(()), Err)
    }

    /// The gate of step `step`'s chain, opened without a mark in the run chain: steps that
    /// run concurrently are entered there later, in plan order, by `record_step`.
    pub fn step_gate(&self, step: &str, redactor: Arc<dyn Redactor>) -> Arc<dyn Gate> {
        self.chains().gate(step_chain(step), redactor)
    }

    /// Enters a finished step in the run chain: its start, then its sealed chain.
    pub fn record_step(
        &mut self,
        step: &str,
        tool: &str,
        digest: &str,
        gate: &dyn Gate,
    ) -> Result<(), Divergence> {
        self.note(EventKind::StepStarted {
            step: step.into(),
            tool: tool.into(),
            digest: digest.into(),
        })?;
        self.end_step(step, gate)?;
        // A resumed run takes over what the run chain entered: enter it durably now.
        self.run_gate.send();
        Ok(())
    }

    /// Enters a step another host ran and sealed in the run chain: its start, then its end.
    pub fn record_sealed(
        &mut self,
        step: &str,
        tool: &str,
        digest: &str,
        sealed: Sealed,
    ) -> Result<(), Divergence> {
        self.note(EventKind::StepStarted {
            step: step.into(),
            tool: tool.into(),
            digest: digest.into(),
        })?;
        self.enter_sealed(step, sealed);
        self.run_gate.send();
        Ok(())
    }

    /// Sends what the run chain holds so far to the store and waits until it is kept: other
    /// hosts may then read the run's start.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.run_gate.send();
        self.mode.flush()
    }

    /// Seals a step's chain into the run chain.
    pub fn end_step(&mut self, step: &str, gate: &dyn Gate) -> Result<(), Divergence> {
        let sealed = gate.seal()?;
        self.enter_sealed(step, sealed);
        Ok(())
    }

    fn enter_sealed(&mut self, step: &str, sealed: Sealed) {
        let Sealed {
            root,
            events,
            denials,
            nested,
        } = sealed;
        self.events += events + nested;
        self.denials.extend(denials);
        self.run_gate.emit(EventKind::StepEnded {
            step: step.into(),
            root,
            events,
        });
    }

    /// Ends the run with `status` and returns its record (or a replay's first divergence).
    pub fn finish(self, status: &str) -> Result<RunRecord, Divergence> {
        self.run_gate.emit(EventKind::RunEnded {
            status: status.into(),
        });
        let Sealed { root, events, .. } = self.run_gate.seal()?;
        self.mode.run_ended(&self.id, status, &root);
        let root = RunRoot {
            run: self.id.clone(),
            recorder: self
                .mode
                .recorder()
                .filter(|_| root.is_empty())
                .map(Recorder::downgrade),
            known: Some(root).filter(|r| !r.is_empty()),
        };
        Ok(RunRecord {
            id: self.id,
            root,
            events: (self.events + events) as usize,
            denials: self.denials,
        })
    }
}

/// A new run id: a ULID in lower case (they sort by time).
pub fn new_run_id() -> String {
    ulid::Ulid::generate().to_string().to_lowercase()
}

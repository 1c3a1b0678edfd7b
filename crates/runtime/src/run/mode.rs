//! How a run meets the world: the one interface with two implementations, [`Live`] and
//! [`Replay`]. Everything a run does that differs between the two is a method here; the
//! rest of the runtime and the orchestrator never ask which one they hold.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_budget::{Hold, Ledger, Spend};
use baton_effects::fs::Node;
use baton_effects::{
    Gate, JournalAllowance, LiveGate, NoSecrets, Redactor, ReplayGate, RunRedactor,
};
use baton_journal::event::{ChainId, Event, EventKind};
use baton_journal::store::Recorder;
use baton_llm::{Llm, Stores};

use crate::provenance::BackgroundSigner;
use crate::pure_cache::PureCache;
use baton_policy::{Grants, LimitsSpec, Policy, ResolvedLimits, Source};

use crate::error::Error;
use crate::plugin::Plugin;
use crate::recorded::{Interrupted, Interruption, RecordedCall};

/// What one invocation of a plugin may reach.
pub struct Access {
    pub(crate) grants: Grants,
    /// Values of the granted secrets (none in a replay).
    pub(crate) secrets: Vec<(String, String)>,
    pub(crate) preopens: Vec<Node>,
}

/// The limits one invocation runs under, decided before it starts.
pub(crate) struct CallPlan<'a> {
    /// As attributed to their sources (for messages and the journal).
    pub limits: Cow<'a, ResolvedLimits>,
    /// What the sandbox enforces.
    pub enforced: baton_core::limits::Limits,
    /// Replay of a recorded timeout or cancellation: the call gets exactly the fuel it had
    /// burned when it was stopped, and running out of it is that same interruption.
    pub interrupted: Option<Interrupted>,
    /// The fuel reserved against the budget, committed when the call ends.
    pub hold: Option<Hold>,
}

/// The `denied` capability of a call the budget refused before it started.
pub(crate) const BUDGET_CAPABILITY: &str = "budget";

/// Added to ten times the recorded timeout of a replayed call.
const REPLAY_TIMEOUT_SLACK: Duration = Duration::from_secs(10);

/// Added to twice how long a cancelled call ran, when it is replayed.
const REPLAY_CANCEL_SLACK: Duration = Duration::from_secs(1);

pub(crate) trait RunMode: Send + Sync {
    /// The gate of `chain` of run `run`.
    fn gate(&self, run: &str, chain: ChainId, redactor: Arc<dyn Redactor>) -> Arc<dyn Gate>;

    /// Stores a blob the run's bundle must carry (a replay has them already).
    fn blob(&self, run: &str, role: &str, digest: &str, bytes: &Arc<[u8]>);

    /// The recorded events of `chain` (a live run has none).
    fn recorded(&self, chain: &str) -> Option<&[Event]>;

    /// What `plugin` may reach under `policy`: live, its grants, the values of its secrets
    /// and its directories, opened; in a replay, its recorded grants, no secret values (the
    /// record holds placeholders) and no host directories (the record holds every answer).
    fn access(&self, policy: &Policy, plugin: &Plugin) -> Result<Access, Error>;

    /// The limits of an invocation in `chain` whose policy gives it `limits`: live, cut to
    /// what `ledger` has left of fuel and time, with the fuel reserved (a budget with nothing
    /// left refuses the call, journaled in `gate`); in a replay, the recorded ones, and a
    /// recorded refusal again.
    fn plan<'a>(
        &self,
        chain: &str,
        limits: &'a ResolvedLimits,
        ledger: &Arc<Ledger>,
        gate: &dyn Gate,
        secrets: bool,
    ) -> Result<CallPlan<'a>, Error>;

    /// How long to wait before retrying a failed step (a replay retries at once: recorded
    /// outcomes need no waiting for).
    fn retry_delay(&self, delay: Duration) -> Duration;

    /// Records that run `run` ended (a replay records nothing).
    /// The run ended with `status`; `root` is empty when the recorder's writer hashes it.
    fn run_ended(&self, run: &str, status: &str, root: &str);

    /// Where this run is recorded (a replay records nothing).
    fn recorder(&self) -> Option<&Recorder>;

    /// Waits until everything recorded so far is kept (a replay keeps nothing).
    fn flush(&self) -> Result<(), baton_journal::store::StoreError>;

    /// The model providers of a run under `policy`, keeping their stores in `stores` (a
    /// replay asks no provider: its completions are in the record).
    fn models(&self, policy: &Policy, stores: &Stores) -> Llm;

    /// The limits from the command line a run takes (a replay's are recorded).
    fn overrides(&self, command_line: LimitsSpec) -> LimitsSpec;

    /// The cache that may answer this run's pure calls (a replay runs every call again).
    fn pure_cache(&self) -> Option<&Arc<PureCache>>;
}

/// A live run: effects are performed, and recorded when there is a journal.
pub(crate) struct Live {
    pub recorder: Option<Recorder>,
    /// The blobs sent for this run, as (role, digest): each is sent once, however many of
    /// the run's calls use it.
    pub sent: Mutex<HashSet<(String, String)>>,
    /// Signs the run when it ends, when the host signs its runs.
    pub signer: Option<Arc<BackgroundSigner>>,
    /// Answers and keeps pure calls.
    pub pure_cache: Option<Arc<PureCache>>,
    /// The secrets of every plugin of the run, kept out of every chain.
    pub secrets: Arc<RunRedactor>,
    /// What the run's chains may record together.
    pub allowance: Arc<JournalAllowance>,
}

impl RunMode for Live {
    fn gate(&self, run: &str, chain: ChainId, redactor: Arc<dyn Redactor>) -> Arc<dyn Gate> {
        self.secrets.include(&*redactor);
        LiveGate::open(
            run,
            chain,
            self.recorder.clone(),
            self.secrets.clone(),
            self.allowance.clone(),
        )
    }

    fn blob(&self, run: &str, role: &str, digest: &str, bytes: &Arc<[u8]>) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.insert((role.to_string(), digest.to_string())) {
            recorder.blob(run, role, digest, bytes.clone());
        }
    }

    fn recorded(&self, _: &str) -> Option<&[Event]> {
        None
    }

    fn access(&self, policy: &Policy, plugin: &Plugin) -> Result<Access, Error> {
        live_access(policy, plugin)
    }

    fn plan<'a>(
        &self,
        _: &str,
        limits: &'a ResolvedLimits,
        ledger: &Arc<Ledger>,
        gate: &dyn Gate,
        _: bool,
    ) -> Result<CallPlan<'a>, Error> {
        let (limits, hold) =
            charge_limits(limits, ledger).map_err(|e| refused(gate, e.to_string()))?;
        Ok(CallPlan {
            enforced: limits.limits,
            limits,
            interrupted: None,
            hold,
        })
    }

    fn retry_delay(&self, delay: Duration) -> Duration {
        delay
    }

    fn run_ended(&self, run: &str, status: &str, root: &str) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        recorder.run_ended(run, status, root);
        if let Some(signer) = &self.signer {
            signer.submit(recorder, run);
        }
    }

    fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    fn flush(&self) -> Result<(), baton_journal::store::StoreError> {
        self.recorder.as_ref().map_or(Ok(()), Recorder::flush)
    }

    fn models(&self, policy: &Policy, stores: &Stores) -> Llm {
        Llm::new(policy.llm(), stores)
    }

    fn overrides(&self, command_line: LimitsSpec) -> LimitsSpec {
        command_line
    }

    fn pure_cache(&self) -> Option<&Arc<PureCache>> {
        self.pure_cache.as_ref()
    }
}

/// A replay: every effect is served from the recorded events, by chain.
pub(crate) struct Replay {
    pub chains: BTreeMap<String, Vec<Event>>,
    /// Where the record came from, as messages attribute its limits (`None`: its chain).
    pub source: Option<String>,
    /// Whether calls take their fuel and peak memory from the record (a component was
    /// replaced: another build burns other amounts).
    pub usage_from_record: bool,
}

impl RunMode for Replay {
    fn gate(&self, run: &str, chain: ChainId, _: Arc<dyn Redactor>) -> Arc<dyn Gate> {
        let recorded = self.chains.get(&chain).cloned().unwrap_or_default();
        ReplayGate::open(run, chain, recorded)
    }

    fn blob(&self, _: &str, _: &str, _: &str, _: &Arc<[u8]>) {}

    fn recorded(&self, chain: &str) -> Option<&[Event]> {
        self.chains.get(chain).map(Vec::as_slice)
    }

    fn access(&self, policy: &Policy, plugin: &Plugin) -> Result<Access, Error> {
        let grants = policy.grants_for(plugin.name(), plugin.subject());
        Ok(Access {
            preopens: grants.fs.iter().map(Node::replayed).collect(),
            grants,
            secrets: Vec::new(),
        })
    }

    fn plan<'a>(
        &self,
        chain: &str,
        limits: &'a ResolvedLimits,
        _: &Arc<Ledger>,
        gate: &dyn Gate,
        secrets: bool,
    ) -> Result<CallPlan<'a>, Error> {
        let events = self.recorded(chain);
        // Budget decisions are recorded too; a replay does not make them again.
        if let Some(EventKind::Denied {
            capability,
            message,
        }) = events.and_then(|events| events.first()).map(|e| &e.kind)
            && capability == BUDGET_CAPABILITY
        {
            return Err(refused(gate, message.clone()));
        }
        let recorded = events.and_then(|events| RecordedCall::find(events, chain));
        let (limits, interrupted) = match recorded {
            Some(call) => {
                let source = match &self.source {
                    Some(source) => source.clone(),
                    None => format!("the recorded chain {chain}"),
                };
                (Cow::Owned(call.limits(&source)), call.interrupted)
            }
            None => (Cow::Borrowed(limits), None),
        };
        if secrets || self.usage_from_record {
            gate.adopt_recorded_usage();
        }
        let mut enforced = limits.limits;
        // In a replay, fuel is the CPU limit; wall time (recorded effects are served at
        // once) is only a safety net, loose enough for a slower machine.
        enforced.timeout = enforced.timeout * 10 + REPLAY_TIMEOUT_SLACK;
        if let Some(interrupted) = &interrupted {
            enforced.fuel = interrupted.fuel.max(1);
            // A cancelled call blocked in the host burns no fuel: the net stops it, sized by
            // how long it ran before it was cancelled rather than by its deadline.
            if interrupted.by == Interruption::Cancelled {
                enforced.timeout = enforced
                    .timeout
                    .min(interrupted.duration * 2 + REPLAY_CANCEL_SLACK);
            }
        }
        Ok(CallPlan {
            limits,
            enforced,
            interrupted,
            hold: None,
        })
    }

    fn retry_delay(&self, _: Duration) -> Duration {
        Duration::ZERO
    }

    fn run_ended(&self, _: &str, _: &str, _: &str) {}

    fn recorder(&self) -> Option<&Recorder> {
        None
    }

    fn flush(&self) -> Result<(), baton_journal::store::StoreError> {
        Ok(())
    }

    fn models(&self, policy: &Policy, _: &Stores) -> Llm {
        Llm::new(policy.llm(), &Stores::Memory)
    }

    fn overrides(&self, _: LimitsSpec) -> LimitsSpec {
        LimitsSpec::default()
    }

    fn pure_cache(&self) -> Option<&Arc<PureCache>> {
        None
    }
}

/// What `plugin` may reach in a live call: its grants, the values of its secrets and its
/// directories, opened.
pub(crate) fn live_access(policy: &Policy, plugin: &Plugin) -> Result<Access, Error> {
    let grants = policy.grants_for(plugin.name(), plugin.subject());
    let secrets = resolve_secrets(policy, plugin, &grants)?;
    let preopens =
        baton_effects::fs::preopen_all(&grants.fs).map_err(|(mount, reason)| Error::FsMount {
            plugin: plugin.name().into(),
            host: mount.host,
            policy: mount.source,
            reason,
        })?;
    Ok(Access {
        grants,
        secrets,
        preopens,
    })
}

/// A budget's refusal of a call before it started: journaled as the chain's only event (a
/// replay repeats it).
fn refused(gate: &dyn Gate, message: String) -> Error {
    gate.emit(EventKind::Denied {
        capability: BUDGET_CAPABILITY.into(),
        message: message.clone(),
    });
    Error::BudgetRefused(message)
}

/// `limits` cut to what `ledger` has left of fuel and time, with the fuel reserved; a
/// budget with nothing left refuses the call.
fn charge_limits<'a>(
    limits: &'a ResolvedLimits,
    ledger: &Arc<Ledger>,
) -> Result<(Cow<'a, ResolvedLimits>, Option<Hold>), baton_budget::Exceeded> {
    // Without a fuel or time budget (the usual case), the call's limits stand as they are.
    if ledger.time_left().is_none() && ledger.fuel_left().is_none() {
        return Ok((Cow::Borrowed(limits), None));
    }
    let mut limits = limits.clone();
    if let Some(left) = ledger.time_left()
        && left < limits.limits.timeout
    {
        (limits.limits.timeout, limits.timeout) = (left, Source::Budget);
    }
    let mut hold = None;
    if let Some(left) = ledger.fuel_left() {
        if left < limits.limits.fuel {
            (limits.limits.fuel, limits.fuel) = (left, Source::Budget);
        }
        // With no fuel left, asking for one unit says so.
        hold = Some(ledger.reserve(Spend {
            fuel: limits.limits.fuel.max(1),
            ..Spend::default()
        })?);
    }
    if limits.limits.timeout.is_zero() {
        // Reserving nothing checks the time budget, and says which one ran out.
        ledger.reserve(Spend::default())?;
    }
    Ok((Cow::Owned(limits), hold))
}

/// The values of the secrets granted to `plugin`.
fn resolve_secrets(
    policy: &Policy,
    plugin: &Plugin,
    grants: &Grants,
) -> Result<Vec<(String, String)>, Error> {
    grants
        .secrets
        .iter()
        .map(|name| {
            policy
                .secret(name)
                .map(|value| (name.clone(), value))
                .map_err(|hint| Error::SecretMissing {
                    plugin: plugin.name().into(),
                    name: name.clone(),
                    hint,
                })
        })
        .collect()
}

/// The redactor of a call given `secrets`.
pub(crate) fn redactor(secrets: &[(String, String)]) -> Arc<dyn Redactor> {
    match secrets.is_empty() {
        true => Arc::new(NoSecrets),
        false => Arc::new(baton_effects::SecretRedactor::new(secrets)),
    }
}

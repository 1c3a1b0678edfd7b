//! Recorded runs read back: a bundle opened and verified, its components checked again
//! against the signatures it recorded, its policy rebuilt, and a recorded tool call
//! replayed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton_budget::{BudgetLimits, Ledger};
use baton_core::Digest;
use baton_core::limits::{LimitKind, Limits};
use baton_effects::NoSecrets;
use baton_journal::event::{
    Event, EventKind, InvocationOutcome, LimitsRecord, RUN_CHAIN, step_chain,
};
use baton_journal::store::{Journal, Store};
use baton_journal::verify_run;

use crate::provenance::{self, RunFacts};
use baton_policy::{Policy, ResolvedLimits, Source};
use tokio_util::sync::CancellationToken;

use crate::call::status_of;
use crate::error::Error;
use crate::host::Host;
use crate::plugin::{Plugin, ToolCall, tools_by_name};
use crate::replacement::Replaced;
use crate::run::{Invocation, RunContext, RunJournal};
use crate::trust::{RecordedTrust, Sidecars, Verified};

/// A verified bundle's run, ready to be replayed.
pub struct RecordedRun {
    pub bundle: PathBuf,
    pub events: Vec<Event>,
    /// Its components, verified again, by digest.
    pub components: BTreeMap<String, Arc<Plugin>>,
    /// A component to replay instead of the recorded one of the same name.
    pub replacement: Option<Arc<Plugin>>,
    /// The policy it ran under, rebuilt from its texts.
    pub policy: Policy,
    /// The component `replacement` took the place of, once the record expects it.
    pub replaced: Option<Replaced>,
}

impl RecordedRun {
    /// Whether it records a `baton run` (a workflow) rather than one call.
    pub fn is_workflow(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Workflow { .. }))
    }

    /// The error saying why this bundle cannot be replayed.
    pub fn invalid(&self, reason: String) -> Error {
        Error::BundleInvalid {
            path: self.bundle.clone(),
            reason,
        }
    }
}

/// The result of a replay whose every event matched the record.
#[derive(Debug)]
pub struct ReplayReport<T> {
    pub run: String,
    pub events: usize,
    pub root: String,
    /// What the replay reproduced (a recorded failure replays as the same failure).
    pub outcome: T,
    /// The recorded component a replacement took the place of.
    pub replaced: Option<Replaced>,
}

impl Host {
    /// Opens the one run in `bundle` for replay: its chains verified, complete, its
    /// components verified again, its policy rebuilt. `component` replaces the recorded
    /// component of the same name (to test a new version against a recorded run).
    pub async fn open_recorded(
        &self,
        bundle: &Path,
        component: Option<&Path>,
    ) -> Result<RecordedRun, Error> {
        let journal = Journal::open_read_only(bundle)?;
        let runs = journal.runs(2)?;
        let [summary] = runs.as_slice() else {
            return Err(Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: format!("it holds {} runs instead of one", runs.len()),
            });
        };
        let events = journal.events(&summary.run)?;
        let verified = verify_run(&events).map_err(|source| Error::Tampered {
            path: bundle.to_owned(),
            source,
        })?;
        if !verified.complete {
            return Err(Error::BundleInvalid {
                path: bundle.to_owned(),
                reason: format!(
                    "run {} did not finish (it was interrupted while recording)",
                    summary.run
                ),
            });
        }
        if self.policy.trust().require_signed_runs {
            let keys =
                provenance::trusted_hosts(self.policy.trust()).map_err(Error::TrustConfig)?;
            let blobs = journal.all_blobs(&summary.run)?;
            let facts = RunFacts::of(&summary.run, &verified.root, &events, &blobs);
            provenance::check(journal.envelope(&summary.run)?.as_deref(), &keys, &facts).map_err(
                |source| Error::Unproven {
                    path: bundle.to_owned(),
                    source,
                },
            )?;
        }
        let components = self
            .recorded_components(&journal, &summary.run, &events, bundle)
            .await?;
        let replacement = match component {
            Some(path) => Some(Arc::new(self.load(path).await?)),
            None => None,
        };
        let policy = recorded_policy(&journal, &summary.run, &events).map_err(|reason| {
            Error::BundleInvalid {
                path: bundle.to_owned(),
                reason,
            }
        })?;
        Ok(RecordedRun {
            bundle: bundle.to_owned(),
            events,
            components,
            replacement,
            policy,
            replaced: None,
        })
    }

    /// Re-runs a recorded run of tool calls (a `baton call`, or an MCP session: one step per
    /// call) with the recorded inputs and effects, comparing every event. Returns each
    /// call's result, in order.
    pub async fn replay_calls(
        &self,
        mut recorded: RecordedRun,
    ) -> Result<ReplayReport<Vec<Result<ToolCall, Error>>>, Error> {
        // The calls, in the order the run chain entered them.
        let mut calls = Vec::new();
        for event in recorded.events.iter().filter(|e| e.chain == RUN_CHAIN) {
            if let EventKind::StepStarted { step, tool, .. } = &event.kind {
                let call =
                    RecordedCall::find(&recorded.events, &step_chain(step)).ok_or_else(|| {
                        recorded.invalid(format!("its step '{step}' records no call"))
                    })?;
                calls.push((step.clone(), tool.clone(), call));
            }
        }
        if calls.is_empty() {
            return Err(recorded.invalid("it records no tool call".into()));
        }
        // A replacement takes the place of the component of its name; in a run of one call,
        // of the component called, whatever its name (to see where a different one departs).
        let single = calls.len() == 1;
        let replaces = |replacement: &Plugin, tool: &str| single || replacement.name() == tool;
        if let Some(replacement) = recorded.replacement.clone() {
            let Some((_, tool, call)) = calls
                .iter()
                .find(|(_, tool, _)| replaces(&replacement, tool))
            else {
                return Err(recorded.invalid(format!(
                    "the run used no component named '{}' to replace",
                    replacement.name()
                )));
            };
            recorded.expect_replacement(&replacement, &call.digest, tool)?;
        }
        let RecordedRun {
            bundle,
            events,
            components,
            replacement,
            policy,
            replaced,
        } = recorded;
        let mut tools = tools_by_name(components.values().cloned());
        if let Some(replacement) = &replacement {
            tools.insert(replacement.name().to_string(), replacement.clone());
        }
        let source = format!("{} (recorded)", bundle.display());
        let mut run = RunJournal::replay(&events, Some(source), replaced.is_some());
        let ctx = RunContext::recorded(self, policy, (tools, BTreeMap::new()), run.chains());
        // Budget decisions are recorded too; a replay does not make them again.
        let ledger = Ledger::run(BudgetLimits::default());
        let mut results = Vec::new();
        for (step, tool, call) in calls {
            let plugin = match &replacement {
                Some(replacement) if replaces(replacement, &tool) => replacement.clone(),
                _ => components
                    .get(&call.digest)
                    .cloned()
                    .ok_or_else(|| Error::BundleInvalid {
                        path: bundle.clone(),
                        reason: format!("it lacks the bytes of component {}", call.digest),
                    })?,
            };
            let gate = run
                .start_step(
                    &step,
                    plugin.name(),
                    &plugin.loaded.digest.to_string(),
                    Arc::new(NoSecrets),
                )
                .map_err(Error::Diverged)?;
            let access = ctx.access(&plugin)?;
            // A call of a session starts with what the session's client had been given; the
            // order its calls overlapped in is the record's.
            let input_labels = call.input_labels.clone();
            let result = ctx
                .invoke(Invocation {
                    flow: crate::flow::Flow::new(input_labels),
                    ..Invocation::step(
                        &plugin,
                        &call.input,
                        access,
                        gate.clone(),
                        ledger.clone(),
                        CancellationToken::new(),
                    )
                })
                .await;
            run.end_step(&step, &*gate).map_err(Error::Diverged)?;
            results.push(result);
        }
        let record = run.finish(status_of(&results)).map_err(Error::Diverged)?;
        Ok(ReplayReport {
            run: record.id,
            events: record.events,
            root: record.root.get()?,
            outcome: results,
            replaced,
        })
    }

    /// Every component `run` of `journal` used, by digest; each must hash to its digest and
    /// verify again with the signature and key the run recorded for it (`path` names the
    /// journal in messages).
    pub async fn recorded_components(
        &self,
        journal: &dyn Store,
        run: &str,
        events: &[Event],
        path: &Path,
    ) -> Result<BTreeMap<String, Arc<Plugin>>, Error> {
        let trust = RecordedTrust {
            recorded: events.iter().filter_map(recorded_signature).collect(),
        };
        let mut components = BTreeMap::new();
        for (digest, bytes, label) in stored_components(journal, run, path)? {
            let none = Sidecars::default();
            let loaded = Arc::new(self.load_checked(&label, &bytes, &none, &trust).await?);
            components.insert(digest, loaded);
        }
        Ok(components)
    }

    /// Every component `run` of `journal` used, by digest, each verified under this host's
    /// own `[trust]` with its signature (a detached signature or a Sigstore bundle) from
    /// `signatures`, by component digest: a worker runs only what its own policy trusts,
    /// whatever the store holds (`path` names the store in messages).
    pub async fn trusted_components(
        &self,
        journal: &dyn Store,
        run: &str,
        signatures: &BTreeMap<String, String>,
        path: &Path,
    ) -> Result<BTreeMap<String, Arc<Plugin>>, Error> {
        let mut components = BTreeMap::new();
        for (digest, bytes, label) in stored_components(journal, run, path)? {
            let mut sidecars = Sidecars {
                base: label.clone(),
                ..Sidecars::default()
            };
            if let Some(signature) = signatures.get(&digest) {
                match signature.trim_start().starts_with('{') {
                    true => sidecars.bundle = Some(signature.clone()),
                    false => sidecars.sig = Some(signature.clone()),
                }
            }
            let loaded = self
                .load_checked(&label, &bytes, &sidecars, &self.trust)
                .await?;
            components.insert(digest, Arc::new(loaded));
        }
        Ok(components)
    }
}

/// The component bytes `run` of `journal` holds, as (digest, bytes, label for messages), each
/// checked to hash to its digest.
fn stored_components(
    journal: &dyn Store,
    run: &str,
    path: &Path,
) -> Result<Vec<(String, Vec<u8>, std::path::PathBuf)>, Error> {
    journal
        .blobs(run, "component")?
        .into_iter()
        .map(|(digest, bytes)| {
            let actual = Digest::of(&bytes).to_string();
            if actual != digest {
                return Err(Error::BundleInvalid {
                    path: path.to_owned(),
                    reason: format!("the bytes stored for component {digest} hash to {actual}"),
                });
            }
            let label = path.join(&digest);
            Ok((digest, bytes, label))
        })
        .collect()
}

/// The policy a recorded run was governed by, rebuilt from the bundle's policy texts.
pub fn recorded_policy(journal: &dyn Store, run: &str, events: &[Event]) -> Result<Policy, String> {
    let Some(EventKind::RunStarted { policies, .. }) = events.first().map(|e| &e.kind) else {
        return Err("its run does not start with run_started".into());
    };
    let texts = journal.blobs(run, "policy").map_err(|e| e.to_string())?;
    let layers = policies
        .iter()
        .map(|reference| {
            let (_, bytes) = texts
                .iter()
                .find(|(digest, _)| *digest == reference.digest)
                .ok_or_else(|| format!("it lacks the text of policy {}", reference.name))?;
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| format!("policy {} is not UTF-8", reference.name))?;
            Ok((reference.name.clone(), text))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Policy::from_texts(layers).map_err(|e| e.to_string())
}

/// The provenance a recorded `verified` event holds, by component digest.
fn recorded_signature(event: &Event) -> Option<(String, Verified)> {
    let EventKind::Verified {
        attestation,
        digest,
        key,
        name,
        signature,
        signer,
        trusted_root,
    } = &event.kind
    else {
        return None;
    };
    let verified = Verified {
        signer: signer.clone(),
        name: name.clone(),
        key: key.clone(),
        signature: signature.clone(),
        attestation: attestation.clone(),
        trusted_root: trusted_root.clone(),
    };
    Some((digest.clone(), verified))
}

/// What a bundle recorded about its tool call.
pub(crate) struct RecordedCall {
    pub digest: String,
    pub input: String,
    pub limits: LimitsRecord,
    /// What its input carried, as recorded.
    pub input_labels: crate::flow::Labels,
    /// How it was stopped, when its deadline or its caller stopped it.
    pub interrupted: Option<Interrupted>,
}

/// A recorded call that was stopped before it ended: by what, after burning how much fuel,
/// after how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted {
    pub by: Interruption,
    pub fuel: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interruption {
    Timeout,
    Cancelled,
}

impl RecordedCall {
    /// The call recorded in `chain` of `events`.
    pub(crate) fn find(events: &[Event], chain: &str) -> Option<Self> {
        let mut steps = events.iter().filter(|e| e.chain == chain);
        let EventKind::InvocationStarted {
            digest,
            input,
            limits,
            ..
        } = &steps.next()?.kind
        else {
            return None;
        };
        let input_labels = crate::flow::Labels::at_input(steps.clone().map(|e| &e.kind));
        let interrupted = steps.find_map(|e| match &e.kind {
            EventKind::InvocationEnded {
                outcome,
                fuel,
                duration_us,
                ..
            } => {
                let by = match outcome {
                    InvocationOutcome::Limit { limit, .. }
                        if limit == LimitKind::Timeout.name() =>
                    {
                        Interruption::Timeout
                    }
                    InvocationOutcome::Cancelled => Interruption::Cancelled,
                    _ => return None,
                };
                Some(Interrupted {
                    by,
                    fuel: *fuel,
                    duration: Duration::from_micros(*duration_us),
                })
            }
            _ => None,
        });
        Some(Self {
            digest: digest.clone(),
            input: input.clone(),
            limits: *limits,
            input_labels,
            interrupted,
        })
    }
}

impl RecordedCall {
    /// The limits it ran under, attributed to `source`.
    pub(crate) fn limits(&self, source: &str) -> ResolvedLimits {
        let source = Source::File(source.into());
        let or_budget = |cut: bool| match cut {
            true => Source::Budget,
            false => source.clone(),
        };
        ResolvedLimits {
            limits: Limits::from(&self.limits),
            fuel: or_budget(self.limits.budget_fuel),
            memory: source.clone(),
            timeout: or_budget(self.limits.budget_timeout),
            output: source.clone(),
        }
    }
}

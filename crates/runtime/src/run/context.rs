//! What the invocations of one run share, nested calls to other tools included, and the one
//! way every invocation runs: planned by the run's mode, sandboxed, journaled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tracing::Instrument;

use baton_budget::{Hold, Ledger, Spend};
use baton_core::limits::{LimitExceeded, Limits, OutputStream};
use baton_effects::{Gate, Redactor};
use baton_journal::event::{Event, EventKind, InvocationOutcome, LimitsRecord};
use baton_llm::Llm;
use baton_policy::{Grants, LimitsSpec, Policy, Source, ToolBounds};
use baton_sandbox::{Outcome, SandboxError, Usage};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::journal::Chains;
use super::mode::{Access, CallPlan};
use super::purity::Watched;
use crate::bindings::types::ToolError;
use crate::capability::{Caller, Grant, HostState};
use crate::error::Error;
use crate::flow::{Flow, Labels};
use crate::host::Host;
use crate::plugin::{Entry, Plugin, ToolCall, wrong_world};
use crate::pure_cache::{PureCache, PureCall};
use crate::recorded::{Interrupted, Interruption};
use crate::runner::Runner;
use crate::schema::Direction;
use crate::trust::Provenance;

/// A run's tools and prompts, each by name.
pub type Components = (BTreeMap<String, Arc<Plugin>>, BTreeMap<String, Arc<Plugin>>);

/// What the invocations of one run share: the runner, the policy in force (in a replay,
/// the recorded one), the tools and prompts that may be called, and the run's chains.
pub struct RunContext {
    pub(super) runner: Arc<Runner>,
    policy: Arc<Policy>,
    overrides: LimitsSpec,
    tools: Arc<BTreeMap<String, Arc<Plugin>>>,
    prompts: Arc<BTreeMap<String, Arc<Plugin>>>,
    pub(super) bounds: ToolBounds,
    chains: Chains,
    /// Calls to other tools made so far in this run.
    pub(super) calls: AtomicU32,
    /// The model providers (never asked in a replay).
    llm: Arc<Llm>,
}

/// One invocation, ready to run.
pub struct Invocation<'a> {
    pub plugin: &'a Plugin,
    /// The input (JSON text) as journaled.
    pub input: &'a str,
    /// What it may reach (from `RunContext::access`).
    pub access: Access,
    /// The gate of its chain.
    pub gate: Arc<dyn Gate>,
    /// A deadline replacing the policy's (a workflow's step timeout).
    pub timeout: Option<Duration>,
    /// How deeply it is nested in tool calls (0: a step).
    pub depth: u32,
    /// The budget it spends from.
    pub ledger: Arc<Ledger>,
    /// Stops it when cancelled (and journals that it was).
    pub cancel: CancellationToken,
    /// Whether the cache of pure calls may answer it, or keep its result, when its plugin
    /// reaches nothing outside its sandbox (a workflow's `cache = false` says no).
    pub cache: bool,
    /// The labels its data carries: its input's when it starts, its output's when it ends.
    pub flow: Arc<Flow>,
}

impl<'a> Invocation<'a> {
    /// A call of `plugin` as a step of its own: not nested, under its policy's deadline, the
    /// cache of pure calls allowed, its input public.
    pub fn step(
        plugin: &'a Plugin,
        input: &'a str,
        access: Access,
        gate: Arc<dyn Gate>,
        ledger: Arc<Ledger>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            plugin,
            input,
            access,
            gate,
            timeout: None,
            depth: 0,
            ledger,
            cancel,
            cache: true,
            flow: Flow::new(Labels::public()),
        }
    }
}

impl RunContext {
    /// A live run's context.
    pub fn live(host: &Host, chains: Chains) -> Arc<Self> {
        Self::live_with_tools(host, chains, host.tools.clone())
    }

    /// A live run's context in which tools may call `tools` (rather than the host's).
    pub fn live_with_tools(
        host: &Host,
        chains: Chains,
        tools: Arc<BTreeMap<String, Arc<Plugin>>>,
    ) -> Arc<Self> {
        Self::live_with(host, chains, tools, host.prompts.clone())
    }

    /// A live run's context with `tools` and `prompts` of its own (rather than the host's).
    pub fn live_with(
        host: &Host,
        chains: Chains,
        tools: Arc<BTreeMap<String, Arc<Plugin>>>,
        prompts: Arc<BTreeMap<String, Arc<Plugin>>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            runner: host.runner.clone(),
            policy: host.policy.clone(),
            overrides: host.overrides,
            tools,
            prompts,
            bounds: host.policy.tool_bounds(),
            chains,
            calls: AtomicU32::new(0),
            llm: host.llm.clone(),
        })
    }

    /// A context under a recorded policy and components: a replay's, or a resumed run's
    /// (as `chains` says). A replay asks no provider (its completions are in the record)
    /// and takes no limits from the command line (they are recorded too).
    pub fn recorded(
        host: &Host,
        policy: Policy,
        (tools, prompts): Components,
        chains: Chains,
    ) -> Arc<Self> {
        let mode = chains.mode();
        Arc::new(Self {
            llm: Arc::new(mode.models(&policy, &host.llm_stores)),
            runner: host.runner.clone(),
            bounds: policy.tool_bounds(),
            overrides: mode.overrides(host.overrides),
            policy: Arc::new(policy),
            tools: Arc::new(tools),
            prompts: Arc::new(prompts),
            chains,
            calls: AtomicU32::new(0),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// The tools steps may call, by name.
    pub fn tools(&self) -> &BTreeMap<String, Arc<Plugin>> {
        &self.tools
    }

    /// The prompts the planner may render, by name.
    pub fn prompts(&self) -> &BTreeMap<String, Arc<Plugin>> {
        &self.prompts
    }

    /// The model providers (never asked in a replay).
    pub fn llm(&self) -> &Llm {
        &self.llm
    }

    /// The recorded events of `chain` (a live run has none).
    pub fn recorded_chain(&self, chain: &str) -> Option<&[Event]> {
        self.chains.mode().recorded(chain)
    }

    /// How long to wait before retrying a failed step (a replay retries at once).
    pub fn retry_delay(&self, delay: Duration) -> Duration {
        self.chains.mode().retry_delay(delay)
    }

    /// What `plugin` may reach in this run (in a replay, what it was recorded with).
    pub fn access(&self, plugin: &Plugin) -> Result<Access, Error> {
        self.chains.mode().access(&self.policy, plugin)
    }

    /// The gate of a new chain of this run, for a call that may reach `access`.
    pub fn gate(&self, chain: String, access: &Access) -> Arc<dyn Gate> {
        self.chains.gate(chain, access.redactor())
    }

    /// The budget of a tool called as a step of its own: what its policy gives one call of
    /// it, under `run_ledger`.
    pub fn step_ledger(&self, plugin: &Plugin, run_ledger: &Arc<Ledger>) -> Arc<Ledger> {
        let budget = self.policy.step_budget(plugin.name(), plugin.subject());
        Ledger::step(run_ledger, plugin.name(), budget)
    }

    /// A tool's invocation: `invocation_started`, the sandboxed call (effects through its
    /// gate), `invocation_ended`, then the output checks. A prompt's is its render (see
    /// `render_input` for its input).
    pub async fn invoke(self: &Arc<Self>, invocation: Invocation<'_>) -> Result<ToolCall, Error> {
        let plugin = invocation.plugin;
        if let Entry::Prompt(entry) = &plugin.entry {
            return self.render_step(invocation, entry).await;
        }
        let (Entry::Tool(entry), Some(schemas)) = (&plugin.entry, &plugin.schemas) else {
            return Err(wrong_world(plugin));
        };
        let input = invocation.input;
        let call = async |store: &mut wasmtime::Store<HostState>, instance: &_| {
            entry
                .load(&mut *store, instance)?
                .call_invoke(&mut *store, input)
                .await
        };
        let (output, usage) = self.invoke_with(invocation, call).await?;
        let tool = || plugin.name().to_string();
        let output = output.map_err(|error| Error::ToolFailed {
            tool: tool(),
            error,
        })?;
        let output: Value = serde_json::from_str(&output).map_err(|e| Error::OutputNotJson {
            tool: tool(),
            reason: e.to_string(),
        })?;
        schemas
            .check(Direction::Output, &output)
            .map_err(|error| Error::OutputSchema {
                tool: tool(),
                error,
            })?;
        Ok(ToolCall { output, usage })
    }

    /// One invocation of any export of its plugin (`call`): `invocation_started` with its
    /// input, the sandboxed call (effects through its gate), then `invocation_ended` with the
    /// text it returned. Returns that text, or how the guest failed, and what the call
    /// consumed; a sandbox failure (trap, limit) is the error.
    pub async fn invoke_with(
        self: &Arc<Self>,
        invocation: Invocation<'_>,
        call: impl AsyncFnOnce(
            &mut wasmtime::Store<HostState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<Result<String, ToolError>>,
    ) -> Result<(Result<String, ToolError>, Usage), Error> {
        let Invocation {
            plugin,
            input,
            access:
                Access {
                    grants,
                    secrets,
                    preopens,
                },
            gate,
            timeout,
            depth,
            ledger,
            cancel,
            cache,
            flow,
        } = invocation;
        let mut limits = self
            .policy
            .limits_for(plugin.name(), plugin.subject(), &self.overrides);
        if let Some(timeout) = timeout {
            limits.limits.timeout = timeout;
            limits.timeout = Source::File("the workflow's step timeout".into());
        }
        let chain = gate.chain();
        // Fuel and time are charged like tokens: the call's fuel limit is reserved (and cut
        // to what the budget has left), the fuel burned committed after.
        let CallPlan {
            limits,
            enforced,
            interrupted,
            hold,
        } = self.chains.mode().plan(
            &chain,
            &limits,
            &ledger,
            &*gate,
            !grants.secrets.is_empty(),
        )?;
        gate.emit(EventKind::InvocationStarted {
            digest: plugin.loaded.digest.to_string(),
            input: input.into(),
            limits: LimitsRecord {
                budget_fuel: limits.fuel == Source::Budget,
                budget_timeout: limits.timeout == Source::Budget,
                ..LimitsRecord::from(&limits.limits)
            },
            secrets: grants.secrets.clone(),
        });
        // A call recorded as cancelled before it ran any wasm is replayed as cancelled
        // before it starts.
        let cancel = match interrupted {
            Some(Interrupted {
                by: Interruption::Cancelled,
                fuel: 0,
                ..
            }) => {
                let never_started = CancellationToken::new();
                never_started.cancel();
                never_started
            }
            _ => cancel,
        };
        if let Provenance::Verified(v) = &plugin.loaded.provenance {
            gate.emit(EventKind::Verified {
                attestation: v.attestation.clone(),
                digest: plugin.loaded.digest.to_string(),
                key: v.key.clone(),
                name: v.name.clone(),
                signature: v.signature.clone(),
                signer: v.signer.clone(),
                trusted_root: v.trusted_root.clone(),
            });
        }
        flow.start(
            gate.clone(),
            self.policy.clone(),
            (plugin.name(), plugin.subject()),
            &grants.fs,
            &grants.secrets,
        );
        // A pure call the cache answers is not run; one it may keep runs watched. A replay of
        // a call the cache answered runs the component again, checked against what was served.
        let pure = match self.recorded_hit(&chain) {
            Some(hit) => {
                gate.emit(hit);
                None
            }
            None => self.pure_key(cache, plugin, &grants, input),
        };
        if let Some((results, key)) = &pure
            && let Some(served) = results.get(key)
            && fits(&served, &enforced)
        {
            let served = serve(plugin.name(), served, key, &*gate, hold);
            flow.finish();
            return Ok(served);
        }
        let watched = pure.as_ref().map(|_| Watched::new(gate.clone()));
        let call_gate: Arc<dyn Gate> = match &watched {
            Some(watched) => watched.clone(),
            None => gate.clone(),
        };
        let caller = Caller {
            run: self.clone(),
            name: plugin.name.clone(),
            gate: call_gate.clone(),
            chain,
            depth,
            ledger: ledger.clone(),
            digest: plugin.digest.as_str().into(),
            may_render: matches!(plugin.entry, Entry::Planner(_)),
            cancel: cancel.clone(),
            flow: flow.clone(),
        };
        let grant = Grant {
            plugin: &plugin.name,
            gate: &call_gate,
            flow: &flow,
            grants: &grants,
            secrets: &secrets,
            preopens: &preopens,
        };
        // A span per call, named as the OpenTelemetry GenAI conventions name tool calls.
        let span = tracing::info_span!(
            "tool call",
            otel.name = format!("execute_tool {}", plugin.name()),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = plugin.name(),
            baton.world = %plugin.loaded.shape.world,
            baton.component.digest = %plugin.loaded.digest,
            baton.fuel = tracing::field::Empty,
            baton.outcome = tracing::field::Empty,
        );
        let Outcome { mut result, usage } = self
            .runner
            .run(&plugin.pre, grant, &enforced, &cancel, Some(caller), call)
            .instrument(span.clone())
            .await;
        // A replayed interruption stops where the recorded one did (its fuel ran out, or, for
        // a call blocked in the host, the wall-clock net struck): it ends as recorded.
        if let Some(interrupted) = interrupted
            && let Err(SandboxError::Limit(
                LimitExceeded::Fuel { .. } | LimitExceeded::Timeout { .. },
            )) = result
        {
            result = Err(match interrupted.by {
                Interruption::Timeout => SandboxError::Limit(LimitExceeded::Timeout {
                    limit: limits.limits.timeout,
                }),
                Interruption::Cancelled => SandboxError::Cancelled,
            });
        }
        let sandbox_error = |error| Error::Sandbox {
            who: format!("{} '{}'", plugin.loaded.shape.world, plugin.name()),
            error,
            limits: Box::new(limits.clone().into_owned()),
        };
        // Output past the limit is not journaled; everything else is, as returned.
        let result = match result {
            Ok(Ok(output)) if output.len() as u64 > limits.limits.output => {
                Err(SandboxError::Limit(LimitExceeded::Output {
                    limit: limits.limits.output,
                    stream: OutputStream::Result,
                }))
            }
            other => other,
        };
        if let Some(hold) = hold {
            hold.commit(Spend {
                fuel: usage.fuel,
                ..Spend::default()
            });
        }
        let outcome = outcome_record(&result);
        let ended = record_metrics(plugin.name(), &outcome, &usage);
        // As a signed integer: OpenTelemetry has no unsigned one (an unsigned value is sent as text).
        span.record("baton.fuel", i64::try_from(usage.fuel).unwrap_or(i64::MAX));
        span.record("baton.outcome", ended);
        let returned = matches!(outcome, InvocationOutcome::Returned { .. });
        let ended = EventKind::InvocationEnded {
            outcome,
            fuel: usage.fuel,
            peak_memory: usage.peak_memory,
            duration_us: usage.duration.as_micros() as u64,
        };
        if let (Some((results, key)), Some(watched)) = (&pure, &watched)
            && returned
            && let Some(mut events) = watched.pure_events()
        {
            events.push(ended.clone());
            let run = self.chains.run().to_string();
            results.put(key, PureCall { run, events });
        }
        gate.emit(ended);
        flow.finish();
        Ok((result.map_err(sandbox_error)?, usage))
    }

    /// The `cache_hit` a replayed chain recorded, if the cache answered its call.
    fn recorded_hit(&self, chain: &str) -> Option<EventKind> {
        self.recorded_chain(chain)?
            .iter()
            .map(|e| &e.kind)
            .find(|kind| matches!(kind, EventKind::CacheHit { .. }))
            .cloned()
    }

    /// The cache and key for a call of `plugin` with `input`, when the cache may answer it:
    /// the run is live, neither the workflow nor the policy opted out, and the plugin's grants
    /// reach nothing outside its sandbox.
    fn pure_key(
        &self,
        cache: bool,
        plugin: &Plugin,
        grants: &Grants,
        input: &str,
    ) -> Option<(Arc<PureCache>, String)> {
        let results = self.chains.mode().pure_cache()?;
        let pure = cache && !grants.no_cache && !grants.reach_the_world();
        pure.then(|| {
            let key = PureCache::key(&plugin.loaded.digest.to_string(), input);
            (results.clone(), key)
        })
    }
}

/// Whether a call the cache kept would have run within `limits`: its fuel, memory and output
/// within theirs (a call served takes no time).
fn fits(call: &PureCall, limits: &Limits) -> bool {
    match call.ended() {
        Some(EventKind::InvocationEnded {
            fuel,
            peak_memory,
            outcome: InvocationOutcome::Returned { output },
            ..
        }) => {
            *fuel <= limits.fuel
                && *peak_memory <= limits.memory
                && output.len() as u64 <= limits.output
        }
        _ => false,
    }
}

/// Serves `call`, kept under `key`, as this invocation: journaled as a `cache_hit` and the
/// events the call recorded; no fuel is spent. Returns what it returned.
fn serve(
    component: &str,
    call: PureCall,
    key: &str,
    gate: &dyn Gate,
    hold: Option<Hold>,
) -> (Result<String, ToolError>, Usage) {
    let started = std::time::Instant::now();
    if let Some(hold) = hold {
        hold.commit(Spend::default());
    }
    let output = match call.ended() {
        Some(EventKind::InvocationEnded {
            outcome: InvocationOutcome::Returned { output },
            ..
        }) => output.clone(),
        _ => String::new(),
    };
    gate.emit(EventKind::CacheHit {
        key: key.into(),
        run: call.run,
    });
    for event in call.events {
        gate.emit(event);
    }
    let usage = Usage {
        fuel: 0,
        peak_memory: 0,
        duration: started.elapsed(),
    };
    metrics::counter!("baton_pure_cache_hits_total", "component" => component.to_string())
        .increment(1);
    (Ok(output), usage)
}

impl Access {
    /// What keeps this call's secrets out of the journal.
    pub fn redactor(&self) -> Arc<dyn Redactor> {
        super::mode::redactor(&self.secrets)
    }
}

/// Tells the process's metrics recorder about a finished invocation (nothing is recorded
/// when no recorder is installed); returns how it ended, in a word.
fn record_metrics(component: &str, outcome: &InvocationOutcome, usage: &Usage) -> &'static str {
    let ended = match outcome {
        InvocationOutcome::Returned { .. } => "ok",
        InvocationOutcome::ToolError { .. } => "tool_error",
        InvocationOutcome::Limit { .. } => "limit",
        InvocationOutcome::Trap { .. } => "trap",
        InvocationOutcome::Cancelled => "cancelled",
    };
    let component = component.to_string();
    metrics::counter!("baton_calls_total", "component" => component.clone(), "outcome" => ended)
        .increment(1);
    metrics::histogram!("baton_call_duration_seconds", "component" => component.clone())
        .record(usage.duration.as_secs_f64());
    metrics::counter!("baton_fuel_consumed_total", "component" => component).increment(usage.fuel);
    ended
}

/// How an invocation ended, as journaled.
fn outcome_record(result: &Result<Result<String, ToolError>, SandboxError>) -> InvocationOutcome {
    match result {
        Ok(Ok(output)) => InvocationOutcome::Returned {
            output: output.clone(),
        },
        Ok(Err(error)) => {
            let (kind, message) = match error {
                ToolError::InvalidInput(m) => ("invalid_input", m.clone()),
                ToolError::Failed(m) => ("failed", m.clone()),
                ToolError::Host(e) => ("host", format!("{e:?}")),
            };
            InvocationOutcome::ToolError {
                kind: kind.into(),
                message,
            }
        }
        Err(SandboxError::Cancelled) => InvocationOutcome::Cancelled,
        Err(SandboxError::Limit(limit)) => InvocationOutcome::Limit {
            limit: limit.name().into(),
            message: limit.to_string(),
        },
        Err(error) => InvocationOutcome::Trap {
            message: error.to_string(),
        },
    }
}

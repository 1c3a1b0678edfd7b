//! Calls a running component makes to another one through the host: a tool calling a tool,
//! a planner rendering a prompt. Both take one path: checked, run in the callee's own
//! sandbox under its own policy and limits with its own chain (`<caller chain>/<index>`),
//! and recorded in the caller's chain as a `tool_call` event sealing that chain.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use baton_effects::{BoxFuture, Sealed};
use baton_journal::event::{EventKind, ToolCallOutcome};
use baton_llm::Llm;

use super::context::{Invocation, RunContext};
use super::render::render_input;
use crate::bindings::types::{Error as HostError, Message, TokenBudget, ToolError};
use crate::capability::{Caller, Run};
use crate::error::{Error, host_error_parts};
use crate::flow::Flow;
use crate::plugin::{Entry, Plugin, check_input};
use baton_core::limits::LimitExceeded;
use baton_sandbox::SandboxError;

impl Run for RunContext {
    fn call_tool<'a>(
        self: Arc<Self>,
        caller: &'a Caller,
        index: u32,
        name: &'a str,
        input: &'a str,
    ) -> BoxFuture<'a, Result<String, HostError>> {
        Box::pin(async move { self.tool_call(caller, index, name, input).await })
    }

    fn render_prompt<'a>(
        self: Arc<Self>,
        caller: &'a Caller,
        index: u32,
        name: &'a str,
        vars: &'a str,
        budget: TokenBudget,
    ) -> BoxFuture<'a, Result<Vec<Message>, HostError>> {
        Box::pin(async move { self.render(caller, index, name, vars, budget).await })
    }

    fn llm(&self) -> &Llm {
        RunContext::llm(self)
    }
}

impl RunContext {
    /// The tool `name` called by `caller`: checked against the run's bounds, then run as a
    /// nested call.
    async fn tool_call(
        self: &Arc<Self>,
        caller: &Caller,
        index: u32,
        name: &str,
        input: &str,
    ) -> Result<String, HostError> {
        let refuse = |message: String| {
            caller.gate.emit(EventKind::Denied {
                capability: "tools".into(),
                message: message.clone(),
            });
            HostError::BudgetExceeded(message)
        };
        let caller_name = &caller.name;
        if caller.depth >= self.bounds.max_depth {
            return Err(refuse(format!(
                "'{caller_name}' calling tool '{name}' would nest tool calls deeper than {} \
                 (tools.max_depth)",
                self.bounds.max_depth
            )));
        }
        let made = self.calls.fetch_add(1, Ordering::Relaxed);
        if made >= self.bounds.max_calls {
            return Err(refuse(format!(
                "'{caller_name}' calling tool '{name}' would exceed {} tool calls in one run \
                 (tools.max_calls)",
                self.bounds.max_calls
            )));
        }
        let callee = self.tools().get(name).cloned().ok_or_else(|| {
            HostError::Unavailable(format!(
                "no tool named '{name}' is loaded; give it to baton with --tools"
            ))
        });
        let callee = callee.and_then(|callee| {
            check_input(&callee, input).map_err(|e| HostError::InvalidArgument(e.to_string()))?;
            Ok(callee)
        });
        let run = async |ctx: &Arc<Self>, invocation: Invocation<'_>| {
            ctx.invoke(invocation)
                .await
                .map(|call| call.output.to_string())
                .map_err(|e| callee_error(name, e))
        };
        self.nested(caller, index, name, input, callee, run).await
    }

    /// The prompt `name` rendered for `caller` (a run's planner), recorded under the
    /// prompt's name.
    async fn render(
        self: &Arc<Self>,
        caller: &Caller,
        index: u32,
        name: &str,
        vars: &str,
        budget: TokenBudget,
    ) -> Result<Vec<Message>, HostError> {
        let input = render_input(vars, &budget);
        let prompt = self.prompts().get(name).cloned().ok_or_else(|| {
            HostError::Unavailable(format!(
                "no prompt named '{name}' is loaded; name it in the workflow's prompts"
            ))
        });
        let rendered = std::sync::OnceLock::new();
        let run = async |ctx: &Arc<Self>, invocation: Invocation<'_>| {
            let Entry::Prompt(entry) = &invocation.plugin.entry else {
                unreachable!("add_prompt admits only prompts")
            };
            let rendering = ctx.render_with(invocation, entry, vars, &budget, &rendered);
            match rendering.await {
                Ok((Ok(text), _)) => Ok(text),
                Ok((Err(ToolError::Host(e)), _)) => Err(e),
                Ok((Err(e), _)) => Err(HostError::Failed(format!("prompt '{name}' failed: {e:?}"))),
                Err(e) => Err(HostError::Failed(e.to_string())),
            }
        };
        self.nested(caller, index, name, &input, prompt, run)
            .await?;
        Ok(rendered.into_inner().expect("render returned messages"))
    }

    /// The one path of a nested call: `callee` (or why it cannot be called) run by `run` in
    /// its own chain, then recorded in the caller's chain.
    async fn nested(
        self: &Arc<Self>,
        caller: &Caller,
        index: u32,
        name: &str,
        input: &str,
        callee: Result<Arc<Plugin>, HostError>,
        run: impl AsyncFnOnce(&Arc<Self>, Invocation<'_>) -> Result<String, HostError>,
    ) -> Result<String, HostError> {
        let prepared = callee.and_then(|callee| {
            let access = self
                .access(&callee)
                .map_err(|e| HostError::Failed(e.to_string()))?;
            Ok((callee, access))
        });
        let (callee, access) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let outcome = Err(e);
                caller
                    .gate
                    .emit(record(name, input, String::new(), None, &outcome));
                return outcome;
            }
        };
        let digest = callee.loaded.digest.to_string();
        self.chains()
            .blob("component", &digest, &callee.loaded.bytes);
        let chain = format!("{}/{index}", caller.chain);
        let redactor = access.redactor();
        let gate = self.gate(chain.clone(), &access);
        // The callee starts with what its caller's data carries, and hands back what its
        // output carries.
        let flow = Flow::new(caller.flow.labels());
        let invocation = Invocation {
            plugin: &callee,
            input,
            access,
            gate: gate.clone(),
            timeout: None,
            depth: caller.depth + 1,
            ledger: caller.ledger.clone(),
            cancel: caller.cancel.child_token(),
            cache: true,
            flow: flow.clone(),
        };
        let outcome = Box::pin(run(self, invocation)).await;
        let sealed = match gate.seal() {
            Ok(sealed) => sealed,
            Err(divergence) => {
                caller.gate.diverged(divergence);
                return Err(HostError::Failed("the replay diverged".into()));
            }
        };
        caller.gate.absorb(&sealed);
        // The callee's secrets stay out of the caller's chain too.
        let mut event = record(name, input, chain, Some(&sealed), &outcome);
        redactor.redact(&mut event);
        caller.gate.emit(event);
        caller
            .flow
            .join(&flow.labels(), &format!("'{name}' answered it"));
        outcome
    }
}

/// The `tool_call` event recording a nested call (of a tool, or a prompt's render) in the
/// caller's chain: `chain` is the callee's (empty if it never ran), sealed by `sealed`.
fn record(
    name: &str,
    input: &str,
    chain: String,
    sealed: Option<&Sealed>,
    outcome: &Result<String, HostError>,
) -> EventKind {
    let (events, root) = sealed.map_or((0, String::new()), |s| (s.events, s.root.clone()));
    EventKind::ToolCall {
        chain,
        events,
        input: input.into(),
        outcome: match outcome {
            Ok(output) => ToolCallOutcome::Returned {
                output: output.clone(),
            },
            Err(e) => {
                let (kind, message) = host_error_parts(e);
                ToolCallOutcome::Failed {
                    kind: kind.into(),
                    message: message.into(),
                }
            }
        },
        root,
        tool: name.into(),
    }
}

/// What a caller receives when the tool it called fails.
fn callee_error(name: &str, error: Error) -> HostError {
    match error {
        Error::ToolFailed { error, .. } => match error {
            ToolError::InvalidInput(m) => HostError::InvalidArgument(m),
            ToolError::Failed(m) => HostError::Failed(m),
            ToolError::Host(e) => e,
        },
        // Where the limit came from is the host's business (and differs in a replay).
        Error::Sandbox {
            error: SandboxError::Limit(limit),
            ..
        } => match limit {
            LimitExceeded::Timeout { .. } => HostError::Timeout(format!("tool '{name}' {limit}")),
            _ => HostError::Failed(format!("tool '{name}' {limit}")),
        },
        Error::InputNotJson { .. } | Error::InputSchema { .. } => {
            HostError::InvalidArgument(error.to_string())
        }
        other => HostError::Failed(other.to_string()),
    }
}

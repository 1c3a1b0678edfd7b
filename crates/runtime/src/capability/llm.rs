//! `baton:plugin/llm`: completions and token counts, served by the host.
//!
//! Policy check → gate → providers: the policy's `llm.models` says which models a plugin
//! may use and `llm.max_tokens` how many tokens one completion may ask for (anything else is
//! refused with `not-granted` and journaled); the gate then reserves the budget, routes the
//! request and journals everything that happened (see `crate::models`).

use baton_journal::event::{LlmMessage, LlmOutcome, LlmRequest};
use baton_llm::Requester;
use baton_policy::LlmGrant;
use wasmtime::component::{HasSelf, Linker};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::bindings::baton::plugin::llm::{self, Host};
use crate::bindings::types::{
    CompletionRequest, CompletionResponse, Error, FinishReason, Role, Usage,
};
use crate::error::host_error_from;
use crate::models;

pub struct Models;

impl Capability for Models {
    /// The models the policy lets it use.
    type State = Option<LlmGrant>;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["llm"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        llm::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(call: &CallSetup<'_>) -> Option<LlmGrant> {
        call.grant.grants.llm.clone()
    }
}

impl HostState {
    /// Checks a request for `model` (asking for up to `max_tokens`) against the policy.
    fn check_model(&self, model: &str, what: &str, max_tokens: Option<u32>) -> Result<(), Error> {
        let Some(grant) = self
            .llm
            .as_ref()
            .filter(|g| g.models.iter().any(|m| m == model))
        else {
            return Err(super::deny(self, "llm", what));
        };
        if let (Some(asked), Some(max)) = (max_tokens, grant.max_tokens)
            && asked > max
        {
            let what = format!("{what} with max_tokens {asked} (above llm.max_tokens {max})");
            return Err(super::deny(self, "llm", &what));
        }
        Ok(())
    }

    /// A completion for the guest, held to a pattern or not.
    async fn completion(
        &mut self,
        request: CompletionRequest,
        pattern: Option<String>,
    ) -> wasmtime::Result<Result<CompletionResponse, Error>> {
        let what = format!("LLM model '{}'", request.model);
        if let Err(e) = self.check_model(&request.model, &what, Some(request.max_tokens)) {
            return Ok(Err(e));
        }
        let sink = format!("a completion request to model '{}'", request.model);
        if let Err(message) = self.flow.check(&sink, None) {
            return Ok(Err(Error::NotGranted(message)));
        }
        if !(request.temperature.is_finite() && (0.0..=2.0).contains(&request.temperature)) {
            return Ok(Err(Error::InvalidArgument(format!(
                "temperature {} is outside 0 to 2",
                request.temperature
            ))));
        }
        if request.max_tokens == 0 {
            return Ok(Err(Error::InvalidArgument(
                "max_tokens must be at least 1".into(),
            )));
        }
        if let Some(Err(e)) = pattern.as_deref().map(baton_llm::pattern::check) {
            return Ok(Err(Error::InvalidArgument(e)));
        }
        let Some(caller) = self.caller.clone() else {
            return Ok(Err(not_in_a_run()));
        };
        let requester = Requester {
            name: &self.plugin,
            digest: &caller.digest,
            cache: self.llm.as_ref().and_then(|grant| grant.cache),
        };
        let outcome = models::complete(
            &*self.gate,
            caller.run.llm(),
            &requester,
            LlmRequest {
                pattern,
                ..request.into()
            },
            &caller.ledger,
        )
        .await;
        Ok(response(outcome))
    }
}

/// What a component that is only describing itself gets: it runs outside any run.
fn not_in_a_run() -> Error {
    Error::Unavailable("models cannot be used while a component describes itself".into())
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

impl From<CompletionRequest> for LlmRequest {
    fn from(r: CompletionRequest) -> Self {
        LlmRequest {
            idempotency_key: r.idempotency_key,
            max_tokens: r.max_tokens,
            messages: r
                .messages
                .into_iter()
                .map(|m| LlmMessage {
                    content: m.content,
                    role: role_name(m.role).into(),
                })
                .collect(),
            model: r.model,
            seed: r.seed.map(|s| s.to_string()),
            stop: r.stop,
            temperature: r.temperature.to_string(),
            pattern: None,
        }
    }
}

fn response(outcome: LlmOutcome) -> Result<CompletionResponse, Error> {
    match outcome {
        LlmOutcome::Completed {
            finish_reason,
            input_tokens,
            model,
            output_tokens,
            text,
        } => Ok(CompletionResponse {
            text,
            finish_reason: match finish_reason.as_str() {
                "length" => FinishReason::Length,
                "content-filter" => FinishReason::ContentFilter,
                _ => FinishReason::Stop,
            },
            usage: Usage {
                input_tokens,
                output_tokens,
            },
            model,
        }),
        LlmOutcome::Failed { kind, message } => Err(host_error_from(&kind, message)),
    }
}

impl Host for HostState {
    async fn complete(
        &mut self,
        request: CompletionRequest,
    ) -> wasmtime::Result<Result<CompletionResponse, Error>> {
        self.completion(request, None).await
    }

    async fn complete_constrained(
        &mut self,
        request: CompletionRequest,
        pattern: String,
    ) -> wasmtime::Result<Result<CompletionResponse, Error>> {
        self.completion(request, Some(pattern)).await
    }


    async fn embed(
        &mut self,
        model: String,
        texts: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let what = format!("embedding model '{model}'");
        if let Err(e) = self.check_model(&model, &what, None) {
            return Ok(Err(e));
        }
        let sink = format!("an embedding request to model '{model}'");
        if let Err(message) = self.flow.check(&sink, None) {
            return Ok(Err(Error::NotGranted(message)));
        }
        let Some(caller) = self.caller.clone() else {
            return Ok(Err(not_in_a_run()));
        };
        let embedded = models::embed(&*self.gate, caller.run.llm(), &model, &texts)
            .await
            .map_err(Error::Unavailable);
        Ok(embedded)
    }

    async fn count_tokens(
        &mut self,
        model: String,
        text: String,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let what = format!("tokenizer of model '{model}'");
        if let Err(e) = self.check_model(&model, &what, None) {
            return Ok(Err(e));
        }
        let Some(caller) = self.caller.clone() else {
            return Ok(Err(not_in_a_run()));
        };
        let counted = models::count_tokens(&*self.gate, caller.run.llm(), &model, &text)
            .await
            .map_err(Error::Unavailable);
        Ok(counted)
    }
}

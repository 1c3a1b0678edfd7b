//! `baton:plugin/llm`. The policy's `llm.models` says which models a plugin may use and
//! `llm.max_tokens` how many tokens one completion may ask for; anything else is refused
//! with `not-granted` and journaled. Baton has no model provider yet, so a granted request
//! answers `unavailable`.

use crate::bindings::baton::plugin::llm::Host;
use crate::bindings::types::{CompletionRequest, CompletionResponse, Error};
use crate::state::HostState;

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
}

/// The answer to a granted request while Baton has no model provider.
fn no_provider(model: &str) -> Error {
    Error::Unavailable(format!(
        "model '{model}' is granted, but this Baton has no LLM provider configured"
    ))
}

impl Host for HostState {
    async fn complete(
        &mut self,
        request: CompletionRequest,
    ) -> wasmtime::Result<Result<CompletionResponse, Error>> {
        let what = format!("LLM model '{}'", request.model);
        let checked = self.check_model(&request.model, &what, Some(request.max_tokens));
        Ok(Err(checked
            .err()
            .unwrap_or_else(|| no_provider(&request.model))))
    }

    async fn embed(
        &mut self,
        model: String,
        _texts: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let what = format!("embedding model '{model}'");
        let checked = self.check_model(&model, &what, None);
        Ok(Err(checked.err().unwrap_or_else(|| no_provider(&model))))
    }

    async fn count_tokens(
        &mut self,
        model: String,
        _text: String,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let what = format!("tokenizer of model '{model}'");
        let checked = self.check_model(&model, &what, None);
        Ok(Err(checked.err().unwrap_or_else(|| no_provider(&model))))
    }
}

impl crate::bindings::types::Host for HostState {}

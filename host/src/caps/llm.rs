//! `baton:plugin/llm`. No policy grants models yet, so every call answers `not-granted`.

use crate::bindings::baton::plugin::llm::Host;
use crate::bindings::types::{CompletionRequest, CompletionResponse, Error};
use crate::state::HostState;

impl Host for HostState {
    async fn complete(
        &mut self,
        request: CompletionRequest,
    ) -> wasmtime::Result<Result<CompletionResponse, Error>> {
        let what = format!("LLM model '{}'", request.model);
        Ok(Err(super::deny(self, "llm", &what)))
    }

    async fn embed(
        &mut self,
        model: String,
        _texts: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let what = format!("embedding model '{model}'");
        Ok(Err(super::deny(self, "llm", &what)))
    }

    async fn count_tokens(
        &mut self,
        model: String,
        _text: String,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let what = format!("tokenizer of model '{model}'");
        Ok(Err(super::deny(self, "llm", &what)))
    }
}

impl crate::bindings::types::Host for HostState {}

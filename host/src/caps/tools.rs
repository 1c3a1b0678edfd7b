//! `baton:plugin/tools`. No policy grants tool-to-tool calls yet, so every call answers
//! `not-granted`.

use crate::bindings::baton::plugin::tools::Host;
use crate::bindings::types::Error;
use crate::state::HostState;

impl Host for HostState {
    async fn call(
        &mut self,
        name: String,
        _input: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let what = format!("calling tool '{name}'");
        Ok(Err(super::deny(self, "tools", &what)))
    }
}

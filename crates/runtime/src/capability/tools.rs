//! `baton:plugin/tools`: a tool calls another tool through the host. The call is allowed only
//! if the caller's policy lists the callee in `tools.call`, and within the run's bounds on
//! nesting depth and number of calls; the callee then runs in its own sandbox, under its own
//! policy, with its own chain (see the run's `Run::call_tool`).

use wasmtime::component::{HasSelf, Linker};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::bindings::baton::plugin::tools;
use crate::bindings::types::Error;

pub struct Tools;

impl Capability for Tools {
    /// The tools the policy lets it call.
    type State = Vec<String>;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["tools"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        tools::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(call: &CallSetup<'_>) -> Vec<String> {
        call.grant.grants.tools.clone()
    }
}

impl tools::Host for HostState {
    async fn call(
        &mut self,
        name: String,
        input: String,
    ) -> wasmtime::Result<Result<String, Error>> {
        let what = format!("calling tool '{name}'");
        let Some(caller) = self.caller.clone() else {
            return Ok(Err(super::deny(self, "tools", &what)));
        };
        if !self.tools.contains(&name) {
            return Ok(Err(super::deny(self, "tools", &what)));
        }
        if let Err(message) = self.flow.check(&format!("a call to tool '{name}'"), None) {
            return Ok(Err(Error::NotGranted(message)));
        }
        self.nested_calls += 1;
        let call = caller
            .run
            .clone()
            .call_tool(&caller, self.nested_calls, &name, &input);
        Ok(call.await)
    }
}

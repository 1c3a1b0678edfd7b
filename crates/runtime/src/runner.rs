//! Baton's sandbox with the capabilities linked: what runs every call of every plugin.

use baton_core::limits::Limits;
use baton_sandbox::{Outcome, Sandbox};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store};

use crate::capability::{self, CallSetup, Caller, Grant, HostState};

pub struct Runner {
    sandbox: Sandbox,
    linker: Linker<HostState>,
}

impl Runner {
    pub fn new() -> wasmtime::Result<Self> {
        let sandbox = Sandbox::new()?;
        let mut linker = Linker::new(sandbox.engine());
        capability::link_all(&mut linker)?;
        Ok(Self { sandbox, linker })
    }

    pub fn engine(&self) -> &Engine {
        self.sandbox.engine()
    }

    /// Links a component once; each call then instantiates it in a fresh store.
    pub fn prepare(&self, component: &Component) -> wasmtime::Result<InstancePre<HostState>> {
        self.linker.instantiate_pre(component)
    }

    /// Runs `call` on a fresh instance of `pre` under `limits`, its capabilities built from
    /// `grant` and reaching its run through `caller` (`None`: every call to another component
    /// or model is refused). Every clock reading, random draw and host effect of the guest
    /// goes through the grant's gate.
    pub async fn run<R>(
        &self,
        pre: &InstancePre<HostState>,
        grant: Grant<'_>,
        limits: &Limits,
        cancel: &CancellationToken,
        caller: Option<Caller>,
        call: impl AsyncFnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<R>,
    ) -> Outcome<R> {
        let state = |stdio, memory| {
            let setup = CallSetup {
                grant,
                stdio: &stdio,
            };
            HostState::new(&setup, memory, caller)
        };
        self.sandbox.run(pre, limits, cancel, state, call).await
    }
}

//! Host capabilities: one module each, each linking its own interfaces. What a plugin may
//! reach is decided inside the capability, on the store's per-call state.

pub mod fs;
pub mod http;
pub mod llm;
pub mod log;
pub mod prompts;
pub mod tools;
pub mod wasi;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::baton::plugin;
use crate::journal::event::EventKind;
use crate::state::HostState;

/// Links every interface a plugin may import, and nothing else.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasi::add_to_linker(linker)?;
    fs::add_to_linker(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    plugin::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    plugin::log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    plugin::llm::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    plugin::tools::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    plugin::prompts::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// Refuses a capability the policy does not grant: journals the denial through the gate and
/// returns the error the guest sees.
pub(crate) fn deny(state: &HostState, capability: &str, what: &str) -> plugin::types::Error {
    let message = format!("{what} is not granted to '{}' by its policy", state.plugin);
    state.gate.emit(EventKind::Denied {
        capability: capability.into(),
        message: message.clone(),
    });
    plugin::types::Error::NotGranted(message)
}

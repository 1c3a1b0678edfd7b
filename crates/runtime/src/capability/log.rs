//! `baton:plugin/log`: a plugin's log lines go through the effect gate, which journals them
//! and passes them to the host's `tracing` log (shown with `-v`).

use baton_effects::Effect;
use wasmtime::component::{HasSelf, Linker};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::bindings::baton::plugin::log::{self, Level};

pub struct Log;

impl Capability for Log {
    type State = ();

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "baton:plugin",
        names: &["log"],
        version: "0.1.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }

    fn prepare(_: &CallSetup<'_>) {}
}

impl log::Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.gate.effect(Effect::Log {
            level: level.into(),
            message: format!("{}: {message}", self.plugin),
        });
        Ok(())
    }
}

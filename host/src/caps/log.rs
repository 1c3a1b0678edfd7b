//! `baton:plugin/log`: a plugin's log lines go through the effect gate, which journals them
//! and passes them to the host's `tracing` log (shown with `-v`).

use crate::bindings::baton::plugin::log::{Host, Level};
use crate::effect::Effect;
use crate::state::HostState;

impl Host for HostState {
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

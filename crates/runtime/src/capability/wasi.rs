//! The WASI interfaces a plugin may import from wasmtime-wasi: I/O streams, clocks, random,
//! CLI environment and stdio, and sockets that are always refused. Network egress goes
//! through `wasi:http` alone, where the `http` capability checks it; the filesystem is Baton's
//! own (`capability::fs`).
//!
//! `wasi:sockets` is linked only because Python and JavaScript toolchains import it whether or
//! not a tool uses it: creating a TCP or UDP socket answers `access-denied` and a name lookup
//! `permanent-resolver-failure`, whatever the policy says, so no socket is ever opened. The
//! answers never vary, so they need no journal event to replay.
//!
//! Time and randomness come from the gate (`baton_effects::wasi`), and so does the
//! environment: only the variables and secrets the policy grants.

use baton_effects::{Effect, wasi};
use baton_journal::event::{EventKind, RandomSource};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{CallSetup, Capability, HostState, Interfaces};

pub struct Wasi;

impl Capability for Wasi {
    type State = WasiCtx;

    const INTERFACES: &'static [Interfaces] = &[
        Interfaces {
            package: "wasi:io",
            names: &["error", "poll", "streams"],
            version: "0.2.",
        },
        Interfaces {
            package: "wasi:clocks",
            names: &["wall-clock", "monotonic-clock"],
            version: "0.2.",
        },
        Interfaces {
            package: "wasi:random",
            names: &["random", "insecure", "insecure-seed"],
            version: "0.2.",
        },
        Interfaces {
            package: "wasi:cli",
            names: &[
                "environment",
                "exit",
                "stdin",
                "stdout",
                "stderr",
                "terminal-input",
                "terminal-output",
                "terminal-stdin",
                "terminal-stdout",
                "terminal-stderr",
            ],
            version: "0.2.",
        },
        Interfaces {
            package: "wasi:sockets",
            names: &[
                "network",
                "instance-network",
                "ip-name-lookup",
                "tcp",
                "tcp-create-socket",
                "udp",
                "udp-create-socket",
            ],
            version: "0.2.",
        },
    ];

    fn link(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_io::add_to_linker_async(l)?;
        clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
        clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
        // Random bytes are drawn here, one journal event per draw (see `draw`).
        random::random::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
        random::insecure::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
        random::insecure_seed::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
        cli::exit::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::environment::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::terminal_input::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::terminal_output::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
        sockets::network::add_to_linker::<_, WasiSockets>(l, &Default::default(), HostState::sockets)?;
        sockets::instance_network::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        sockets::tcp::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        sockets::udp::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, HostState::sockets)?;
        Ok(())
    }

    /// Only what is granted: no arguments, no sockets (see the module's documentation); the
    /// environment, time and randomness come from the gate.
    fn prepare(call: &CallSetup<'_>) -> WasiCtx {
        let gate = call.grant.gate;
        let mut builder = WasiCtxBuilder::new();
        if !call.grant.grants.env.is_empty() || !call.grant.grants.secrets.is_empty() {
            let effect = Effect::Environment {
                names: call.grant.grants.env.clone(),
                secrets: call.grant.secrets.to_vec(),
            };
            if let EventKind::Environment { vars } = gate.effect(effect) {
                builder.envs(&vars);
            }
        }
        builder
            .stdout(call.stdio.stdout.clone())
            .stderr(call.stdio.stderr.clone())
            .wall_clock(wasi::WallClock(gate.clone()))
            .monotonic_clock(wasi::MonotonicClock(gate.clone()))
            .secure_random(wasi::Random {
                gate: gate.clone(),
                source: RandomSource::Secure,
            })
            .insecure_random(wasi::Random {
                gate: gate.clone(),
                source: RandomSource::Insecure,
            })
            .insecure_random_seed(wasi::insecure_seed(&**gate))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }
}

/// The most random bytes one call of `get-random-bytes` may ask for: a draw is one journal
/// event, held whole in memory and in the journal.
const MAX_RANDOM_DRAW: u64 = 64 * 1024;

impl HostState {
    /// `len` bytes from `source`, drawn through the gate in one effect (wasmtime-wasi's own
    /// implementation draws a word per byte, each an event: a flood of them).
    fn draw(&self, source: RandomSource, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_DRAW {
            wasmtime::bail!(
                "asked for {len} random bytes at once, more than the {MAX_RANDOM_DRAW} a draw \
                 may have"
            );
        }
        let mut bytes = vec![0; len as usize];
        wasi::Random {
            gate: self.gate.clone(),
            source,
        }
        .draw(&mut bytes);
        Ok(bytes)
    }
}

/// The u64 whose little-endian bytes are `bytes` (as a draw of 8 always is).
fn little_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, byte| value << 8 | u64::from(*byte))
}

impl random::random::Host for HostState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.draw(RandomSource::Secure, len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        let bytes = self.draw(RandomSource::Secure, 8)?;
        Ok(little_endian(&bytes))
    }
}

impl random::insecure::Host for HostState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.draw(RandomSource::Insecure, len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        let bytes = self.draw(RandomSource::Insecure, 8)?;
        Ok(little_endian(&bytes))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

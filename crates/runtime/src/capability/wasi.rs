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
use wasmtime::component::{Linker, ResourceTable};
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
        random::random::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
        random::insecure::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
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

//! Running a component under limits: one engine, a fresh `Store` per invocation, and a typed
//! error for every way a call can be cut short.
//!
//! - fuel: `Store::set_fuel`; exhaustion is wasmtime's `OutOfFuel` trap.
//! - memory: `MemoryLimiter`, a `ResourceLimiter` with a typed error.
//! - time: an epoch deadline checked every `engine::TICK` against the wall clock (which also
//!   yields to other tasks), plus a tokio timeout around the whole call, because an epoch
//!   cannot interrupt a call that is blocked in the host.
//! - output: the returned document is measured by the caller; stdout and stderr go to
//!   `BoundedPipe`s that trap when full.
//! - cancellation: the caller's token, checked by the same epoch callback (a running guest
//!   stops at the next tick) and raced against the call (one blocked in the host stops at
//!   once).
//!
//! The sandbox knows nothing of what a component may reach: the store's data (`T`) and the
//! linker that gives it its imports belong to the caller (Baton's runtime, which links the
//! capabilities a policy grants).

pub mod engine;
pub mod memory;
pub mod output;

use std::time::{Duration, Instant};

use baton_core::limits::{LimitExceeded, Limits, OutputStream};
use baton_core::text::{one_line, truncate};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use engine::EpochTicker;
use memory::MemoryLimiter;
use output::BoundedPipe;

/// How a call ended, when it did not return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Limit(LimitExceeded),
    /// The guest trapped (a panic, an out-of-bounds access, ...).
    #[error("crashed: {message}")]
    Trap { message: String },
    /// The component could not be instantiated (a host-side problem, not the guest's).
    #[error("could not be instantiated: {message}")]
    Instantiate { message: String },
    /// Its caller stopped it (an MCP client's `notifications/cancelled`, ...).
    #[error("was cancelled by its caller")]
    Cancelled,
}

/// Fuel between two yields of a running guest (about 10 ms of CPU).
const FUEL_SLICE: u64 = 10_000_000;

/// How long past its deadline a call blocked in the host may take before it is dropped.
const HOST_CALL_GRACE: Duration = Duration::from_millis(50);

/// What a call consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub fuel: u64,
    pub peak_memory: u64,
    pub duration: Duration,
}

/// The result of one call in a sandbox, with what it consumed.
#[derive(Debug)]
pub struct Outcome<R> {
    pub result: Result<R, SandboxError>,
    pub usage: Usage,
}

/// The data of a sandboxed store: whatever the caller keeps there, and the memory limiter
/// the sandbox enforces through it.
pub trait Sandboxed: Send + 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
}

/// A call's standard output and error, bounded by its output limit.
pub struct Stdio {
    pub stdout: BoundedPipe,
    pub stderr: BoundedPipe,
}

pub struct Sandbox {
    engine: Engine,
    _ticker: EpochTicker,
}

impl Sandbox {
    pub fn new() -> wasmtime::Result<Self> {
        let engine = engine::build_engine()?;
        let ticker = EpochTicker::start(engine.weak())?;
        Ok(Self {
            engine,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Instantiates `pre` in a fresh store under `limits` and runs `call` on the instance,
    /// until it returns or `cancel` is cancelled. The store's data is built by `state` around
    /// the call's bounded stdio and a memory limiter it must hand back through
    /// [`Sandboxed::limiter`].
    pub async fn run<T: Sandboxed, R>(
        &self,
        pre: &InstancePre<T>,
        limits: &Limits,
        cancel: &CancellationToken,
        state: impl FnOnce(Stdio, MemoryLimiter) -> T,
        call: impl AsyncFnOnce(&mut Store<T>, &Instance) -> wasmtime::Result<R>,
    ) -> Outcome<R> {
        // A call cancelled before it starts is not started: nothing ran, nothing was used.
        if cancel.is_cancelled() {
            return Outcome {
                result: Err(SandboxError::Cancelled),
                usage: Usage::default(),
            };
        }
        let stdout = BoundedPipe::new(OutputStream::Stdout, limits.output);
        let stderr = BoundedPipe::new(OutputStream::Stderr, limits.output);
        let stdio = Stdio {
            stdout,
            stderr: stderr.clone(),
        };
        let mut store = Store::new(
            &self.engine,
            state(stdio, MemoryLimiter::new(limits.memory)),
        );
        store.limiter(|state| state.limiter());
        store
            .set_fuel(limits.fuel)
            .expect("the engine is built with fuel consumption on");
        // Fuel is accounted (and the guest yields to other tasks) every slice; a deadline that
        // interrupts a slice leaves the fuel count exact to within one slice.
        store
            .fuel_async_yield_interval(Some(FUEL_SLICE))
            .expect("the engine is built with fuel consumption on");
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let timeout = limits.timeout;
        store.set_epoch_deadline(1);
        let cancelled = cancel.clone();
        store.epoch_deadline_callback(move |_| {
            if cancelled.is_cancelled() {
                Err(wasmtime::Error::new(SandboxError::Cancelled))
            } else if Instant::now() >= deadline {
                Err(wasmtime::Error::new(LimitExceeded::Timeout {
                    limit: timeout,
                }))
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let run = async {
            let instance = pre.instantiate_async(&mut store).await.map_err(|e| {
                classify(e, limits, &stderr, |message| SandboxError::Instantiate {
                    message,
                })
            })?;
            call(&mut store, &instance)
                .await
                .map_err(|e| classify(e, limits, &stderr, |message| SandboxError::Trap { message }))
        };
        // The epoch deadline stops running wasm (with exact fuel accounting); this timeout,
        // a few ticks later, stops a call that is blocked in the host and never returns to wasm.
        let result = tokio::select! {
            timed = tokio::time::timeout(timeout + HOST_CALL_GRACE, run) => {
                timed.unwrap_or(Err(SandboxError::Limit(LimitExceeded::Timeout {
                    limit: timeout,
                })))
            }
            () = cancel.cancelled() => Err(SandboxError::Cancelled),
        };
        let usage = Usage {
            fuel: limits.fuel - store.get_fuel().unwrap_or(0),
            peak_memory: store.data_mut().limiter().peak(),
            duration: started.elapsed(),
        };
        Outcome { result, usage }
    }
}

/// Recovers the typed limit behind a failed call, or describes the failure in one line
/// (with the tail of the guest's stderr, where a panic message lands) and wraps it with
/// `otherwise`.
fn classify(
    error: wasmtime::Error,
    limits: &Limits,
    stderr: &BoundedPipe,
    otherwise: fn(String) -> SandboxError,
) -> SandboxError {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return SandboxError::Limit(limit.clone());
    }
    if let Some(SandboxError::Cancelled) = error.downcast_ref::<SandboxError>() {
        return SandboxError::Cancelled;
    }
    // The table of host resources a call holds is bounded (see `MAX_HANDLES`): that is a
    // host limit, not a bug of the component.
    if error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return SandboxError::Limit(LimitExceeded::Handles {
            limit: baton_core::limits::MAX_HANDLES,
        });
    }
    let trap = error.downcast_ref::<Trap>();
    match trap {
        Some(Trap::OutOfFuel) => {
            return SandboxError::Limit(LimitExceeded::Fuel { limit: limits.fuel });
        }
        Some(Trap::StackOverflow) => return SandboxError::Limit(LimitExceeded::Stack),
        _ => {}
    }
    let mut message = match (error.downcast_ref::<wasmtime_wasi::I32Exit>(), trap) {
        (Some(exit), _) => format!("the component called exit({})", exit.0),
        (None, Some(trap)) => trap.to_string(),
        (None, None) => one_line(&format!("{error:#}")),
    };
    let said = String::from_utf8_lossy(&stderr.contents()).into_owned();
    // Rust's advice to set RUST_BACKTRACE concerns the guest's environment, not the user's.
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    if !lines.is_empty() {
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        message.push_str(&format!(" (guest stderr: {})", truncate(&tail, 300)));
    }
    otherwise(message)
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Linker};

    use super::*;

    struct Data(MemoryLimiter);

    impl Sandboxed for Data {
        fn limiter(&mut self) -> &mut MemoryLimiter {
            &mut self.0
        }
    }

    /// The smallest component: the magic number and the component layer's version.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    fn limits() -> Limits {
        Limits {
            fuel: 1_000_000,
            memory: 1 << 20,
            timeout: Duration::from_secs(5),
            output: 1 << 10,
        }
    }

    async fn run_empty(sandbox: &Sandbox, cancel: &CancellationToken) -> Outcome<&'static str> {
        let component = Component::new(sandbox.engine(), EMPTY_COMPONENT).unwrap();
        let pre = Linker::<Data>::new(sandbox.engine())
            .instantiate_pre(&component)
            .unwrap();
        sandbox
            .run(
                &pre,
                &limits(),
                cancel,
                |_, limiter| Data(limiter),
                async |_, _| Ok("ran"),
            )
            .await
    }

    #[tokio::test]
    async fn a_call_cancelled_before_it_starts_runs_nothing_and_uses_nothing() {
        let sandbox = Sandbox::new().unwrap();
        let live = CancellationToken::new();
        assert_eq!(run_empty(&sandbox, &live).await.result, Ok("ran"));
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let Outcome { result, usage } = run_empty(&sandbox, &cancelled).await;
        assert_eq!(result, Err(SandboxError::Cancelled));
        assert_eq!(usage, Usage::default());
    }
}

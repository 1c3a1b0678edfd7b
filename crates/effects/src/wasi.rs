//! WASI's clock and random hooks, answered by the gate. Guests read time and randomness only
//! through these, so a replay hands them the recorded values.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use super::{Effect, Gate};
use baton_journal::event::{EventKind, RandomSource};

pub struct WallClock(pub Arc<dyn Gate>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        match self.0.effect(Effect::WallClock) {
            EventKind::WallClock { seconds, nanos } => Duration::new(seconds, nanos),
            _ => Duration::ZERO,
        }
    }
}

pub struct MonotonicClock(pub Arc<dyn Gate>);

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        match self.0.effect(Effect::MonotonicClock) {
            EventKind::MonotonicClock { seconds, nanos } => {
                Duration::new(seconds, nanos).as_nanos() as u64
            }
            _ => 0,
        }
    }
}

/// A random source whose every draw is an effect.
pub struct Random {
    pub gate: Arc<dyn Gate>,
    pub source: RandomSource,
}

impl Random {
    /// Fills `dst` with one draw: one effect, one journal event, however long it is.
    pub fn draw(&self, dst: &mut [u8]) {
        let effect = Effect::Random {
            source: self.source,
            len: dst.len(),
        };
        if let EventKind::Random { bytes, .. } = self.gate.effect(effect)
            && let Ok(bytes) = hex::decode(bytes)
            && bytes.len() == dst.len()
        {
            dst.copy_from_slice(&bytes);
        }
    }
}

impl rand_core::TryRng for Random {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.draw(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.draw(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.draw(dst);
        Ok(())
    }
}

/// The seed of `wasi:random/insecure-seed`, drawn through the gate.
pub fn insecure_seed(gate: &dyn Gate) -> u128 {
    match gate.effect(Effect::RandomSeed) {
        EventKind::RandomSeed { value } => value.parse().unwrap_or(0),
        _ => 0,
    }
}

//! A circuit breaker per provider: closed → open after N consecutive failures → half-open
//! after a cooldown, when one probe is let through; the probe's success closes it and its
//! failure opens it again. While open, calls fail at once without a request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_policy::llm::BreakerSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; everyone else is refused until it returns.
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// A refusal while open (or while a half-open probe is out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// Time until a probe will be let through (zero while a probe is out).
    pub retry_in: Duration,
}

/// A change of state, as journaled: `closed->open`, `open->half_open`, `half_open->closed`,
/// `half_open->open`.
pub type Transition = &'static str;

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt may go out now, and the transition letting it through caused.
    pub fn admit(&self) -> Result<Option<Transition>, Open> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(None),
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Open {
                        retry_in: until - now,
                    });
                }
                *state = State::HalfOpen;
                Ok(Some("open->half_open"))
            }
            State::HalfOpen => Err(Open {
                retry_in: Duration::ZERO,
            }),
        }
    }

    /// Records an attempt that succeeded (or failed through no fault of the provider).
    pub fn success(&self) -> Option<Transition> {
        let mut state = self.lock();
        let was = *state;
        *state = State::Closed { failures: 0 };
        matches!(was, State::HalfOpen).then_some("half_open->closed")
    }

    /// Records a provider failure.
    pub fn failure(&self) -> Option<Transition> {
        let mut state = self.lock();
        let open = State::Open {
            until: Instant::now() + self.settings.cooldown,
        };
        match *state {
            State::Closed { failures } if failures + 1 >= self.settings.failures => {
                *state = open;
                Some("closed->open")
            }
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                None
            }
            State::HalfOpen => {
                *state = open;
                Some("half_open->open")
            }
            // A failure of an attempt admitted before the breaker opened.
            State::Open { .. } => None,
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, cooldown: Duration) -> Breaker {
        Breaker::new(BreakerSettings { failures, cooldown })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, Duration::from_secs(60));
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), None);
        assert_eq!(b.admit(), Ok(None));
        assert_eq!(b.failure(), Some("closed->open"));
        let open = b.admit().unwrap_err();
        assert!(open.retry_in > Duration::from_secs(59));
    }

    #[test]
    fn half_opens_for_one_probe_after_the_cooldown() {
        let b = breaker(1, Duration::ZERO);
        assert_eq!(b.failure(), Some("closed->open"));
        assert_eq!(b.admit(), Ok(Some("open->half_open")));
        // While the probe is out, others are refused.
        assert_eq!(
            b.admit(),
            Err(Open {
                retry_in: Duration::ZERO
            })
        );
        assert_eq!(b.failure(), Some("half_open->open"));
        assert_eq!(b.admit(), Ok(Some("open->half_open")));
        assert_eq!(b.success(), Some("half_open->closed"));
        assert_eq!(b.admit(), Ok(None));
    }
}

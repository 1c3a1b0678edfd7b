//! The world: the only code in Baton that reads clocks or draws randomness on a plugin's
//! behalf. Only the gate calls it, and only in live mode.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, RngExt};

use super::Effect;
use baton_journal::event::EventKind;

/// Turns a request into the event that answers it, performing the effect.
pub(crate) fn perform(effect: &Effect) -> EventKind {
    match effect {
        Effect::WallClock => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            EventKind::WallClock {
                seconds: now.as_secs(),
                nanos: now.subsec_nanos(),
            }
        }
        Effect::MonotonicClock => {
            // Monotonic time counts from the first reading in this process.
            static START: OnceLock<Instant> = OnceLock::new();
            let since = START.get_or_init(Instant::now).elapsed();
            EventKind::MonotonicClock {
                seconds: since.as_secs(),
                nanos: since.subsec_nanos(),
            }
        }
        Effect::Random { source, len } => {
            let mut bytes = vec![0u8; *len];
            rand::rng().fill_bytes(&mut bytes);
            EventKind::Random {
                source: *source,
                bytes: hex::encode(bytes),
            }
        }
        Effect::RandomSeed => EventKind::RandomSeed {
            value: rand::rng().random::<u128>().to_string(),
        },
        Effect::Environment { names, secrets } => EventKind::Environment {
            vars: names
                .iter()
                .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
                .chain(secrets.iter().cloned())
                .collect(),
        },
        Effect::Log { level, message } => {
            log(level, message);
            EventKind::Log {
                level: level.clone(),
                message: message.clone(),
            }
        }
    }
}

/// The event a request would produce, with a neutral response: what replay compares
/// against the record (which then supplies the real response).
pub(crate) fn probe(effect: &Effect) -> EventKind {
    match effect {
        Effect::WallClock => EventKind::WallClock {
            seconds: 0,
            nanos: 0,
        },
        Effect::MonotonicClock => EventKind::MonotonicClock {
            seconds: 0,
            nanos: 0,
        },
        Effect::Random { source, len } => EventKind::Random {
            source: *source,
            bytes: "00".repeat(*len),
        },
        Effect::RandomSeed => EventKind::RandomSeed { value: "0".into() },
        Effect::Log { level, message } => EventKind::Log {
            level: level.clone(),
            message: message.clone(),
        },
        // What is asked for follows from the recorded policy; a replay serves the recorded
        // values, never the replaying machine's.
        Effect::Environment { .. } => EventKind::Environment { vars: Vec::new() },
    }
}

fn log(level: &str, message: &str) {
    // Guest text reaches a terminal: its escape sequences are shown, never obeyed.
    let message = baton_core::text::escape_controls(message);
    match level {
        "trace" => tracing::trace!(target: "plugin", "{message}"),
        "debug" => tracing::debug!(target: "plugin", "{message}"),
        "info" => tracing::info!(target: "plugin", "{message}"),
        "warn" => tracing::warn!(target: "plugin", "{message}"),
        _ => tracing::error!(target: "plugin", "{message}"),
    }
}

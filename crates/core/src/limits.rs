//! The limits one call runs under, and the typed error for each one it can exceed.

use std::fmt;
use std::time::Duration;

/// What one invocation may consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions).
    pub fuel: u64,
    /// Bytes of linear memory, summed over the component's memories.
    pub memory: u64,
    /// Wall-clock deadline, host calls included.
    pub timeout: Duration,
    /// Bytes of output: the returned document, and each of stdout and stderr.
    pub output: u64,
}

/// Largest memory a 32-bit component can address.
pub const MAX_MEMORY: u64 = 4 << 30;

/// The longest duration Baton takes for a deadline, a wait or a budget: a year. Longer ones
/// are refused where they are read, because adding them to the clock would overflow it.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// `text` as a duration ("30s", "500ms", "2h 5m"), at most [`MAX_DURATION`]; the error quotes
/// `text` and says why it is not one, for the caller to put after what it was reading.
pub fn duration(text: &str) -> Result<Duration, String> {
    use crate::text::quote;
    let d = humantime::parse_duration(text).map_err(|e| {
        format!(
            "'{}' is not a duration such as \"30s\" or \"500ms\" ({})",
            quote(text, 60),
            quote(&e.to_string(), 120)
        )
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "'{}' is longer than a year, the longest duration Baton takes",
            quote(text, 60)
        ));
    }
    Ok(d)
}

/// One of the four limits, for messages and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Fuel,
    Memory,
    Timeout,
    Output,
}

impl LimitKind {
    /// The limit's key in policy files and journals.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Fuel => "fuel",
            LimitKind::Memory => "memory",
            LimitKind::Timeout => "timeout",
            LimitKind::Output => "output",
        }
    }

    /// The command-line flag that overrides this limit.
    pub fn flag(self) -> &'static str {
        match self {
            LimitKind::Fuel => "--fuel",
            LimitKind::Memory => "--memory",
            LimitKind::Timeout => "--timeout",
            LimitKind::Output => "--max-output",
        }
    }

    /// The `--budget` key that cuts this limit short (fuel and time are charged to budgets).
    pub fn budget_key(self) -> &'static str {
        match self {
            LimitKind::Fuel => "fuel",
            LimitKind::Timeout => "time",
            LimitKind::Memory => "memory",
            LimitKind::Output => "output",
        }
    }
}

/// A limit a call ran into. Raised from inside the sandbox (as a `wasmtime::Error`) and
/// recovered by downcasting, so it stays typed all the way to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("ran out of fuel after {limit} units")]
    Fuel { limit: u64 },
    #[error("hit its memory limit of {} when growing to {}", size(*limit), size(*requested))]
    Memory { limit: u64, requested: u64 },
    #[error("did not finish within its {} deadline", crate::text::duration(*limit))]
    Timeout { limit: Duration },
    #[error("produced more than {} of {stream}", size(*limit))]
    Output { limit: u64, stream: OutputStream },
    #[error("exhausted its call stack (unbounded recursion?)")]
    Stack,
    #[error(
        "held more than {limit} host resources (streams, files, requests, timers) at once, the \
         most a call may hold"
    )]
    Handles { limit: usize },
}

/// The most host resources (handles) one call may hold at once.
pub const MAX_HANDLES: usize = 4096;

impl LimitExceeded {
    /// Which configurable limit was hit (`None` for the fixed call-stack size).
    pub fn kind(&self) -> Option<LimitKind> {
        match self {
            LimitExceeded::Fuel { .. } => Some(LimitKind::Fuel),
            LimitExceeded::Memory { .. } => Some(LimitKind::Memory),
            LimitExceeded::Timeout { .. } => Some(LimitKind::Timeout),
            LimitExceeded::Output { .. } => Some(LimitKind::Output),
            LimitExceeded::Stack | LimitExceeded::Handles { .. } => None,
        }
    }

    /// Its name in the journal: the configurable limit's, else the fixed one's.
    pub fn name(&self) -> &'static str {
        match (self.kind(), self) {
            (Some(kind), _) => kind.name(),
            (None, LimitExceeded::Handles { .. }) => "handles",
            (None, _) => "stack",
        }
    }
}

/// Where too much output went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Result,
    Stdout,
    Stderr,
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutputStream::Result => "output",
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        })
    }
}

/// Formats a byte count the way users write limits: "64 MiB" when exact, "1.5 MiB" otherwise.
pub fn size(bytes: u64) -> String {
    let exact = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(unit, _)| bytes >= *unit)
        .filter(|(unit, _)| bytes.is_multiple_of(*unit));
    if let Some((unit, name)) = exact {
        return format!("{} {name}", bytes / unit);
    }
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_policy_file() {
        assert_eq!(size(64 << 20), "64 MiB");
        assert_eq!(size(3 << 19), "1.5 MiB");
        assert_eq!(size(512), "512 B");
    }

    #[test]
    fn durations_are_at_most_a_year() {
        assert_eq!(duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("366days"), Ok(MAX_DURATION));
        let err = duration("367days").unwrap_err();
        assert!(err.contains("longer than a year"), "{err}");
        // Longer than the clock can hold: refused, not added to it.
        assert!(duration("18446744073709551615s").is_err());
        assert!(duration("soon").is_err());
        // Found by the `workflows` fuzz target: the message quoted a newline as it was.
        let err = duration("00\ns1").unwrap_err();
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.starts_with("'00\\ns1' is not a duration"), "{err}");
    }

    #[test]
    fn every_configurable_limit_names_its_flag() {
        let memory = LimitExceeded::Memory {
            limit: 1 << 20,
            requested: 2 << 20,
        };
        assert_eq!(memory.kind().map(LimitKind::flag), Some("--memory"));
        assert_eq!(LimitExceeded::Stack.kind(), None);
        assert_eq!(
            memory.to_string(),
            "hit its memory limit of 1 MiB when growing to 2 MiB"
        );
    }
}

//! Limits as policies write them, and as resolved for one plugin: each value with where it
//! came from, so an error can say which file set the limit that was hit.

use std::fmt;
use std::time::Duration;

use baton_core::limits::{LimitKind, Limits};
use serde::Deserialize;

use crate::values;

/// Limits as written in one place: any of them may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default, deserialize_with = "values::de::fuel")]
    pub fuel: Option<u64>,
    #[serde(default, deserialize_with = "values::de::memory")]
    pub memory: Option<u64>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::de::output")]
    pub output: Option<u64>,
    /// The largest input a call takes (only in a policy's top-level `[limits]`: it is
    /// checked before anything is parsed or loaded).
    #[serde(default, deserialize_with = "values::de::output")]
    pub max_input: Option<u64>,
}

/// Where a resolved limit came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `[limits]` of a policy file.
    File(String),
    /// `[plugins.<plugin>.limits]` of a policy file.
    PluginSection {
        file: String,
        plugin: String,
    },
    CommandLine,
    /// What was left of the run's or step's budget (`--budget`, `[budget]`).
    Budget,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(file) => f.write_str(file),
            Source::PluginSection { file, plugin } => {
                write!(f, "{file} [plugins.{plugin}.limits]")
            }
            Source::CommandLine => f.write_str("the command line"),
            Source::Budget => f.write_str("what was left of the budget"),
        }
    }
}

/// Limits for one plugin, with the source of each.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLimits {
    pub limits: Limits,
    pub fuel: Source,
    pub memory: Source,
    pub timeout: Source,
    pub output: Source,
}

impl ResolvedLimits {
    pub fn source(&self, kind: LimitKind) -> &Source {
        match kind {
            LimitKind::Fuel => &self.fuel,
            LimitKind::Memory => &self.memory,
            LimitKind::Timeout => &self.timeout,
            LimitKind::Output => &self.output,
        }
    }

    pub(crate) fn apply(&mut self, spec: &LimitsSpec, source: &Source) {
        if let Some(v) = spec.fuel {
            (self.limits.fuel, self.fuel) = (v, source.clone());
        }
        if let Some(v) = spec.memory {
            (self.limits.memory, self.memory) = (v, source.clone());
        }
        if let Some(v) = spec.timeout {
            (self.limits.timeout, self.timeout) = (v, source.clone());
        }
        if let Some(v) = spec.output {
            (self.limits.output, self.output) = (v, source.clone());
        }
    }
}

//! `[plugins.<name>.tools]`: the tools a plugin may call through the host; top-level
//! `[tools]`: bounds on those calls.

use serde::Deserialize;

/// `[plugins.<name>.tools]`: tools the plugin may call through the host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolsSpec {
    #[serde(default)]
    pub(crate) call: Vec<String>,
}

/// Top-level `[tools]`: bounds on tool-to-tool calls.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolBoundsSpec {
    pub(crate) max_depth: Option<u32>,
    pub(crate) max_calls: Option<u32>,
}

/// How deep tool-to-tool calls may nest, and how many one top-level call may make in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolBounds {
    pub max_depth: u32,
    pub max_calls: u32,
}

impl Default for ToolBounds {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_calls: 64,
        }
    }
}

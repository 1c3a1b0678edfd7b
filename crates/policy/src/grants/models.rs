//! `[plugins.<name>.llm]`: the models a plugin may use through the host.

use serde::Deserialize;

/// `[plugins.<name>.llm]`: models the plugin may use through the host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LlmSpec {
    #[serde(default)]
    models: Vec<String>,
    max_tokens: Option<u32>,
    /// Whether this plugin's completions may be served from (and stored in) the cache;
    /// default: `[cache] enabled`.
    cache: Option<bool>,
}

/// Which models a plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmGrant {
    pub models: Vec<String>,
    /// The most tokens one completion may ask for.
    pub max_tokens: Option<u32>,
    /// Whether the cache may answer it (`None`: as `[cache] enabled` says).
    pub cache: Option<bool>,
}

impl LlmSpec {
    pub(crate) fn grant(&self) -> LlmGrant {
        LlmGrant {
            models: self.models.clone(),
            max_tokens: self.max_tokens,
            cache: self.cache,
        }
    }
}

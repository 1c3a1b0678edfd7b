//! What a policy grants one plugin, one module per capability section of
//! `[plugins.<name>]`: each parses its section and resolves what it grants.

mod env;
mod fs;
mod models;
mod net;
mod tools;

pub use fs::FsMount;
pub use models::LlmGrant;
pub use net::NetGrant;
pub use tools::ToolBounds;

pub(crate) use env::{EnvSpec, VarName};
pub(crate) use fs::FsSpec;
pub(crate) use models::LlmSpec;
pub(crate) use net::NetSpec;
pub(crate) use tools::{ToolBoundsSpec, ToolsSpec};

use crate::file::PluginSection;

/// Everything a policy grants one plugin. Nothing granted means nothing reachable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub net: Option<NetGrant>,
    /// Host environment variables passed through (when set).
    pub env: Vec<String>,
    /// Secrets injected as environment variables.
    pub secrets: Vec<String>,
    /// Preopened directories.
    pub fs: Vec<FsMount>,
    /// Tools it may call through the host, by name.
    pub tools: Vec<String>,
    pub llm: Option<LlmGrant>,
    /// Its calls are never served from the cache of pure calls (`cache = false`).
    pub no_cache: bool,
}

impl Grants {
    /// Takes in what one policy file's section (written in `file`) grants: the last file
    /// that grants a capability decides it.
    pub(crate) fn apply(&mut self, file: &str, section: &PluginSection) {
        if let Some(env) = &section.env {
            self.env = env.names();
        }
        if let Some(secrets) = &section.secrets {
            self.secrets = secrets.iter().map(|v| v.0.clone()).collect();
        }
        if let Some(fs) = &section.fs {
            self.fs = fs.mounts(file);
        }
        if let Some(tools) = &section.tools {
            self.tools = tools.call.clone();
        }
        if let Some(llm) = &section.llm {
            self.llm = Some(llm.grant());
        }
        if let Some(net) = &section.net {
            self.net = Some(net.grant(file));
        }
        if let Some(cache) = section.cache {
            self.no_cache = !cache;
        }
    }

    /// Whether a call under these grants can reach anything outside its sandbox: the
    /// network, files, the environment, secrets, models or other tools.
    pub fn reach_the_world(&self) -> bool {
        self.net.is_some()
            || !self.env.is_empty()
            || !self.secrets.is_empty()
            || !self.fs.is_empty()
            || !self.tools.is_empty()
            || self.llm.is_some()
    }
}

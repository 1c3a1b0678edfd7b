//! The library face: a `Host` loads plugins and calls them under policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use wasmtime::component::InstancePre;

use crate::bindings::types::{PlannerInfo, PromptInfo, ToolInfo};
use crate::bindings::{planner_api, prompt_api, tool_api};
use crate::error::Error;
use crate::loader::cache::CompileCache;
use crate::loader::trust::AcceptUnsigned;
use crate::loader::world::World;
use crate::loader::{Loaded, Loader};
use crate::policy::{LimitsSpec, Policy, ResolvedLimits};
use crate::sandbox::limits::{LimitExceeded, OutputStream};
use crate::sandbox::{Outcome, Sandbox, SandboxError, Usage};
use crate::schema::{Direction, ToolSchemas};
use crate::state::HostState;

/// How to build a `Host`.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// A policy file layered over the built-in defaults.
    pub policy: Option<PathBuf>,
    /// Limits from the command line, overriding every policy.
    pub limits: LimitsSpec,
    /// Where compiled components are cached; `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
}

/// What a plugin says about itself, by world.
#[derive(Debug, Clone)]
pub enum Info {
    Tool(ToolInfo),
    Prompt(PromptInfo),
    Planner(PlannerInfo),
}

impl Info {
    pub fn name(&self) -> &str {
        match self {
            Info::Tool(i) => &i.name,
            Info::Prompt(i) => &i.name,
            Info::Planner(i) => &i.name,
        }
    }

    pub fn version(&self) -> &str {
        match self {
            Info::Tool(i) => &i.version,
            Info::Prompt(i) => &i.version,
            Info::Planner(i) => &i.version,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            Info::Tool(i) => &i.description,
            Info::Prompt(i) => &i.description,
            Info::Planner(i) => &i.description,
        }
    }
}

/// A loaded, described plugin, ready to be called any number of times.
pub struct Plugin {
    pub loaded: Loaded,
    pub info: Info,
    name: Arc<str>,
    pre: InstancePre<HostState>,
    entry: Entry,
    /// Only tools have schemas the host enforces.
    schemas: Option<ToolSchemas>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a plugin's exports are, looked up once at load.
enum Entry {
    Tool(tool_api::GuestIndices),
    Prompt(prompt_api::GuestIndices),
    Planner(planner_api::GuestIndices),
}

impl Entry {
    fn new(world: World, pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(match world {
            World::Tool => Entry::Tool(tool_api::GuestIndices::new(pre)?),
            World::Prompt => Entry::Prompt(prompt_api::GuestIndices::new(pre)?),
            World::Planner => Entry::Planner(planner_api::GuestIndices::new(pre)?),
        })
    }
}

/// A successful tool call.
#[derive(Debug)]
pub struct ToolCall {
    pub output: Value,
    pub usage: Usage,
}

pub struct Host {
    sandbox: Sandbox,
    loader: Loader,
    policy: Policy,
    overrides: LimitsSpec,
}

impl Host {
    pub fn new(options: HostOptions) -> Result<Self, Error> {
        let policy = match &options.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::builtin(),
        };
        let sandbox = Sandbox::new().map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cache = match &options.cache_dir {
            Some(dir) => CompileCache::new(dir, sandbox.engine()),
            None => CompileCache::disabled(),
        };
        Ok(Self {
            sandbox,
            loader: Loader::new(cache, Box::new(AcceptUnsigned)),
            policy,
            overrides: options.limits,
        })
    }

    /// The limits `plugin` runs under.
    pub fn limits_for(&self, plugin: &str) -> ResolvedLimits {
        self.policy.limits_for(plugin, &self.overrides)
    }

    /// Loads, checks, links and describes the component at `path`.
    pub async fn load(&self, path: &Path) -> Result<Plugin, Error> {
        let loaded = self.loader.load(self.sandbox.engine(), path)?;
        let pre = self
            .sandbox
            .prepare(&loaded.component)
            .map_err(|e| Error::BadInfo {
                path: path.to_owned(),
                reason: format!(
                    "its imports do not match what this host provides ({}); rebuild it against \
                 this version of wit/",
                    crate::loader::one_line(&format!("{e:#}"))
                ),
            })?;
        let entry = Entry::new(loaded.shape.world, &pre).map_err(|e| Error::BadInfo {
            path: path.to_owned(),
            reason: crate::loader::one_line(&format!("{e:#}")),
        })?;
        let info = self.describe(path, &pre, &entry).await?;
        let bad_info = |reason: String| Error::BadInfo {
            path: path.to_owned(),
            reason,
        };
        check_name(info.name()).map_err(bad_info)?;
        semver::Version::parse(info.version()).map_err(|e| {
            bad_info(format!(
                "its version '{}' is not semver ({e})",
                info.version()
            ))
        })?;
        let schemas = match &info {
            Info::Tool(t) => Some(
                ToolSchemas::compile(&t.input_schema, &t.output_schema)
                    .map_err(|e| bad_info(e.to_string()))?,
            ),
            Info::Prompt(_) | Info::Planner(_) => None,
        };
        Ok(Plugin {
            name: info.name().into(),
            loaded,
            info,
            pre,
            entry,
            schemas,
        })
    }

    /// Calls `describe()` under the policy's default limits.
    async fn describe(
        &self,
        path: &Path,
        pre: &InstancePre<HostState>,
        entry: &Entry,
    ) -> Result<Info, Error> {
        let limits = self.policy.limits_for("", &LimitsSpec::default());
        let who: Arc<str> = path.display().to_string().into();
        let outcome = self
            .sandbox
            .run(pre, &who, &limits.limits, async |store, instance| {
                Ok(match entry {
                    Entry::Tool(e) => Info::Tool(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                    Entry::Prompt(e) => Info::Prompt(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                    Entry::Planner(e) => Info::Planner(
                        e.load(&mut *store, instance)?
                            .call_describe(&mut *store)
                            .await?,
                    ),
                })
            })
            .await;
        outcome.result.map_err(|error| Error::Sandbox {
            who: format!("{} (while describing itself)", path.display()),
            error,
            limits: Box::new(limits),
        })
    }

    /// Calls a tool with `input` (JSON text): validates the input, runs `invoke` in a fresh
    /// sandbox under the tool's limits, then checks the output's size, syntax and schema.
    pub async fn call_tool(&self, plugin: &Plugin, input: &str) -> Result<ToolCall, Error> {
        let (Entry::Tool(entry), Some(schemas)) = (&plugin.entry, &plugin.schemas) else {
            return Err(Error::WrongWorld {
                path: plugin.loaded.source.clone(),
                world: plugin.loaded.shape.world,
                what: "only tools can be called with input; prompts and planners run inside a workflow",
            });
        };
        let tool = || plugin.name().to_string();
        let document: Value = serde_json::from_str(input).map_err(|e| Error::InputNotJson {
            reason: e.to_string(),
        })?;
        schemas
            .check(Direction::Input, &document)
            .map_err(|error| Error::InputSchema {
                tool: tool(),
                error,
            })?;

        let limits = self.limits_for(plugin.name());
        let Outcome { result, usage, .. } = self
            .sandbox
            .run(
                &plugin.pre,
                &plugin.name,
                &limits.limits,
                async |store, instance| {
                    entry
                        .load(&mut *store, instance)?
                        .call_invoke(&mut *store, input)
                        .await
                },
            )
            .await;
        let sandbox_error = |error| Error::Sandbox {
            who: format!("tool '{}'", plugin.name()),
            error,
            limits: Box::new(limits.clone()),
        };
        let output = result
            .map_err(sandbox_error)?
            .map_err(|error| Error::ToolFailed {
                tool: tool(),
                error,
            })?;
        if output.len() as u64 > limits.limits.output {
            return Err(sandbox_error(SandboxError::Limit(LimitExceeded::Output {
                limit: limits.limits.output,
                stream: OutputStream::Result,
            })));
        }
        let output: Value = serde_json::from_str(&output).map_err(|e| Error::OutputNotJson {
            tool: tool(),
            reason: e.to_string(),
        })?;
        schemas
            .check(Direction::Output, &output)
            .map_err(|error| Error::OutputSchema {
                tool: tool(),
                error,
            })?;
        Ok(ToolCall { output, usage })
    }
}

/// Plugin names key policy sections, so they must be plain identifiers.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "its name '{}' must be 1-64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter",
            crate::sandbox::truncate(name, 80)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_policy_keys() {
        assert!(check_name("json-query").is_ok());
        assert!(check_name("v2.tool_x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Calc").is_err());
        assert!(check_name("9lives").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }
}

//! A plugin: a component that passed every check at load, described by itself, linked
//! once and ready to be called any number of times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use baton_core::source::is_oci;
use baton_core::text::{one_line, truncate};
use baton_effects::LiveGate;
use baton_policy::explain::Item;
use baton_policy::requests;
use baton_policy::{Grants, LimitsSpec, Subject};
use baton_registry::OciReference;
use serde_json::Value;
use wasmtime::component::InstancePre;

use crate::bindings::types::{PlannerInfo, PromptInfo, ToolInfo};
use crate::bindings::{planner_api, prompt_api, tool_api};
use crate::capability::Grant;
use crate::capability::HostState;
use crate::error::Error;
use crate::host::Host;
use crate::loader::world::World;
use crate::loader::{LoadError, Loaded};
use crate::schema::{Direction, ToolSchemas};
use crate::trust::{Provenance, Sidecars, TrustCheck};
use baton_sandbox::Usage;

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
    pub(crate) name: Arc<str>,
    /// `loaded.digest` as text, as policies name it.
    pub(crate) digest: String,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) entry: Entry,
    /// Only tools have schemas the host enforces.
    pub(crate) schemas: Option<ToolSchemas>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What policy sections are resolved for: its digest and, if its signature verified,
    /// its signer.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            digest: &self.digest,
            signer: match &self.loaded.provenance {
                Provenance::Verified(v) => Some(&v.name),
                Provenance::Unverified => None,
            },
        }
    }
}

/// Where a plugin's exports are, looked up once at load.
pub enum Entry {
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

impl Plugin {
    /// Where its exports are.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Whether it is a tool (only tools have schemas).
    pub fn is_tool(&self) -> bool {
        self.schemas.is_some()
    }

    /// Whether it is a prompt.
    pub fn is_prompt(&self) -> bool {
        matches!(self.entry, Entry::Prompt(_))
    }
}

impl Host {
    /// Loads, checks, links and describes the component at `path`, or the one an `oci://`
    /// reference names (pulled into the cache first, then verified there like any file), to
    /// run it: a component its policy does not grant what it requests is held (refused).
    ///
    /// `oci://HOST/REPO:^1.2` names the newest version among the repository's tags that
    /// matches, verifies and is not held.
    pub async fn load(&self, path: &Path) -> Result<Plugin, Error> {
        if let Some(reference) = ranged(path)? {
            return Ok(self.newest(&reference, true).await?.0);
        }
        let plugin = self.examine_one(path).await?;
        self.check_held(&plugin)?;
        Ok(plugin)
    }

    /// Like `load`, but a held component loads too, to be inspected, explained or signed.
    pub async fn examine(&self, path: &Path) -> Result<Plugin, Error> {
        match ranged(path)? {
            Some(reference) => Ok(self.newest(&reference, false).await?.0),
            None => self.examine_one(path).await,
        }
    }

    /// A file, or one component in a registry, loaded whether or not it is held.
    async fn examine_one(&self, path: &Path) -> Result<Plugin, Error> {
        let pulled;
        let path = match path.to_str().filter(|_| is_oci(path)) {
            Some(reference) => {
                pulled = self.pull(reference).await?;
                pulled.path.as_path()
            }
            None => path,
        };
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.examine_bytes(path, &bytes).await
    }

    /// Loads, checks, links and describes `bytes`, with the signatures found beside `path`
    /// (which also names them in messages), to run them: held as `load` says.
    pub async fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Plugin, Error> {
        let plugin = self.examine_bytes(path, bytes).await?;
        self.check_held(&plugin)?;
        Ok(plugin)
    }

    /// Like `load_bytes`, but a held component loads too.
    pub async fn examine_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Plugin, Error> {
        self.load_checked(path, bytes, &Sidecars::beside(path), &self.trust)
            .await
    }

    /// The newest version `reference` names that verifies (and, if `runnable`, is not held),
    /// with the reference to its tag; each one passed over is said why.
    pub async fn newest(
        &self,
        reference: &OciReference,
        runnable: bool,
    ) -> Result<(Plugin, String), Error> {
        let candidates = self.registry.versions(reference).await?;
        let mut passed = Vec::new();
        for candidate in &candidates {
            let plugin = match self.examine_one(Path::new(candidate)).await {
                Ok(plugin) => plugin,
                Err(e @ Error::Load(_)) => {
                    tracing::warn!("{candidate} passed over: {e}");
                    passed.push(format!("{candidate} does not verify"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if runnable && let Err(e) = self.check_held(&plugin) {
                tracing::warn!("{candidate} passed over: {e}");
                passed.push(format!("{candidate} is held"));
                continue;
            }
            tracing::info!("{candidate}: the newest version that verifies and may run");
            return Ok((plugin, candidate.clone()));
        }
        let versions = reference.versions.as_ref().map(ToString::to_string);
        Err(Error::NoVersion {
            requirement: reference.at_tag(&versions.unwrap_or_default()),
            found: match passed.is_empty() {
                true => "no tag of the repository matches".into(),
                false => passed.join("; "),
            },
        })
    }

    /// What `plugin` requests that its policy does not grant it.
    pub fn unmet_requests(&self, plugin: &Plugin) -> Vec<Item> {
        let grants = self.policy.grants_for(plugin.name(), plugin.subject());
        plugin.loaded.requests.unmet(&grants)
    }

    /// Refuses a component whose requests its policy does not cover.
    fn check_held(&self, plugin: &Plugin) -> Result<(), Error> {
        let unmet = self.unmet_requests(plugin);
        if unmet.is_empty() {
            return Ok(());
        }
        Err(Error::Held {
            path: plugin.loaded.source.clone(),
            name: plugin.name().to_string(),
            version: plugin.info.version().to_string(),
            unmet: requests::list(&unmet),
        })
    }

    /// Loads `bytes` if `trust` accepts them with `sidecars`.
    pub(crate) async fn load_checked(
        &self,
        path: &Path,
        bytes: &[u8],
        sidecars: &Sidecars,
        trust: &dyn TrustCheck,
    ) -> Result<Plugin, Error> {
        let loaded = self
            .loader
            .load_bytes(self.runner.engine(), path, bytes, sidecars, trust)?;
        let pre = self
            .runner
            .prepare(&loaded.component)
            .map_err(|e| Error::BadInfo {
                path: path.to_owned(),
                reason: format!(
                    "its imports do not match what this host provides ({}); rebuild it against \
                 this version of wit/",
                    one_line(&format!("{e:#}"))
                ),
            })?;
        let entry = Entry::new(loaded.shape.world, &pre).map_err(|e| Error::BadInfo {
            path: path.to_owned(),
            reason: one_line(&format!("{e:#}")),
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
            digest: loaded.digest.to_string(),
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
        let limits = self.policy.limits_for("", "", &LimitsSpec::default());
        let who: Arc<str> = path.display().to_string().into();
        // Loading is not part of any run: describe's effects are performed but not recorded.
        let gate: Arc<dyn baton_effects::Gate> = LiveGate::unrecorded("", "describe".into());
        let grant = Grant {
            plugin: &who,
            gate: &gate,
            flow: &crate::flow::Flow::new(crate::flow::Labels::public()),
            grants: &Grants::default(),
            secrets: &[],
            preopens: &[],
        };
        let outcome = self
            .runner
            .run(
                pre,
                grant,
                &limits.limits,
                &CancellationToken::new(),
                None,
                async |store, instance| {
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
                },
            )
            .await;
        outcome.result.map_err(|error| Error::Sandbox {
            who: format!("{} (while describing itself)", path.display()),
            error,
            limits: Box::new(limits),
        })
    }
}

/// Refuses input that is not JSON or breaks the tool's input schema.
pub fn check_input(plugin: &Plugin, input: &str) -> Result<(), Error> {
    let Some(schemas) = &plugin.schemas else {
        return Err(wrong_world(plugin));
    };
    let document: Value = serde_json::from_str(input).map_err(|e| Error::InputNotJson {
        reason: e.to_string(),
    })?;
    schemas
        .check(Direction::Input, &document)
        .map_err(|error| Error::InputSchema {
            tool: plugin.name().to_string(),
            error,
        })
}

/// `path` as an `oci://` reference naming versions, if it is one.
fn ranged(path: &Path) -> Result<Option<OciReference>, Error> {
    let Some(text) = path.to_str().filter(|_| is_oci(path)) else {
        return Ok(None);
    };
    let reference = OciReference::parse(text)?;
    Ok(reference.versions.is_some().then_some(reference))
}

pub(crate) fn wrong_world(plugin: &Plugin) -> Error {
    Error::WrongWorld {
        path: plugin.loaded.source.clone(),
        world: plugin.loaded.shape.world,
        what: "only tools are called with input and prompts rendered with variables; planners \
               run a workflow (`baton run --planner`)",
    }
}

/// The tools among `plugins`, by name.
pub fn tools_by_name(
    plugins: impl IntoIterator<Item = Arc<Plugin>>,
) -> BTreeMap<String, Arc<Plugin>> {
    plugins
        .into_iter()
        .filter(|p| p.schemas.is_some())
        .map(|p| (p.name().to_string(), p))
        .collect()
}

/// The components (`*.wasm` files) in `dir`, in name order.
pub fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let unreadable = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
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
            truncate(name, 80)
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

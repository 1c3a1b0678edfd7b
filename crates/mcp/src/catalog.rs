//! The tools an MCP server offers: every tool component in the given directories that loads
//! (its signature verified before it is compiled, exactly as `baton call` does), described
//! for MCP clients. A component that does not load is left out, and the reason logged.
//!
//! The directories can be scanned again (when they change): a new or replaced file is
//! verified before it is served, a removed one stops being served, and a file that does not
//! verify changes nothing (a tool it would replace stays as it was last verified).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use baton_core::Digest;
use baton_policy::Grants;
use baton_runtime::plugin::wasm_files;
use baton_runtime::{Error, Host, Info, Plugin};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};

/// The tools served, by name, and the directories they come from.
pub struct Catalog {
    dirs: Vec<PathBuf>,
    state: RwLock<State>,
}

#[derive(Clone, Default)]
struct State {
    tools: BTreeMap<String, Entry>,
    /// The digest of every file last loaded from the directories (tools and other worlds).
    files: BTreeMap<PathBuf, Digest>,
}

/// One tool served: the component, how MCP clients see it, and the file it came from.
#[derive(Clone)]
pub struct Entry {
    pub plugin: Arc<Plugin>,
    pub definition: Tool,
    pub path: PathBuf,
}

/// A component left out, and why.
#[derive(Debug)]
pub struct LeftOut {
    pub path: PathBuf,
    pub reason: String,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whether the tools served changed (one added, replaced or removed).
    pub changed: bool,
    pub left_out: Vec<LeftOut>,
}

impl Catalog {
    /// Loads every tool component in `dirs` and describes it. Components that do not load
    /// are returned with the reason, not served; components of other worlds are passed over.
    /// A directory that cannot be read is an error.
    pub async fn load(host: &Host, dirs: &[PathBuf]) -> Result<(Self, Vec<LeftOut>), Error> {
        let catalog = Self {
            dirs: dirs.to_vec(),
            state: RwLock::default(),
        };
        let scan = catalog.scan(host).await?;
        Ok((catalog, scan.left_out))
    }

    /// The directories served.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Scans the directories again, loading what is new or changed.
    pub async fn scan(&self, host: &Host) -> Result<Scan, Error> {
        let mut found = Vec::new();
        for dir in &self.dirs {
            found.extend(wasm_files(dir)?);
        }
        let before = self.state().clone();
        let mut state = before.clone();
        let present: BTreeSet<&PathBuf> = found.iter().collect();
        state.files.retain(|path, _| present.contains(path));
        state.tools.retain(|_, entry| present.contains(&entry.path));
        let mut left_out = Vec::new();
        for path in &found {
            if let Err(reason) = state.load(host, path).await {
                left_out.push(LeftOut {
                    path: path.clone(),
                    reason,
                });
            }
        }
        let served = |state: &State| -> Vec<(String, Digest)> {
            let tools = state.tools.iter();
            tools
                .map(|(n, e)| (n.clone(), e.plugin.loaded.digest))
                .collect()
        };
        let changed = served(&before) != served(&state);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(Scan { changed, left_out })
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        self.state().tools.get(name).cloned()
    }

    /// The MCP definitions of the tools, in name order.
    pub fn definitions(&self) -> Vec<Tool> {
        let state = self.state();
        state.tools.values().map(|e| e.definition.clone()).collect()
    }

    /// The tools served now, by name.
    pub fn tools(&self) -> BTreeMap<String, Arc<Plugin>> {
        let state = self.state();
        let tools = state.tools.iter();
        tools.map(|(n, e)| (n.clone(), e.plugin.clone())).collect()
    }
}

impl State {
    /// Loads the file at `path` unless it is what was loaded from there last; the reason
    /// when it does not load (what it would replace is kept).
    async fn load(&mut self, host: &Host, path: &Path) -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let digest = Digest::of(&bytes);
        if self.files.get(path) == Some(&digest) {
            return Ok(());
        }
        let plugin = host
            .load_bytes(path, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        if !plugin.is_tool() {
            tracing::debug!("{} is not a tool; not served", path.display());
            self.files.insert(path.to_owned(), digest);
            return Ok(());
        }
        let name = plugin.name().to_string();
        if let Some(other) = self.tools.get(&name).filter(|e| e.path != path) {
            return Err(format!(
                "a tool named '{name}' is already served from {}; rename one of them",
                other.path.display()
            ));
        }
        // The tool this file held before, under whatever name.
        self.tools.retain(|_, entry| entry.path != path);
        let grants = host.policy().grants_for(plugin.name(), plugin.subject());
        let definition = definition(&plugin, &grants);
        let entry = Entry {
            plugin: Arc::new(plugin),
            definition,
            path: path.to_owned(),
        };
        self.tools.insert(name, entry);
        self.files.insert(path.to_owned(), digest);
        Ok(())
    }
}

/// How an MCP client sees `plugin`: its name, description and schemas from `describe()`,
/// and hints derived from what `grants` lets it reach.
fn definition(plugin: &Plugin, grants: &Grants) -> Tool {
    let Info::Tool(info) = &plugin.info else {
        unreachable!("only tools are catalogued")
    };
    let mut tool = Tool::new(
        info.name.clone(),
        info.description.clone(),
        Arc::new(schema(&info.input_schema)),
    );
    tool.output_schema = Some(Arc::new(schema(&info.output_schema)));
    tool.annotations = Some(annotations(grants));
    tool
}

/// A schema `describe()` gave (checked at load) as a JSON object; a schema that is not an
/// object (`true`) accepts anything, as the empty object does.
fn schema(text: &str) -> JsonObject {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => JsonObject::new(),
    }
}

/// Methods that change nothing on the server they reach.
const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// What a tool's grants say about it: read-only when it may write no directory and send no
/// request that changes anything; open-world when it may reach the network at all.
fn annotations(grants: &Grants) -> ToolAnnotations {
    let writes_files = grants.fs.iter().any(|m| m.writable);
    let changes_remote = grants.net.as_ref().is_some_and(|net| {
        net.methods
            .iter()
            .any(|m| !SAFE_METHODS.contains(&m.as_str()))
    });
    ToolAnnotations::new()
        .read_only(!writes_files && !changes_remote)
        .open_world(grants.net.is_some())
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

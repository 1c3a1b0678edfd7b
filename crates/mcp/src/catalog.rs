//! The tools and prompts an MCP server offers: every tool and prompt component in the given
//! directories that loads (its signature verified before it is compiled, exactly as
//! `baton call` does), described for MCP clients. A component that does not load is left
//! out, and the reason logged.
//!
//! The directories can be scanned again (when they change): a new or replaced file is
//! verified before it is served, a removed one stops being served, and a file that does not
//! verify changes nothing (a tool it would replace stays as it was last verified).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use baton_core::Digest;
use baton_policy::llm::DEFAULT_EMBEDDING_MODEL;
use baton_runtime::bindings::types::TokenBudget;
use baton_runtime::plugin::wasm_files;
use baton_runtime::{Error, Host, Info, Plugin};
use rmcp::model::{Prompt, Tool};

use crate::definition::{prompt_definition, tool_definition};
use crate::search::ToolSearch;

/// With more tools than this, `tools/list` offers `search_tools` instead (as a workflow's
/// planner sees only the tools closest to its task).
pub const DEFAULT_TOOL_SEARCH_TOP_K: usize = 16;

/// The tools and prompts served, by name, and the directories they come from.
pub struct Catalog {
    dirs: Vec<PathBuf>,
    state: RwLock<State>,
    /// What prompts are rendered within.
    prompt_budget: TokenBudget,
    /// How tools are searched when there are too many to list.
    search: ToolSearch,
}

/// The budget prompts are rendered within unless the server is told otherwise: the model of
/// the default policy, and a context it fits in.
pub fn default_prompt_budget() -> TokenBudget {
    TokenBudget {
        model: "smollm2".into(),
        max_tokens: 4096,
    }
}

#[derive(Clone, Default)]
struct State {
    tools: BTreeMap<String, Entry<Tool>>,
    prompts: BTreeMap<String, Entry<Prompt>>,
    /// The digest of every file last loaded from the directories (tools and other worlds).
    files: BTreeMap<PathBuf, Digest>,
}

/// One tool or prompt served: the component, how MCP clients see it (`D`), and the file it
/// came from.
#[derive(Clone)]
pub struct Entry<D> {
    pub plugin: Arc<Plugin>,
    pub definition: D,
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
    pub tools_changed: bool,
    /// Whether the prompts served changed.
    pub prompts_changed: bool,
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
            prompt_budget: default_prompt_budget(),
            search: ToolSearch::new(DEFAULT_TOOL_SEARCH_TOP_K, DEFAULT_EMBEDDING_MODEL.into()),
        };
        let scan = catalog.scan(host).await?;
        Ok((catalog, scan.left_out))
    }

    /// Prompts are rendered within `budget`.
    pub fn with_prompt_budget(mut self, budget: TokenBudget) -> Self {
        self.prompt_budget = budget;
        self
    }

    pub fn prompt_budget(&self) -> &TokenBudget {
        &self.prompt_budget
    }

    /// Tools are searched with `search` when there are too many to list.
    pub fn with_tool_search(mut self, search: ToolSearch) -> Self {
        self.search = search;
        self
    }

    pub fn search(&self) -> &ToolSearch {
        &self.search
    }

    /// How many tools are served.
    pub fn tool_count(&self) -> usize {
        self.state().tools.len()
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
        state
            .prompts
            .retain(|_, entry| present.contains(&entry.path));
        let mut left_out = Vec::new();
        for path in &found {
            if let Err(reason) = state.load(host, path).await {
                left_out.push(LeftOut {
                    path: path.clone(),
                    reason,
                });
            }
        }
        let scan = Scan {
            tools_changed: served(&before.tools) != served(&state.tools),
            prompts_changed: served(&before.prompts) != served(&state.prompts),
            left_out,
        };
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(scan)
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tool(&self, name: &str) -> Option<Entry<Tool>> {
        self.state().tools.get(name).cloned()
    }

    pub fn prompt(&self, name: &str) -> Option<Entry<Prompt>> {
        self.state().prompts.get(name).cloned()
    }

    /// The MCP definitions of the prompts, in name order.
    pub fn prompt_definitions(&self) -> Vec<Prompt> {
        let state = self.state();
        state
            .prompts
            .values()
            .map(|e| e.definition.clone())
            .collect()
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
        // What the file held before, in whichever world, gives way to what it holds now.
        match &plugin.info {
            Info::Tool(_) => {
                let grants = host.policy().grants_for(plugin.name(), plugin.subject());
                let definition = tool_definition(&plugin, &grants);
                place(&mut self.tools, "tool", plugin, definition, path)?;
                self.prompts.retain(|_, e| e.path != path);
            }
            Info::Prompt(_) => {
                let definition = prompt_definition(&plugin);
                place(&mut self.prompts, "prompt", plugin, definition, path)?;
                self.tools.retain(|_, e| e.path != path);
            }
            Info::Planner(_) => {
                tracing::debug!("{} is a planner; not served", path.display());
                self.tools.retain(|_, e| e.path != path);
                self.prompts.retain(|_, e| e.path != path);
            }
        }
        self.files.insert(path.to_owned(), digest);
        Ok(())
    }
}

/// Serves `plugin` (a `what`) from `path` under its name, in place of whatever `path` held.
fn place<D>(
    served: &mut BTreeMap<String, Entry<D>>,
    what: &str,
    plugin: Plugin,
    definition: D,
    path: &Path,
) -> Result<(), String> {
    let name = plugin.name().to_string();
    if let Some(other) = served.get(&name).filter(|e| e.path != path) {
        return Err(format!(
            "a {what} named '{name}' is already served from {}; rename one of them",
            other.path.display()
        ));
    }
    served.retain(|_, entry| entry.path != path);
    let entry = Entry {
        plugin: Arc::new(plugin),
        definition,
        path: path.to_owned(),
    };
    served.insert(name, entry);
    Ok(())
}

/// The names and digests of what is served, to tell whether it changed.
fn served<D>(entries: &BTreeMap<String, Entry<D>>) -> Vec<(&String, Digest)> {
    let entries = entries.iter();
    entries.map(|(n, e)| (n, e.plugin.loaded.digest)).collect()
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

//! The tools an MCP server offers: every tool component in the given directories that loads
//! (its signature verified before it is compiled, exactly as `baton call` does), described
//! for MCP clients. A component that does not load is left out, and the reason logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use baton_policy::Grants;
use baton_runtime::plugin::wasm_files;
use baton_runtime::{Error, Host, Info, Plugin};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};

/// The tools served, by name.
#[derive(Default)]
pub struct Catalog {
    tools: BTreeMap<String, Entry>,
}

/// One tool served: the component, and how MCP clients see it.
pub struct Entry {
    pub plugin: Arc<Plugin>,
    pub definition: Tool,
}

/// A component left out, and why.
#[derive(Debug)]
pub struct LeftOut {
    pub path: PathBuf,
    pub reason: String,
}

impl Catalog {
    /// Loads every tool component in `dirs` into `host` (so tools may call each other) and
    /// describes it. Components that do not load are returned with the reason, not served;
    /// components of other worlds are passed over. A directory that cannot be read is an
    /// error.
    pub async fn load(host: &mut Host, dirs: &[PathBuf]) -> Result<(Self, Vec<LeftOut>), Error> {
        let mut catalog = Catalog::default();
        let mut left_out = Vec::new();
        for dir in dirs {
            for path in wasm_files(dir)? {
                match host.load(&path).await {
                    Ok(plugin) if plugin.is_tool() => {
                        let name = plugin.name().to_string();
                        host.add_tool(plugin)?;
                        let plugin = host.tool(&name).expect("the tool was just added").clone();
                        let definition = definition(
                            &plugin,
                            &host.policy().grants_for(plugin.name(), plugin.subject()),
                        );
                        catalog.tools.insert(name, Entry { plugin, definition });
                    }
                    Ok(_) => tracing::debug!("{} is not a tool; not served", path.display()),
                    Err(error) => {
                        tracing::warn!("{} is left out: {error}", path.display());
                        left_out.push(LeftOut {
                            path,
                            reason: error.to_string(),
                        });
                    }
                }
            }
        }
        Ok((catalog, left_out))
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.tools.get(name)
    }

    /// The MCP definitions of the tools, in name order.
    pub fn definitions(&self) -> Vec<Tool> {
        self.tools.values().map(|e| e.definition.clone()).collect()
    }

    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.tools.values().map(|e| &e.plugin)
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

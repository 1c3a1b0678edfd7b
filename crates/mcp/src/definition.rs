//! How MCP clients see Baton's components: a tool's definition (with hints derived from its
//! grants), a prompt's (with arguments from its variables' schema), and a prompt's
//! variables from the string arguments a client sends.

use std::collections::BTreeSet;
use std::sync::Arc;

use baton_policy::Grants;
use baton_runtime::{Info, Plugin};
use rmcp::model::{JsonObject, Prompt, PromptArgument, Tool, ToolAnnotations};

/// How an MCP client sees `plugin`: its name, description and schemas from `describe()`,
/// and hints derived from what `grants` lets it reach.
pub fn tool_definition(plugin: &Plugin, grants: &Grants) -> Tool {
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

/// How an MCP client sees a prompt: its name and description, and an argument for each
/// top-level property of its variables' schema (MCP prompt arguments are strings; see
/// [`vars`]).
pub fn prompt_definition(plugin: &Plugin) -> Prompt {
    let Info::Prompt(info) = &plugin.info else {
        unreachable!("only prompts are catalogued as prompts")
    };
    let schema = schema(&info.vars_schema);
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str())
        .collect();
    let properties = schema.get("properties").and_then(|p| p.as_object());
    let arguments = properties
        .into_iter()
        .flatten()
        .map(|(name, property)| {
            let mut argument =
                PromptArgument::new(name).with_required(required.contains(name.as_str()));
            if let Some(description) = property.get("description").and_then(|d| d.as_str()) {
                argument = argument.with_description(description);
            }
            argument
        })
        .collect();
    Prompt::new(&info.name, Some(&info.description), Some(arguments))
}

/// A prompt's variables (JSON text) from an MCP client's string arguments: an argument the
/// schema declares a string is taken as it is, any other is read as JSON (a number, a list,
/// an object), or as a string when it is not JSON.
pub fn vars(plugin: &Plugin, arguments: &JsonObject) -> String {
    let Info::Prompt(info) = &plugin.info else {
        return serde_json::Value::Object(arguments.clone()).to_string();
    };
    let schema = schema(&info.vars_schema);
    let declared = |name: &str| schema.get("properties").and_then(|p| p.get(name)).cloned();
    let vars: JsonObject = arguments
        .iter()
        .map(|(name, value)| {
            let is_string = declared(name).is_some_and(|p| p["type"] == "string");
            let value = match value.as_str() {
                Some(text) if !is_string => serde_json::from_str(text).unwrap_or(value.clone()),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(vars).to_string()
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

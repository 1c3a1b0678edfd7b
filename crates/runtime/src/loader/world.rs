//! Which Baton world a component targets, and whether it imports only what Baton provides.

use std::fmt;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The three kinds of plugin, named after their worlds in `wit/worlds.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Tool,
    Prompt,
    Planner,
}

impl World {
    const ALL: [World; 3] = [World::Tool, World::Prompt, World::Planner];

    /// The interface a component of this world exports.
    pub fn export(self) -> &'static str {
        match self {
            World::Tool => "baton:plugin/tool-api@0.1.0",
            World::Prompt => "baton:plugin/prompt-api@0.1.0",
            World::Planner => "baton:plugin/planner-api@0.1.0",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Tool => "tool",
            World::Prompt => "prompt",
            World::Planner => "planner",
        })
    }
}

fn import_allowed(name: &str) -> bool {
    let Some((path, version)) = name.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    // What the host's capabilities provide, and nothing else.
    crate::capability::provided().any(|provided| {
        provided.package == package
            && provided.names.contains(&interface)
            && version.starts_with(provided.version)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    #[error(
        "it exports {}, which is not a Baton world; a plugin must export one of {} (see wit/worlds.wit)",
        list_or_nothing(.exports),
        World::ALL.map(World::export).join(", ")
    )]
    Unknown { exports: Vec<String> },
    #[error("it exports more than one Baton world ({}); a plugin must be exactly one of them", .0.iter().map(World::to_string).collect::<Vec<_>>().join(", "))]
    Several(Vec<World>),
    #[error(
        "it imports '{import}', which Baton does not provide; plugins may import only baton:plugin \
         and the WASI 0.2 interfaces listed in docs/authoring.md"
    )]
    ForbiddenImport { import: String },
}

fn list_or_nothing(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// A component's world and its imports, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub world: World,
    pub imports: Vec<String>,
}

pub fn check(engine: &Engine, component: &Component) -> Result<Shape, WorldError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let worlds: Vec<World> = World::ALL
        .into_iter()
        .filter(|w| exports.iter().any(|e| e == w.export()))
        .collect();
    let world = match worlds.as_slice() {
        [] => return Err(WorldError::Unknown { exports }),
        [one] => *one,
        _ => return Err(WorldError::Several(worlds)),
    };
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    if let Some(import) = imports.iter().find(|i| !import_allowed(i)) {
        return Err(WorldError::ForbiddenImport {
            import: import.clone(),
        });
    }
    Ok(Shape { world, imports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baton_and_wasi_imports_are_allowed_by_interface_and_version() {
        assert!(import_allowed("baton:plugin/llm@0.1.0"));
        assert!(import_allowed("wasi:io/streams@0.2.6"));
        assert!(import_allowed("wasi:http/outgoing-handler@0.2.0"));
        // Linked, but always refused (see `capability::wasi`).
        assert!(import_allowed("wasi:sockets/tcp@0.2.9"));
        assert!(!import_allowed("wasi:sockets/tcp@0.3.0"));
        assert!(!import_allowed("wasi:io/streams@0.3.0"));
        assert!(!import_allowed("baton:plugin/llm@0.2.0"));
        assert!(!import_allowed("baton:plugin/secrets@0.1.0"));
        assert!(!import_allowed("testing:forbidden/shell"));
        assert!(!import_allowed("env"));
    }
}

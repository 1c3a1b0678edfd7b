//! A tool that imports `testing:forbidden/shell`, which no Baton host provides: the loader
//! must refuse it and name the import.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "testing:forbidden/forbidden-import",
    generate_all,
});

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};

struct Forbidden;

impl Guest for Forbidden {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "forbidden-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tries to run shell commands through an import no host should grant."
                .into(),
            input_schema: r#"{"type": "object"}"#.into(),
            output_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn invoke(_input: String) -> Result<String, ToolError> {
        Ok(testing::forbidden::shell::run("cat /etc/passwd"))
    }
}

export!(Forbidden);

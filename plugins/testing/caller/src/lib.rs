//! Test fixture: calls the tools it is given through the host (`baton:plugin/tools`) and
//! reports each answer, to prove what a policy's `tools.call` allows.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::tools;
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    calls: Vec<Call>,
}

#[derive(Deserialize)]
struct Call {
    tool: String,
    input: Value,
}

struct Caller;

impl Guest for Caller {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "caller".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Calls other tools through the host and reports their answers.".into(),
            input_schema: r#"{"type": "object", "required": ["calls"],
                "properties": {"calls": {"type": "array", "items": {"type": "object",
                "required": ["tool", "input"]}}}}"#
                .into(),
            output_schema: r#"{"type": "object", "required": ["answers"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let answers: Vec<Value> = input
            .calls
            .iter()
            .map(
                |call| match tools::call(&call.tool, &call.input.to_string()) {
                    Ok(output) => json!({ "ok": serde_json::from_str::<Value>(&output).ok() }),
                    Err(e) => json!({ "error": format!("{e:?}") }),
                },
            )
            .collect();
        Ok(json!({ "answers": answers }).to_string())
    }
}

export!(Caller);

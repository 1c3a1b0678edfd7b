//! Test fixture: performs the file operations it is given and reports each result, so that
//! tests can prove what a policy's directories allow — and that path traversal (`..`),
//! absolute paths and symlinks that lead outside them fail.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use std::io::Write;

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    ops: Vec<Op>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Read { path: String },
    Write { path: String, text: String },
    Append { path: String, text: String },
    List { path: String },
    Size { path: String },
    Mkdir { path: String },
    Remove { path: String },
    Readlink { path: String },
}

struct FsProbe;

impl Guest for FsProbe {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "fs-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Performs the file operations it is given and reports each result.".into(),
            input_schema: r#"{"type": "object", "required": ["ops"],
                "properties": {"ops": {"type": "array", "items": {"type": "object",
                "required": ["op", "path"]}}}}"#
                .into(),
            output_schema: r#"{"type": "object", "required": ["results"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let results: Vec<Value> = input.ops.iter().map(run).collect();
        Ok(json!({ "results": results }).to_string())
    }
}

fn run(op: &Op) -> Value {
    let result = match op {
        Op::Read { path } => std::fs::read_to_string(path).map(Value::from),
        Op::Write { path, text } => std::fs::write(path, text).map(|()| Value::Null),
        Op::Append { path, text } => std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map(|()| Value::Null),
        Op::List { path } => std::fs::read_dir(path).and_then(|entries| {
            let mut names = entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<Vec<_>, _>>()?;
            names.sort();
            Ok(names.into())
        }),
        Op::Size { path } => std::fs::metadata(path).map(|m| m.len().into()),
        Op::Mkdir { path } => std::fs::create_dir(path).map(|()| Value::Null),
        Op::Remove { path } => std::fs::remove_file(path).map(|()| Value::Null),
        Op::Readlink { path } => {
            std::fs::read_link(path).map(|target| Value::from(target.to_string_lossy()))
        }
    };
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(e) => json!({ "error": format!("{:?}", e.kind()), "message": e.to_string() }),
    }
}

export!(FsProbe);

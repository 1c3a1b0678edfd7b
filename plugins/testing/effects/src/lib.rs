//! Test fixture: reads the wall clock, the monotonic clock and random bytes, writes log
//! lines, and returns what it saw, so replay tests can check that every effect is served
//! from the record.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use baton::plugin::log::{Level, log};
use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    /// How many random bytes to draw.
    random_bytes: usize,
    /// How many log lines to write.
    logs: u64,
}

struct Effects;

impl Guest for Effects {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "effects".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reports the time, random bytes and its own log lines.".into(),
            input_schema: r#"{"type": "object", "required": ["random_bytes", "logs"],
                "properties": {"random_bytes": {"type": "integer", "minimum": 0, "maximum": 4096},
                               "logs": {"type": "integer", "minimum": 0}}}"#
                .into(),
            output_schema: r#"{"type": "object", "required": ["wall_ns", "elapsed_ns", "random"]}"#
                .into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let started = std::time::Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let mut random = vec![0u8; input.random_bytes];
        getrandom::fill(&mut random).map_err(|e| ToolError::Failed(e.to_string()))?;
        for i in 0..input.logs {
            log(Level::Info, &format!("line {i}"));
        }
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Ok(serde_json::json!({
            "wall_ns": wall.as_nanos() as u64,
            "elapsed_ns": started.elapsed().as_nanos() as u64,
            "random": hex,
        })
        .to_string())
    }
}

export!(Effects);

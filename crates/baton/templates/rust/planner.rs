//! `{{name}}`: a planner that calls one tool with the run's input and finishes with its
//! output (or, given no tools, finishes with the task). Change `next` to make it yours: it is
//! asked again after every step, with the results so far.

wit_bindgen::generate!({ path: "wit", world: "baton:plugin/planner" });

use baton::plugin::types::{Decision, Error, RunState, Step, ToolError};
use exports::baton::plugin::planner_api::{Guest, PlannerInfo};
use serde::Deserialize;

const CONFIG_SCHEMA: &str = r#"{
  "type": ["object", "null"],
  "properties": { "tool": { "type": "string", "description": "The tool to call (default: the first)" } },
  "additionalProperties": false
}"#;

#[derive(Deserialize, Default)]
struct Config {
    tool: Option<String>,
}

struct Component;

impl Guest for Component {
    fn describe() -> PlannerInfo {
        PlannerInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Calls one tool with the run's input and finishes with its output."
                .into(),
            config_schema: CONFIG_SCHEMA.into(),
        }
    }

    fn next(state: RunState) -> Decision {
        let config: Config = match serde_json::from_str::<Option<Config>>(&state.config) {
            Ok(config) => config.unwrap_or_default(),
            Err(e) => return Decision::Fail(format!("the planner's config is not valid: {e}")),
        };
        if let Some(result) = state.results.last() {
            return match &result.output {
                Ok(output) => Decision::Finish(output.clone()),
                Err(error) => Decision::Fail(message(error)),
            };
        }
        let tool = match &config.tool {
            Some(name) if !state.tools.iter().any(|t| &t.name == name) => {
                return Decision::Fail(format!("config.tool names '{name}', which is not given"));
            }
            Some(name) => name.clone(),
            None => match state.tools.first() {
                Some(tool) => tool.name.clone(),
                None => {
                    let task = serde_json::json!({ "task": state.task });
                    return Decision::Finish(task.to_string());
                }
            },
        };
        Decision::Call(vec![Step {
            id: "call".into(),
            tool,
            input: state.input,
            depends_on: Vec::new(),
            replicates: 1,
        }])
    }
}

/// What a tool's error says.
fn message(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(message) | ToolError::Failed(message) => message.clone(),
        ToolError::Host(
            Error::NotGranted(message)
            | Error::InvalidArgument(message)
            | Error::BudgetExceeded(message)
            | Error::Timeout(message)
            | Error::Unavailable(message)
            | Error::Failed(message),
        ) => message.clone(),
    }
}

export!(Component);

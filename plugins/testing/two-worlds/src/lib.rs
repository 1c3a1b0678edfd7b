//! Test fixture: a component that is both a tool and a prompt, which Baton must refuse.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "testing:two-worlds/two-worlds",
    generate_all,
});

use exports::baton::plugin::{prompt_api, tool_api};

struct TwoWorlds;

impl tool_api::Guest for TwoWorlds {
    fn describe() -> tool_api::ToolInfo {
        tool_api::ToolInfo {
            name: "two-worlds".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Claims to be a tool.".into(),
            input_schema: "{}".into(),
            output_schema: "{}".into(),
        }
    }

    fn invoke(input: String) -> Result<String, tool_api::ToolError> {
        Ok(input)
    }
}

impl prompt_api::Guest for TwoWorlds {
    fn describe() -> prompt_api::PromptInfo {
        prompt_api::PromptInfo {
            name: "two-worlds".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Claims to be a prompt.".into(),
            vars_schema: "{}".into(),
        }
    }

    fn render(
        _vars: String,
        _budget: prompt_api::TokenBudget,
    ) -> Result<Vec<prompt_api::Message>, prompt_api::Error> {
        Ok(Vec::new())
    }
}

export!(TwoWorlds);

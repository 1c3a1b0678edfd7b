//! Test fixture: the smallest prompt component. Renders a fixed system message and the
//! variables as the user turn.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/prompt" });

use baton::plugin::types::Role;
use exports::baton::plugin::prompt_api::{Error, Guest, Message, PromptInfo, TokenBudget};

struct EchoPrompt;

impl Guest for EchoPrompt {
    fn describe() -> PromptInfo {
        PromptInfo {
            name: "echo-prompt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Repeats its variables as the user turn.".into(),
            vars_schema: r#"{"type": "object"}"#.into(),
        }
    }

    fn render(vars: String, _budget: TokenBudget) -> Result<Vec<Message>, Error> {
        Ok(vec![
            Message {
                role: Role::System,
                content: "Answer briefly.".into(),
            },
            Message {
                role: Role::User,
                content: vars,
            },
        ])
    }
}

export!(EchoPrompt);

//! `{{name}}`: a prompt that asks a model to answer a question briefly. Change `describe` and
//! `render` to make it yours; `render` must keep its messages within `budget`.

wit_bindgen::generate!({ path: "wit", world: "baton:plugin/prompt" });

use baton::plugin::types::{Error, Message, Role, TokenBudget};
use exports::baton::plugin::prompt_api::{Guest, PromptInfo};
use serde::Deserialize;

const VARS_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "question": { "type": "string", "minLength": 1 } },
  "required": ["question"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Vars {
    question: String,
}

struct Component;

impl Guest for Component {
    fn describe() -> PromptInfo {
        PromptInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Asks a model to answer a question in one or two sentences.".into(),
            vars_schema: VARS_SCHEMA.into(),
        }
    }

    fn render(vars: String, budget: TokenBudget) -> Result<Vec<Message>, Error> {
        let vars: Vars =
            serde_json::from_str(&vars).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let question = vars.question.trim();
        if question.is_empty() {
            return Err(Error::InvalidArgument("question must not be blank".into()));
        }
        // About four characters a token: a cheap check that needs no tokenizer.
        if question.len() / 4 > budget.max_tokens as usize {
            return Err(Error::InvalidArgument(format!(
                "the question does not fit in {} tokens",
                budget.max_tokens
            )));
        }
        Ok(vec![
            Message {
                role: Role::System,
                content: "Answer in one or two sentences.".into(),
            },
            Message {
                role: Role::User,
                content: question.into(),
            },
        ])
    }
}

export!(Component);

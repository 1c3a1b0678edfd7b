//! JSON Schema checks on tool input (before a call) and output (after it).
//!
//! Schemas come from the tool's `describe()` and are compiled once per loaded component.
//! Remote `$ref`s are never fetched: the validator is built without network or file
//! resolution, so a schema cannot make the host reach anywhere.

use std::fmt;

use baton_core::text::quote;
use jsonschema::Validator;
use serde_json::Value;

/// Input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The tool declared a schema that is not valid JSON or not a valid JSON Schema.
    #[error("its declared {direction} schema is invalid: {reason}")]
    Invalid {
        direction: Direction,
        reason: String,
    },
    /// A document does not match its schema.
    #[error("{direction} does not match the {direction} schema at {path}: {reason}")]
    Violation {
        direction: Direction,
        /// JSON Pointer to the offending value ("/" for the whole document).
        path: String,
        reason: String,
    },
}

/// The compiled input and output schemas of one tool.
pub struct ToolSchemas {
    input: Validator,
    output: Validator,
}

impl ToolSchemas {
    pub fn compile(input: &str, output: &str) -> Result<Self, SchemaError> {
        Ok(Self {
            input: compile(Direction::Input, input)?,
            output: compile(Direction::Output, output)?,
        })
    }

    pub fn check(&self, direction: Direction, document: &Value) -> Result<(), SchemaError> {
        let validator = match direction {
            Direction::Input => &self.input,
            Direction::Output => &self.output,
        };
        validator
            .validate(document)
            .map_err(|e| SchemaError::Violation {
                direction,
                // Both quote what a component or a model wrote (a key, a value, a pattern):
                // escaped, so that the message stays one line.
                path: match e.instance_path().as_str() {
                    "" => "/".to_string(),
                    path => quote(path, 200),
                },
                reason: quote(&e.to_string(), 200),
            })
    }
}

fn compile(direction: Direction, text: &str) -> Result<Validator, SchemaError> {
    let invalid = |reason: String| SchemaError::Invalid {
        direction,
        reason: quote(&reason, 200),
    };
    let schema: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    jsonschema::validator_for(&schema).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OBJECT_WITH_NUMBER: &str =
        r#"{"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}"#;

    #[test]
    fn violations_name_the_path_of_the_offending_value() {
        let schemas = ToolSchemas::compile(OBJECT_WITH_NUMBER, "{}").unwrap();
        assert!(schemas.check(Direction::Input, &json!({"n": 1})).is_ok());
        let err = schemas
            .check(Direction::Input, &json!({"n": "one"}))
            .unwrap_err();
        let SchemaError::Violation { path, reason, .. } = &err else {
            panic!("expected a violation, got {err:?}");
        };
        assert_eq!(path, "/n");
        assert!(reason.contains("is not of type \"number\""), "{reason}");
    }

    #[test]
    fn a_missing_property_is_reported_at_the_root() {
        let schemas = ToolSchemas::compile(OBJECT_WITH_NUMBER, "{}").unwrap();
        let err = schemas.check(Direction::Input, &json!({})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("input does not match the input schema at /:")
        );
    }

    /// Found by the `schemas` fuzz target: a violation quoted the schema's pattern, and so
    /// any newline in it, into what was to be a one-line message.
    #[test]
    fn a_violation_is_one_line_whatever_the_schema_and_input_hold() {
        let schema = r#"{"type": "object", "properties": {"s\nt": {"pattern": "^a\nb$"}}}"#;
        let schemas = ToolSchemas::compile(schema, "{}").unwrap();
        let err = schemas
            .check(Direction::Input, &json!({"s\nt": "x\u{1b}[2J"}))
            .unwrap_err()
            .to_string();
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.contains("/s\\nt"), "the path is shown escaped: {err}");
    }

    #[test]
    fn invalid_schemas_are_refused_at_compile_time() {
        assert!(matches!(
            ToolSchemas::compile("{not json", "{}"),
            Err(SchemaError::Invalid {
                direction: Direction::Input,
                ..
            })
        ));
        assert!(matches!(
            ToolSchemas::compile("{}", r#"{"type": 12}"#),
            Err(SchemaError::Invalid {
                direction: Direction::Output,
                ..
            })
        ));
    }
}

//! `calc`: evaluates arithmetic expressions (`+ - * / % ^`, parentheses, unary minus,
//! decimal numbers) as 64-bit floats.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/tool" });

use exports::baton::plugin::tool_api::{Guest, ToolError, ToolInfo};
use serde::Deserialize;

const INPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "expression": { "type": "string", "minLength": 1, "maxLength": 10000,
                    "description": "Arithmetic expression, e.g. \"2 * (3 + 4)\"" }
  },
  "required": ["expression"],
  "additionalProperties": false
}"#;

const OUTPUT_SCHEMA: &str = r#"{
  "type": "object",
  "properties": { "value": { "type": "number" } },
  "required": ["value"],
  "additionalProperties": false
}"#;

#[derive(Deserialize)]
struct Input {
    expression: String,
}

struct Calc;

impl Guest for Calc {
    fn describe() -> ToolInfo {
        ToolInfo {
            name: "calc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Evaluates an arithmetic expression with + - * / % ^ and parentheses."
                .into(),
            input_schema: INPUT_SCHEMA.into(),
            output_schema: OUTPUT_SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Input =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let value = Parser::new(&input.expression)
            .parse()
            .map_err(ToolError::InvalidInput)?;
        if !value.is_finite() {
            return Err(ToolError::InvalidInput(format!(
                "the result is not a finite number ({value})"
            )));
        }
        Ok(serde_json::json!({ "value": value }).to_string())
    }
}

export!(Calc);

/// Recursive descent over the grammar
/// `expr := term (('+'|'-') term)*`, `term := power (('*'|'/'|'%') power)*`,
/// `power := unary ('^' power)?`, `unary := '-' unary | atom`, `atom := number | '(' expr ')'`.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn parse(mut self) -> Result<f64, String> {
        let value = self.expr()?;
        self.skip_space();
        match self.peek() {
            None => Ok(value),
            Some(c) => Err(self.error(&format!("unexpected '{c}'"))),
        }
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut value = self.term()?;
        while let Some(op) = self.next_op("+-") {
            let rhs = self.term()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        while let Some(op) = self.next_op("*/%") {
            self.skip_space();
            let at = self.pos;
            let rhs = self.power()?;
            if op != '*' && rhs == 0.0 {
                self.pos = at;
                return Err(self.error("division by zero"));
            }
            value = match op {
                '*' => value * rhs,
                '/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.next_op("^").is_some() {
            return Ok(base.powf(self.power()?));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.next_op("-").is_some() {
            return Ok(-self.unary()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, String> {
        self.skip_space();
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let value = self.expr()?;
                if self.next_op(")").is_none() {
                    return Err(self.error("expected ')'"));
                }
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || c == '.') {
                    self.pos += 1;
                }
                let literal = &self.text[start..self.pos];
                literal.parse().map_err(|_| {
                    self.pos = start;
                    self.error(&format!("'{literal}' is not a number"))
                })
            }
            Some(c) => Err(self.error(&format!("unexpected '{c}'"))),
            None => Err(self.error("unexpected end of expression")),
        }
    }

    /// Consumes the next character if it is one of `ops`.
    fn next_op(&mut self, ops: &str) -> Option<char> {
        self.skip_space();
        let c = self.peek().filter(|c| ops.contains(*c))?;
        self.pos += 1;
        Some(c)
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at position {}", self.pos + 1)
    }
}

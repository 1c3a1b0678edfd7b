//! Input templates: a step's input may refer to the task, the run's input and earlier steps'
//! outputs as `{{task}}`, `{{input.path}}` and `{{step.output.path}}`.
//!
//! A string that is exactly one reference becomes the referenced JSON value (a number stays
//! a number); references inside longer strings are replaced by the value's text (a string
//! without quotes, anything else as compact JSON). A path is a dot-separated list of object
//! keys and array indices, e.g. `{{fetch.output.items.0.name}}`.
//!
//! Text that must keep a literal `{{` writes it as `{{"{{"}}`: a JSON string between the
//! braces is that string. `escape` does it for text meant literally (a model's tool input).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// What references resolve against.
pub struct Scope<'a> {
    /// The task, as a JSON string.
    pub task: Value,
    pub input: &'a Value,
    /// Outputs of the steps finished so far, by step id.
    pub outputs: &'a BTreeMap<String, Value>,
}

/// One `{{...}}` reference, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Reference<'t> {
    Task,
    Input(Vec<&'t str>),
    Output {
        step: &'t str,
        path: Vec<&'t str>,
    },
    /// `{{"text"}}`: the JSON string itself.
    Literal(String),
}

/// `value` with every `{{` in its strings written so that rendering gives it back unchanged:
/// for inputs meant literally, which must not refer to anything.
pub fn escape(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace("{{", ESCAPED_OPEN)),
        Value::Array(items) => Value::Array(items.iter().map(escape).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), escape(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A literal `{{`, as a template writes it.
const ESCAPED_OPEN: &str = r#"{{"{{"}}"#;

/// The step ids `template` refers to, in order of appearance.
pub fn steps_referenced(template: &Value) -> Result<Vec<String>, String> {
    let mut steps = Vec::new();
    visit_strings(template, &mut |text| {
        for reference in references(text)? {
            if let Reference::Output { step, .. } = reference.1
                && !steps.iter().any(|s| s == step)
            {
                steps.push(step.to_string());
            }
        }
        Ok(())
    })?;
    Ok(steps)
}

/// `template` with every reference replaced by what it refers to in `scope`, refused as soon
/// as what it renders to passes `limit` bytes (a template that repeats a large output many
/// times must not be built).
pub fn render(template: &Value, scope: &Scope, limit: u64) -> Result<Value, String> {
    let mut left = limit;
    render_within(template, scope, &mut left).map_err(|e| match e {
        Rendering::TooLarge => format!(
            "it renders to more than {} (the limit on what it may become)",
            baton_core::limits::size(limit)
        ),
        Rendering::Failed(reason) => reason,
    })
}

enum Rendering {
    TooLarge,
    Failed(String),
}

impl From<String> for Rendering {
    fn from(reason: String) -> Self {
        Rendering::Failed(reason)
    }
}

/// Takes `bytes` from what is `left`.
fn spend(left: &mut u64, bytes: usize) -> Result<(), Rendering> {
    *left = left.checked_sub(bytes as u64).ok_or(Rendering::TooLarge)?;
    Ok(())
}

fn render_within(template: &Value, scope: &Scope, left: &mut u64) -> Result<Value, Rendering> {
    Ok(match template {
        Value::String(text) => render_string(text, scope, left)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_within(item, scope, left))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    spend(left, key.len())?;
                    Ok((key.clone(), render_within(value, scope, left)?))
                })
                .collect::<Result<_, Rendering>>()?,
        ),
        other => {
            spend(left, other.to_string().len())?;
            other.clone()
        }
    })
}

fn render_string(text: &str, scope: &Scope, left: &mut u64) -> Result<Value, Rendering> {
    let found = references(text)?;
    if let [(span, reference)] = found.as_slice()
        && span.0 == 0
        && span.1 == text.len()
    {
        let value = resolve(reference, scope)?;
        spend(left, value.to_string().len())?;
        return Ok(value.into_owned());
    }
    let mut rendered = String::with_capacity(text.len());
    let mut at = 0;
    for ((start, end), reference) in &found {
        spend(left, start - at)?;
        rendered.push_str(&text[at..*start]);
        match resolve(reference, scope)?.as_ref() {
            Value::String(s) => {
                spend(left, s.len())?;
                rendered.push_str(s);
            }
            other => {
                let text = other.to_string();
                spend(left, text.len())?;
                rendered.push_str(&text);
            }
        }
        at = *end;
    }
    spend(left, text.len() - at)?;
    rendered.push_str(&text[at..]);
    Ok(Value::String(rendered))
}

fn resolve<'s>(reference: &Reference, scope: &'s Scope) -> Result<Cow<'s, Value>, String> {
    let (root, path, name) = match reference {
        Reference::Task => return Ok(Cow::Borrowed(&scope.task)),
        Reference::Literal(text) => return Ok(Cow::Owned(Value::String(text.clone()))),
        Reference::Input(path) => (scope.input, path, "input".to_string()),
        Reference::Output { step, path } => (
            scope
                .outputs
                .get(*step)
                .ok_or_else(|| format!("step '{step}' has no output (it did not succeed)"))?,
            path,
            format!("{step}.output"),
        ),
    };
    let mut value = root;
    let mut walked = name;
    for key in path.iter() {
        let next = match value {
            Value::Object(fields) => fields.get(*key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        value = next.ok_or_else(|| format!("{} has no '{}'", clip(&walked), clip(key)))?;
        walked = format!("{walked}.{key}");
    }
    Ok(Cow::Borrowed(value))
}

/// Where a reference is in its text: start and end byte offsets.
type Span = (usize, usize);

/// The references in `text` with their byte spans.
fn references(text: &str) -> Result<Vec<(Span, Reference<'_>)>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| i + from) {
        let close = text[open..]
            .find("}}")
            .map(|i| i + open)
            .ok_or_else(|| format!("'{}' opens '{{{{' without closing it", clip(text)))?;
        let inner = text[open + 2..close].trim();
        found.push(((open, close + 2), parse_reference(inner)?));
        from = close + 2;
    }
    Ok(found)
}

fn parse_reference(inner: &str) -> Result<Reference<'_>, String> {
    if inner.starts_with('"') {
        return serde_json::from_str(inner).map(Reference::Literal).map_err(|_| {
            format!(
                "'{{{{{}}}}}' is not a JSON string (write a literal '{{{{' as '{ESCAPED_OPEN}')",
                clip(inner)
            )
        });
    }
    let mut parts = inner.split('.');
    let head = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    if rest.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "'{{{{{}}}}}' has an empty path segment",
            clip(inner)
        ));
    }
    match head {
        "task" if rest.is_empty() => Ok(Reference::Task),
        "input" => Ok(Reference::Input(rest)),
        step if rest.first() == Some(&"output") && super::plan::is_step_id(step) => {
            Ok(Reference::Output {
                step,
                path: rest[1..].to_vec(),
            })
        }
        _ => Err(format!(
            "'{{{{{}}}}}' is not a reference; write {{{{task}}}}, {{{{input.PATH}}}} or \
             {{{{STEP.output.PATH}}}} (or '{ESCAPED_OPEN}' for a literal '{{{{')",
            clip(inner)
        )),
    }
}

fn visit_strings(
    value: &Value,
    visit: &mut impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().try_for_each(|v| visit_strings(v, visit)),
        Value::Object(fields) => fields.values().try_for_each(|v| visit_strings(v, visit)),
        _ => Ok(()),
    }
}

/// Template text quoted in a message: short, and on one line with control characters
/// escaped (a planner or a workflow wrote it, not Baton).
fn clip(text: &str) -> String {
    baton_core::text::quote(text, 60)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope_with(outputs: &mut BTreeMap<String, Value>) -> Scope<'_> {
        outputs.insert("sum".into(), json!({"total": 7, "items": [{"name": "a"}]}));
        Scope {
            task: json!("add numbers"),
            input: &Value::Null,
            outputs,
        }
    }

    #[test]
    fn a_whole_reference_keeps_its_json_type() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        let rendered = render(
            &json!({"x": "{{sum.output.total}}", "n": "{{ sum.output.items.0.name }}"}),
            &scope,
            1 << 20,
        )
        .unwrap();
        assert_eq!(rendered, json!({"x": 7, "n": "a"}));
    }

    #[test]
    fn references_inside_text_become_text() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        let rendered = render(
            &json!("{{task}}: {{sum.output.total}} of {{sum.output.items}}"),
            &scope,
            1 << 20,
        )
        .unwrap();
        assert_eq!(rendered, json!("add numbers: 7 of [{\"name\":\"a\"}]"));
    }

    #[test]
    fn missing_paths_and_steps_say_what_is_missing() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        let err = render(&json!("{{sum.output.nope}}"), &scope, 1 << 20).unwrap_err();
        assert_eq!(err, "sum.output has no 'nope'");
        let err = render(&json!("{{other.output}}"), &scope, 1 << 20).unwrap_err();
        assert!(err.contains("step 'other' has no output"), "{err}");
        let err = render(&json!("{{sum.total}}"), &scope, 1 << 20).unwrap_err();
        assert!(err.contains("is not a reference"), "{err}");
    }

    #[test]
    fn a_template_is_refused_once_it_renders_past_its_limit() {
        let mut outputs = BTreeMap::new();
        outputs.insert("big".into(), json!("x".repeat(1000)));
        let scope = Scope {
            task: json!("t"),
            input: &Value::Null,
            outputs: &outputs,
        };
        let repeated: Vec<Value> = (0..1500).map(|_| json!("{{big.output}}")).collect();
        let err = render(&Value::Array(repeated.clone()), &scope, 100_000).unwrap_err();
        assert!(err.contains("renders to more than 97.7 KiB"), "{err}");
        let text = "{{big.output}}".repeat(1500);
        assert!(render(&json!(text), &scope, 100_000).is_err());
        // Within the limit, the same template renders.
        assert!(render(&Value::Array(repeated), &scope, 2_000_000).is_ok());
    }

    /// Found by the `workflows` fuzz target: a message quoted the template's text as it was,
    /// so a newline (or a terminal's escape sequence) in a template reached the error line.
    #[test]
    fn messages_quote_a_template_on_one_line_with_controls_escaped() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        for template in [
            "{{input.x\nnow\u{1b}[31m",
            "{{input.a\n..b}}",
            "{{now\nhere}}",
            "{{input.no\nsuch}}",
        ] {
            let err = render(&json!(template), &scope, 1 << 10).unwrap_err();
            assert!(!err.chars().any(char::is_control), "{err:?}");
            assert!(err.contains("\\n"), "the newline is shown escaped: {err}");
        }
    }

    #[test]
    fn an_escaped_input_renders_back_to_itself_and_refers_to_nothing() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        let literal = json!({
            "template": "Hello {{name}}, {{sum.output.total}}",
            "odd": ["{{", "{{{", "}}{{", "{{\"{{\"}}", "a{{b"],
            "n": 3,
        });
        let escaped = escape(&literal);
        assert_ne!(escaped, literal);
        assert_eq!(render(&escaped, &scope, 1 << 20).unwrap(), literal);
        assert!(steps_referenced(&escaped).unwrap().is_empty());
        // Unescaped, the same text is read as references, and refused.
        assert!(render(&literal, &scope, 1 << 20).is_err());
    }

    #[test]
    fn a_json_string_between_braces_is_that_string() {
        let mut outputs = BTreeMap::new();
        let scope = scope_with(&mut outputs);
        let rendered = render(
            &json!(r#"{{"{{"}}task}} is {{ "\u00e9" }}"#),
            &scope,
            1 << 20,
        );
        assert_eq!(rendered.unwrap(), json!("{{task}} is \u{e9}"));
        let err = render(&json!(r#"{{"open}}"#), &scope, 1 << 20).unwrap_err();
        assert!(err.contains("is not a JSON string"), "{err}");
        assert!(err.contains(r#"{{"{{"}}"#), "says how to write one: {err}");
    }

    #[test]
    fn referenced_steps_are_found_once_in_order() {
        let steps =
            steps_referenced(&json!({"a": "{{b.output}} {{a.output.x}}", "c": ["{{b.output}}"]}))
                .unwrap();
        assert_eq!(steps, ["b", "a"]);
    }
}

//! The static planner: the plan is written in the workflow file (`[config]`), as steps with
//! ids, tools, inputs, dependencies and optional conditions. It expresses pipelines,
//! fan-out/fan-in, hub-and-spoke and conditional branches:
//!
//! - every step whose condition (if any) can already be decided comes back in one decision,
//!   as a DAG the host runs in parallel where it can;
//! - a step with `when = { step, path, equals | not_equals }` waits for that step; if the
//!   condition does not hold it is skipped, and so is everything that depends on it;
//! - once nothing is left to run, the planner finishes with `output` (a template over the
//!   steps' outputs; by default every step's output by id);
//! - a failed step fails the run, naming the step and its error, unless it is `optional`:
//!   then only the steps that depend on it (by `depends_on`) are skipped.
//!
//! The planner holds no state between calls: what has run is read from the run state.

wit_bindgen::generate!({ path: "../../../wit", world: "baton:plugin/planner" });

use std::collections::{BTreeMap, BTreeSet};

use baton::plugin::types::{Step, ToolError};
use exports::baton::plugin::planner_api::{Decision, Guest, PlannerInfo, RunState};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    steps: Vec<PlanStep>,
    output: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanStep {
    id: String,
    tool: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    depends_on: Vec<String>,
    when: Option<Condition>,
    #[serde(default)]
    replicates: u32,
    /// Whether the run goes on when this step fails.
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    /// The step whose output is tested.
    step: String,
    /// Dot-separated path into that output ("" for the whole output).
    #[serde(default)]
    path: String,
    equals: Option<Value>,
    not_equals: Option<Value>,
}

impl Condition {
    /// Whether it holds for `output`.
    fn holds(&self, output: &Value) -> bool {
        let mut value = Some(output);
        for key in self.path.split('.').filter(|k| !k.is_empty()) {
            value = value.and_then(|v| match v {
                Value::Object(fields) => fields.get(key),
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            });
        }
        let value = value.unwrap_or(&Value::Null);
        self.equals.as_ref().is_none_or(|e| e == value)
            && self.not_equals.as_ref().is_none_or(|e| e != value)
    }
}

const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["steps"],
  "properties": {
    "steps": {"type": "array", "items": {
      "type": "object",
      "required": ["id", "tool"],
      "properties": {
        "id": {"type": "string"}, "tool": {"type": "string"}, "input": {},
        "depends_on": {"type": "array", "items": {"type": "string"}},
        "when": {"type": "object", "required": ["step"]},
        "replicates": {"type": "integer", "minimum": 0},
        "optional": {"type": "boolean"}
      }
    }},
    "output": {}
  }
}"#;

struct StaticPlanner;

impl Guest for StaticPlanner {
    fn describe() -> PlannerInfo {
        PlannerInfo {
            name: "static".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs the plan written in the workflow's [config]: steps with \
                          dependencies and conditions, in parallel where they allow."
                .into(),
            config_schema: CONFIG_SCHEMA.into(),
        }
    }

    fn next(state: RunState) -> Decision {
        match plan(&state) {
            Ok(decision) => decision,
            Err(reason) => Decision::Fail(reason),
        }
    }
}

fn plan(state: &RunState) -> Result<Decision, String> {
    if state.config.trim() == "null" {
        return Err(
            "there is no plan to run: the static planner runs the steps a workflow's \
                    [config] lists ([[config.steps]] with id, tool and input); write a workflow \
                    file (see docs/workflows.md) and `baton run` it"
                .into(),
        );
    }
    let config: Config = serde_json::from_str(&state.config)
        .map_err(|e| format!("the workflow's [config] is not a static plan: {e}"))?;
    let mut outputs: BTreeMap<&str, Value> = BTreeMap::new();
    let mut failed: BTreeMap<&str, String> = BTreeMap::new();
    for result in &state.results {
        match &result.output {
            Ok(text) => {
                let output = serde_json::from_str(text).unwrap_or(Value::Null);
                outputs.insert(&result.id, output);
            }
            Err(error) => {
                let reason = format!(
                    "step '{}' ({}) failed: {}",
                    result.id,
                    result.tool,
                    describe(error)
                );
                failed.insert(&result.id, reason);
            }
        }
    }
    // Failures that may be: optional steps, and the steps skipped because of them.
    let mut tolerated: BTreeSet<&str> = BTreeSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for step in &config.steps {
            let id = step.id.as_str();
            let may_fail = step.optional
                || step
                    .depends_on
                    .iter()
                    .any(|d| tolerated.contains(d.as_str()));
            if failed.contains_key(id) && may_fail && tolerated.insert(id) {
                changed = true;
            }
        }
    }
    if let Some((_, reason)) = failed.iter().find(|(id, _)| !tolerated.contains(*id)) {
        return Err(reason.clone());
    }
    // Skipped: a decided condition that does not hold, or a dependency that was skipped.
    let mut skipped: BTreeMap<&str, String> = BTreeMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for step in &config.steps {
            let id = step.id.as_str();
            if skipped.contains_key(id) || outputs.contains_key(id) || failed.contains_key(id) {
                continue;
            }
            let condition_false = step
                .when
                .as_ref()
                .filter(|c| outputs.get(c.step.as_str()).is_some_and(|o| !c.holds(o)));
            let dependency_skipped = step
                .depends_on
                .iter()
                .chain(step.when.iter().map(|c| &c.step))
                .find(|d| skipped.contains_key(d.as_str()));
            let reason = match (condition_false, dependency_skipped) {
                (Some(c), _) => format!("its condition on step '{}' does not hold", c.step),
                (None, Some(d)) => format!("step '{d}' it depends on was skipped"),
                (None, None) => continue,
            };
            skipped.insert(&step.id, reason);
            changed = true;
        }
    }
    // The host reports them as skipped (each once, however often they are said).
    for step in config
        .steps
        .iter()
        .filter(|s| skipped.contains_key(s.id.as_str()))
    {
        baton::plugin::plan::skip(&step.id, &step.tool, &skipped[step.id.as_str()]);
    }
    // Runnable now: not run, not skipped, its condition decided, and its dependencies run
    // or runnable now.
    let mut ready: BTreeSet<&str> = BTreeSet::new();
    let mut changed = true;
    while changed {
        changed = false;
        for step in &config.steps {
            let id = step.id.as_str();
            if ready.contains(id)
                || skipped.contains_key(id)
                || outputs.contains_key(id)
                || failed.contains_key(id)
            {
                continue;
            }
            let decided = step
                .when
                .as_ref()
                .is_none_or(|c| outputs.contains_key(c.step.as_str()));
            let dependencies_met = step
                .depends_on
                .iter()
                .all(|d| outputs.contains_key(d.as_str()) || ready.contains(d.as_str()));
            if decided && dependencies_met {
                ready.insert(id);
                changed = true;
            }
        }
    }
    if ready.is_empty() {
        let output = config.output.unwrap_or_else(|| {
            let all = outputs
                .keys()
                .map(|id| {
                    (
                        id.to_string(),
                        Value::String(format!("{{{{{id}.output}}}}")),
                    )
                })
                .collect();
            Value::Object(all)
        });
        return Ok(Decision::Finish(output.to_string()));
    }
    let steps = config
        .steps
        .iter()
        .filter(|s| ready.contains(s.id.as_str()))
        .map(|s| Step {
            id: s.id.clone(),
            tool: s.tool.clone(),
            input: s.input.to_string(),
            depends_on: s.depends_on.clone(),
            replicates: s.replicates,
        })
        .collect();
    Ok(Decision::Call(steps))
}

/// A step's error as a sentence.
fn describe(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(m) => format!("invalid input: {m}"),
        ToolError::Failed(m) => m.clone(),
        ToolError::Host(e) => format!("{e:?}"),
    }
}

export!(StaticPlanner);

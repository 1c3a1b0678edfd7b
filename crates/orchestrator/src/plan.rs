//! What a planner sees and decides: the run state handed to `next`, the decision it returns
//! (both journaled as JSON), and the checks a decision must pass before any step runs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use baton_runtime::bindings::types::{Decision, RunState, Step, StepResult, ToolError, ToolInfo};
use baton_runtime::capability::plan::Skipped;

use super::template;

/// A step id: 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter, so that it
/// reads unambiguously in `{{id.output.path}}`.
pub fn is_step_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The most replicates one step may have: each is a sandbox of its own.
pub const MAX_REPLICATES: u32 = 64;

/// A step of a decision that passed the checks.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub id: String,
    pub tool: String,
    /// The input template (see `template`).
    pub input: Value,
    /// Steps of the same decision that must finish first, by index.
    pub after: Vec<usize>,
    pub replicates: u32,
}

/// A decision's steps checked against the run so far: ids new and well-formed, tools known,
/// inputs JSON, and every dependency (named in `depends-on` or referenced by the input) an
/// earlier step or one of this decision, without cycles.
pub fn check_steps(
    steps: &[Step],
    finished: &BTreeSet<String>,
    tools: &BTreeMap<String, ToolInfo>,
) -> Result<Vec<PlannedStep>, String> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        if !is_step_id(&step.id) {
            return Err(format!(
                "step id '{}' must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a \
                 letter",
                baton_core::text::truncate(&step.id, 80)
            ));
        }
        if finished.contains(&step.id) || index.insert(&step.id, i).is_some() {
            return Err(format!("step id '{}' is used twice in this run", step.id));
        }
    }
    let mut planned = Vec::with_capacity(steps.len());
    for step in steps {
        let at = |reason: String| format!("step '{}': {reason}", step.id);
        if step.replicates > MAX_REPLICATES {
            return Err(at(format!(
                "{} replicates are more than the {MAX_REPLICATES} a step may have",
                step.replicates
            )));
        }
        if !tools.contains_key(&step.tool) {
            let known: Vec<&str> = tools.keys().map(String::as_str).collect();
            return Err(at(format!(
                "no tool named '{}' is available (available: {})",
                step.tool,
                known.join(", ")
            )));
        }
        let input: Value = serde_json::from_str(&step.input)
            .map_err(|e| at(format!("its input is not JSON ({e})")))?;
        let mut after = Vec::new();
        let referenced = template::steps_referenced(&input).map_err(at)?;
        for dependency in step.depends_on.iter().chain(&referenced) {
            match index.get(dependency.as_str()) {
                Some(&i) if !after.contains(&i) => after.push(i),
                Some(_) => {}
                None if finished.contains(dependency) => {}
                None => {
                    return Err(at(format!(
                        "it depends on '{dependency}', which is neither an earlier step nor \
                         one of this decision"
                    )));
                }
            }
        }
        planned.push(PlannedStep {
            id: step.id.clone(),
            tool: step.tool.clone(),
            input,
            after,
            replicates: step.replicates,
        });
    }
    if let Some(cycle) = find_cycle(&planned) {
        return Err(format!("steps {cycle} depend on each other in a cycle"));
    }
    Ok(planned)
}

/// Some step ids of a dependency cycle ("'a' and 'b'"), if there is one (Kahn's algorithm).
fn find_cycle(steps: &[PlannedStep]) -> Option<String> {
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for (j, step) in steps.iter().enumerate() {
            if step.after.contains(&i) {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    (done < steps.len()).then(|| {
        let stuck: Vec<String> = (0..steps.len())
            .filter(|&i| waiting[i] > 0)
            .map(|i| format!("'{}'", steps[i].id))
            .collect();
        stuck.join(" and ")
    })
}

/// The run state as journaled: the input of a planner's `next`.
pub fn state_json(state: &RunState) -> String {
    let tools: Vec<Value> = state
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "version": t.version, "description": t.description}))
        .collect();
    let results: Vec<Value> = state.results.iter().map(result_json).collect();
    json!({
        "config": state.config,
        "input": state.input,
        "iteration": state.iteration,
        "results": results,
        "task": state.task,
        "tools": tools,
    })
    .to_string()
}

fn result_json(result: &StepResult) -> Value {
    match &result.output {
        Ok(output) => json!({"id": result.id, "tool": result.tool, "output": output}),
        Err(error) => {
            json!({"id": result.id, "tool": result.tool, "error": tool_error_text(error)})
        }
    }
}

/// A decision as journaled: the output of a planner's `next`.
/// The decision's JSON, as journaled: with the steps the planner said it decided against,
/// when there are any.
pub fn decision_json(decision: &Decision, skipped: &[Skipped]) -> String {
    let mut json = match decision {
        Decision::Call(steps) => {
            let steps: Vec<Value> = steps
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id,
                        "tool": s.tool,
                        "input": s.input,
                        "depends_on": s.depends_on,
                        "replicates": s.replicates,
                    })
                })
                .collect();
            json!({ "call": steps })
        }
        Decision::Finish(output) => json!({ "finish": output }),
        Decision::Fail(reason) => json!({ "fail": reason }),
    };
    if !skipped.is_empty() {
        json["skipped"] = skipped
            .iter()
            .map(|s| json!({"id": s.id, "tool": s.tool, "reason": s.reason}))
            .collect();
    }
    json.to_string()
}

/// How a tool error reads in results and messages.
pub fn tool_error_text(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(m) => format!("invalid input: {m}"),
        ToolError::Failed(m) => m.clone(),
        ToolError::Host(e) => {
            let (kind, message) = baton_runtime::error::host_error_parts(e);
            format!("{kind}: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, input: &str, depends_on: &[&str]) -> Step {
        Step {
            id: id.into(),
            tool: "calc".into(),
            input: input.into(),
            depends_on: depends_on.iter().map(|s| s.to_string()).collect(),
            replicates: 0,
        }
    }

    fn tools() -> BTreeMap<String, ToolInfo> {
        let info = ToolInfo {
            name: "calc".into(),
            version: "1.0.0".into(),
            description: String::new(),
            input_schema: "{}".into(),
            output_schema: "{}".into(),
        };
        BTreeMap::from([("calc".into(), info)])
    }

    #[test]
    fn dependencies_come_from_depends_on_and_references() {
        let steps = [
            step("a", "{}", &[]),
            step("b", r#"{"x": "{{a.output.v}}"}"#, &[]),
            step("c", "{}", &["a", "b"]),
        ];
        let planned = check_steps(&steps, &BTreeSet::new(), &tools()).unwrap();
        assert_eq!(planned[1].after, [0]);
        assert_eq!(planned[2].after, [0, 1]);
    }

    #[test]
    fn bad_decisions_are_refused_with_the_step_named() {
        let finished = BTreeSet::from(["done".to_string()]);
        let check = |steps: &[Step]| check_steps(steps, &finished, &tools()).unwrap_err();
        assert!(check(&[step("done", "{}", &[])]).contains("used twice"));
        assert!(check(&[step("A", "{}", &[])]).contains("must be 1-64"));
        assert!(check(&[step("a", "{", &[])]).contains("not JSON"));
        assert!(check(&[step("a", "{}", &["ghost"])]).contains("depends on 'ghost'"));
        let cycle = check(&[step("a", "{}", &["b"]), step("b", "{}", &["a"])]);
        assert_eq!(cycle, "steps 'a' and 'b' depend on each other in a cycle");
        let mut unknown = step("a", "{}", &[]);
        unknown.tool = "nope".into();
        assert!(check(&[unknown]).contains("no tool named 'nope'"));
        // Depending on a step of an earlier decision is fine.
        assert!(check_steps(&[step("a", "{}", &["done"])], &finished, &tools()).is_ok());
    }
}

//! Workflow files and step-input templates from bytes: a workflow is refused with one line or
//! read into settings that the journal reads back the same; a template renders within its limit
//! or is refused, and never renders a step it names without that step's output; any value,
//! escaped, renders back to itself and refers to no step.
//!
//! Input: the workflow's text, then (after a NUL byte) a template as JSON.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use baton_core::limits::MAX_DURATION;
use baton_orchestrator::template::{Scope, escape, render, steps_referenced};
use baton_orchestrator::workflow::{Settings, Workflow};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// What a template may render to here: small, so a template that repeats an output is cut
/// off early.
const LIMIT: u64 = 64 << 10;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let (flow, template) = text.split_once('\0').unwrap_or((&text, ""));
    match Workflow::parse(flow, Path::new("/fuzz/flow.toml")) {
        Ok(workflow) => {
            // The settings are journaled; a replay runs under what it reads back.
            let journaled = serde_json::to_string(&workflow.settings).expect("settings are JSON");
            let back: Settings =
                serde_json::from_str(&journaled).expect("journaled settings read back");
            assert_eq!(
                back, workflow.settings,
                "settings changed through the journal"
            );
            // Every deadline and wait can be added to the clock.
            let longest = MAX_DURATION.as_millis() as u64;
            let settings = &workflow.settings;
            let steps = settings.steps.values().map(|s| s.timeout_ms);
            for ms in [settings.timeout_ms, settings.planner_timeout_ms]
                .into_iter()
                .chain(steps)
                .flatten()
                .chain([settings.retry_backoff_ms])
            {
                assert!(ms <= longest, "a duration past the clock");
            }
            // A budget's text is what the journal keeps of it.
            let budget = workflow.budget.to_text();
            let again = baton_budget::BudgetLimits::parse(&budget).expect("a budget's text parses");
            assert_eq!(again.to_text(), budget);
        }
        Err(reason) => assert!(!reason.contains('\n'), "a workflow error of many lines"),
    }
    let Ok(template) = serde_json::from_str::<Value>(template) else {
        return;
    };
    let outputs = BTreeMap::from([
        (
            "fetch".to_string(),
            json!({"items": [{"name": "a"}, 2, null], "n": 1.5}),
        ),
        ("calc".to_string(), json!("text")),
    ]);
    let input = json!({"x": [1, {"y": "z"}], "s": "{{task}}"});
    let scope = Scope {
        task: Value::String("the task {{input.x}}".into()),
        input: &input,
        outputs: &outputs,
    };
    let named = steps_referenced(&template);
    let rendered = render(&template, &scope, LIMIT);
    match (&named, &rendered) {
        (Err(_), Ok(_)) => panic!("a template whose references do not parse rendered"),
        (Ok(steps), Ok(_)) => assert!(
            steps.iter().all(|s| outputs.contains_key(s)),
            "rendered a step with no output"
        ),
        _ => {}
    }
    if let Err(reason) = &rendered {
        assert!(!reason.contains('\n'), "a template error of many lines");
    }
    // Text without references renders as itself.
    if let Ok(value) = &rendered
        && !template.to_string().contains("{{")
    {
        assert_eq!(value, &template);
    }
    // Escaped, any value is taken literally (what a planner does with a model's input); it
    // renders to no more than itself, so no limit is needed.
    let escaped = escape(&template);
    assert_eq!(steps_referenced(&escaped), Ok(Vec::new()), "an escaped value refers");
    assert_eq!(
        render(&escaped, &scope, u64::MAX).as_ref(),
        Ok(&template),
        "an escaped value did not render back to itself"
    );
});

//! How steps run: retries, deadlines, max_steps, budgets, conditions and optional steps.

use super::*;

#[test]
fn a_failing_step_is_retried_each_attempt_in_its_own_chain() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let flow = fetch_flow(
        dir.path(),
        &server,
        "/flaky/2",
        "retries = 2\nretry_backoff = \"10ms\"",
    );
    let bundle = dir.path().join("run.bundle");
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{result}");
    let get = step(&result, "get");
    assert_eq!(get["status"], "ok");
    assert_eq!(get["attempts"], 3);
    assert_eq!(get["output"]["body"], "ok");
    // Each attempt is a step of the run chain, and the replay retries the same way.
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(&shown, &["get: fetch", "get~2: fetch", "get~3: fetch"]);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

#[test]
fn a_step_out_of_retries_fails_the_run_with_its_error() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let flow = fetch_flow(
        dir.path(),
        &server,
        "/flaky/5",
        "retry_backoff = \"10ms\"\n[steps.get]\nretries = 1",
    );
    let (output, result) = run_flow(dir.path(), &flow, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(result["status"], "failed");
    let get = step(&result, "get");
    assert_eq!(
        (get["status"].as_str(), get["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["planner 'static' gave up", "step 'get'"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: the run failed: "),
        "{stderr}"
    );
}

#[test]
fn a_step_past_its_deadline_fails_with_the_workflow_timeout_named() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let flow = fetch_flow(
        dir.path(),
        &server,
        "/hang",
        "[steps.get]\ntimeout = \"300ms\"",
    );
    let (output, result) = run_flow(dir.path(), &flow, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let get = step(&result, "get");
    assert_eq!(get["status"], "failed");
    assert_contains(
        get["error"].as_str().unwrap(),
        &["300ms", "the workflow's step timeout"],
    );
    let (started, finished) = span(get);
    assert!(
        finished - started < 3000,
        "the deadline did not cut the step: {get}"
    );
}

#[test]
fn a_planner_that_never_finishes_is_cut_at_max_steps() {
    let dir = tempfile::tempdir().unwrap();
    let flow = workflow(
        dir.path(),
        "testing/endless-planner.wasm",
        "max_steps = 5\n",
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(result["status"], "max_steps");
    assert_eq!(result["totals"]["decisions"], 5);
    assert_eq!(result["steps"].as_array().unwrap().len(), 5);
    assert_contains(result["reason"].as_str().unwrap(), &["max_steps = 5"]);
    // The command line's bound replaces the workflow's.
    let (_, result) = run_flow(dir.path(), &flow, &["--max-steps", "2"]);
    assert_eq!(result["totals"]["decisions"], 2);
}

#[test]
fn budget_exhaustion_mid_run_gives_a_partial_result_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let steps: String = (1..=4)
        .map(|i| {
            let after = if i > 1 { format!("depends_on = [\"s{}\"]\n", i - 1) } else { String::new() };
            format!("[[config.steps]]\nid = \"s{i}\"\ntool = \"calc\"\ninput = {{ expression = \"{i} * 2\" }}\n{after}")
        })
        .collect();
    // Every run runs its steps: with the cache of pure calls, the later runs' calc steps
    // would be served and spend no fuel (the workflow's opt-out is what this relies on).
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        &format!("cache = false\n{steps}"),
    );
    // Measure what the first decision and each step burn (fuel is deterministic), then
    // allow the decision, two steps and half of the third.
    let bundle = dir.path().join("full.bundle");
    let (_, full) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
    let events: Value = serde_json::from_str(&text_output(&run(&[
        "trace",
        "show",
        bundle.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    let decision = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["chain"] == "step:plan:0" && e["kind"] == "invocation_ended")
        .unwrap()["payload"]["fuel"]
        .as_u64()
        .unwrap();
    let fuel = |id| step(&full, id)["fuel"].as_u64().unwrap();
    // Half of s3's fuel: s3 runs out of it. Exactly two steps: s3 is refused before it
    // starts. Either way the run stops there, and replays the same.
    for (left, error) in [
        (fuel("s3") / 2, "ran out of fuel"),
        (0, "the run's budget cannot cover this"),
    ] {
        let budget = format!("fuel={}", decision + fuel("s1") + fuel("s2") + left);
        let bundle = dir.path().join(format!("short-{left}.bundle"));
        let (output, result) = run_flow(
            dir.path(),
            &flow,
            &["--budget", &budget, "--bundle", bundle.to_str().unwrap()],
        );
        assert_eq!(output.status.code(), Some(3), "{result}");
        assert_eq!(result["status"], "budget_exceeded");
        let statuses: Vec<&str> = result["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["ok", "ok", "failed", "skipped"]);
        assert_eq!(step(&result, "s2")["output"]["value"], 4.0);
        assert!(result.get("output").is_none());
        assert_contains(
            result["reason"].as_str().unwrap(),
            &[error, "--budget fuel="],
        );
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");
    }
}

#[test]
fn conditions_choose_a_branch_and_skip_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
[[config.steps]]
id = "check"
tool = "calc"
input = { expression = "1 + 2" }

[[config.steps]]
id = "three"
tool = "calc"
input = { expression = "{{check.output.value}} * 100" }
when = { step = "check", path = "value", equals = 3.0 }

[[config.steps]]
id = "other"
tool = "calc"
input = { expression = "0" }
when = { step = "check", path = "value", not_equals = 3.0 }

[[config.steps]]
id = "after-other"
tool = "calc"
input = { expression = "1" }
depends_on = ["other"]
"#;
    let flow = workflow(dir.path(), "planners/static.wasm", body);
    let bundle = dir.path().join("run.bundle");
    let bundle = bundle.to_str().unwrap();
    let (output, result) = run_flow(dir.path(), &flow, &["--json", "--bundle", bundle]);
    assert!(output.status.success(), "{result}");
    let steps: Vec<(&str, &str)> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    // The branch not taken is reported skipped, with why, and so is what depends on it.
    assert_eq!(
        steps,
        [
            ("check", "ok"),
            ("other", "skipped"),
            ("after-other", "skipped"),
            ("three", "ok"),
        ]
    );
    assert_contains(
        step(&result, "other")["error"].as_str().unwrap(),
        &["skipped by the planner: its condition on step 'check' does not hold"],
    );
    assert_contains(
        step(&result, "after-other")["error"].as_str().unwrap(),
        &["step 'other' it depends on was skipped"],
    );
    assert_eq!(result["totals"]["skipped"], 2);
    assert_eq!(result["totals"]["succeeded"], 2);
    assert_eq!(
        result["output"],
        json!({"check": {"value": 3.0}, "three": {"value": 300.0}})
    );
    assert_eq!(result["totals"]["decisions"], 3);
    // In the --json progress, once each, however many decisions said so.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let skipped_events = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|e| e["event"] == "step_finished" && e["status"] == "skipped")
        .count();
    assert_eq!(skipped_events, 2, "{stdout}");
    // In the journal, with the decision that said so; and the run replays.
    let shown = text_output(&run(&["trace", "show", bundle, "--json"]));
    assert_contains(
        &shown,
        &["skipped", "its condition on step 'check' does not hold"],
    );
    let replayed = text_output(&run(&["replay", bundle]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    // Without --json, the summary counts them.
    let (output, _) = run_flow(dir.path(), &flow, &[]);
    assert_contains(
        &String::from_utf8_lossy(&output.stderr),
        &["4 steps (2 ok, 0 failed, 2 skipped)"],
    );
}

#[test]
fn an_optional_step_denied_egress_skips_its_dependents_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
[[config.steps]]
id = "metadata"
tool = "fetch"
input = { url = "http://169.254.169.254/latest/meta-data" }
optional = true

[[config.steps]]
id = "parse"
tool = "json-query"
input = { document = "{{metadata.output.body}}", query = "$" }
depends_on = ["metadata"]

[[config.steps]]
id = "sum"
tool = "calc"
input = { expression = "1 + 1" }
"#;
    let flow = workflow(dir.path(), "planners/static.wasm", body);
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert!(output.status.success(), "{result}");
    let statuses: Vec<(&str, &str)> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [("metadata", "failed"), ("parse", "skipped"), ("sum", "ok")]
    );
    assert_eq!(result["output"], json!({"sum": {"value": 2.0}}));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("denied: http: ") && l.contains("169.254.169.254")),
        "{stderr}"
    );
}

/// The workflow's deadline governs the planner's decisions too (`planner_timeout` replaces it
/// for the planner alone): a planner waiting for a local model to load is not cut at the
/// policy's 5 s.
#[test]
fn the_workflow_deadline_governs_the_planner() {
    let dir = tempfile::tempdir().unwrap();
    let step =
        "[[config.steps]]\nid = \"s\"\ntool = \"calc\"\ninput = { expression = \"1 + 1\" }\n";
    // The planner's and the step's deadlines, as their chains recorded them.
    let deadlines = |settings: &str| {
        let flow = workflow(
            dir.path(),
            "planners/static.wasm",
            &format!("{settings}{step}"),
        );
        let bundle = dir.path().join("flow.bundle");
        let (output, result) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{result}");
        let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap(), "--json"]));
        let events: Value = serde_json::from_str(&shown).unwrap();
        let timeout = |chain: &str| {
            events
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["chain"] == chain && e["kind"] == "invocation_started")
                .unwrap()["payload"]["limits"]["timeout_ms"]
                .as_u64()
                .unwrap()
        };
        (timeout("step:plan:0"), timeout("step:s"))
    };
    assert_eq!(
        deadlines("timeout = \"42s\"\ncache = false\n"),
        (42_000, 42_000)
    );
    assert_eq!(
        deadlines("timeout = \"42s\"\nplanner_timeout = \"7s\"\ncache = false\n"),
        (7_000, 42_000)
    );
}

//! `baton debug`: stepping through a recorded run, from the golden fan-out bundle (the run of
//! tests/fixtures/workflows/fanout.toml), with no network and no model.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

/// Runs `baton debug BUNDLE` with `lines` typed on its input, in a directory of its own (where
/// a fork writes its bundle); returns (stdout, stderr).
fn debug(lines: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fanout();
    let mut child = baton()
        .current_dir(dir.path())
        .env("BATON_STORE", dir.path().join("journal.db"))
        .args(["debug", bundle.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    for line in lines {
        writeln!(input, "{line}").unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn stepping_goes_into_steps_and_next_goes_over_them() {
    let (out, _) = debug(&["step", "step", "step", "next", "back"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("run 01m7z81v2zqx1091nv8t622bxr (run, succeeded): 39 events"));
    assert_contains(lines[1], &["[1/39] run   0 run_started"]);
    assert_contains(lines[3], &["[3/39] run   2 step_started plan:0: static"]);
    // `step` goes into the decision's chain, `next` stays in it, `back` returns.
    assert_contains(lines[4], &["[4/39]   step:plan:0   0 invocation_started"]);
    assert_contains(lines[5], &["[5/39]   step:plan:0   1 verified"]);
    assert_contains(lines[6], &["[4/39]   step:plan:0   0 invocation_started"]);
}

#[test]
fn breakpoints_stop_where_a_tool_runs_and_show_prints_the_step_and_the_planner_state() {
    let (out, err) = debug(&[
        "break tool=calc",
        "continue",
        "show",
        "continue",
        "clear",
        "break step=plan:1",
        "c",
        "next",
        "next",
        "show",
        "break kind=http",
        "continue",
        "break nonsense",
        "frobnicate",
        "fork",
        "clear",
        "break step=double",
        "restart",
        "continue",
        r#"fork {"expression": "7 * 2"}"#,
    ]);
    assert_contains(
        &out,
        &[
            "breakpoint tool=calc",
            "[16/39]   step:double   0 invocation_started input {\"expression\":\"6 * 2\"}",
            "input of 'calc': {\"expression\":\"6 * 2\"}",
            "output: {\"value\":12.0}",
            "planner state (step:plan:0):",
            "\"task\": \"measure a sentence three ways\"",
            "[22/39]   step:square   0 invocation_started",
            "breakpoint step=plan:1",
            "run  12 step_started plan:1: static",
            // The second decision was handed the four results.
            "planner state (step:plan:1):",
            "\"id\": \"sum\"",
            "the run ended without reaching a breakpoint",
            "[39/39] run  14 run_ended succeeded",
            // Forked where it stopped, with another input.
            "at step 'double': succeeded",
            r#"double           calc         {"value":14.0}"#,
            r#"sum              calc         {"value":50.0}"#,
            "bundle written to fork-double.bundle",
        ],
    );
    assert_contains(
        &err,
        &[
            "error: 'nonsense' is no breakpoint; write `break step=ID`",
            "error: unknown command 'frobnicate'; `help` lists the commands",
            "error: move to a step first: a run forks at a step",
        ],
    );
}

#[test]
fn an_unknown_run_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let calc = plugin("calc.wasm");
    let input = r#"{"expression": "1 + 1"}"#;
    json_output(&run_with_store(
        &store,
        &["call", calc.to_str().unwrap(), "--input", input],
    ));
    let output = run_with_store(&store, &["debug", "01NOSUCHRUN"]);
    assert_contains(&error_line(&output, 2), &["01NOSUCHRUN"]);
}

/// The golden fan-out bundle.
fn fanout() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fanout-run.bundle")
}

#[test]
fn a_fork_replays_up_to_its_step_then_goes_on_live_with_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let forked = dir.path().join("fork.bundle");
    let bundle = fanout();
    let out = text_output(&run_with_store(
        &store,
        &[
            "replay",
            bundle.to_str().unwrap(),
            "--fork-at",
            "double",
            "--input",
            r#"{"expression": "6 * 3"}"#,
            "--bundle",
            forked.to_str().unwrap(),
        ],
    ));
    // What came before the fork is the record's; the forked step and what follows are new.
    assert_contains(
        &out,
        &[
            "at step 'double': succeeded",
            r#"stats            text-stats   {"bytes":25,"characters":25,"lines":1,"words":6}"#,
            r#"double           calc         {"value":18.0}"#,
            r#"square           calc         {"value":36.0}"#,
            r#"sum              calc         {"value":54.0}"#,
        ],
    );
    // The fork's journal names its parent and the fork point, and replays on its own.
    let events: serde_json::Value = serde_json::from_str(&text_output(&run(&[
        "trace",
        "show",
        forked.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    let workflow = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "workflow")
        .unwrap();
    let settings: serde_json::Value =
        serde_json::from_str(workflow["payload"]["settings"].as_str().unwrap()).unwrap();
    assert_eq!(
        settings["forked_from"],
        serde_json::json!({"run": "01m7z81v2zqx1091nv8t622bxr", "step": "double"})
    );
    let replayed = text_output(&run(&["replay", forked.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: 39 events"), "{replayed}");
    // Where the two runs part: the forked step's input.
    let diff = text_output(&run(&[
        "trace",
        "diff",
        bundle.to_str().unwrap(),
        forked.to_str().unwrap(),
    ]));
    assert_contains(
        &diff,
        &[
            "diverged at chain 'step:double', event 0 (invocation_started)",
            // Sealing the steps that did the same differs only in the run's id.
            "the chain it seals differs\n      A: double:",
        ],
    );
    assert!(!diff.contains("A: stats:"), "{diff}");
    assert!(!diff.contains("A: plan:0:"), "{diff}");
}

#[test]
fn a_fork_that_cannot_be_made_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let bundle = fanout();
    let bundle = bundle.to_str().unwrap();
    let unknown = run_with_store(&store, &["replay", bundle, "--fork-at", "nope"]);
    assert_contains(
        &error_line(&unknown, 2),
        &[
            "cannot fork the run in",
            "it never started a step 'nope'; its steps are stats, double, square, sum",
        ],
    );
    let calc = plugin("calc.wasm");
    let early = run_with_store(
        &store,
        &[
            "replay",
            bundle,
            "--fork-at",
            "square",
            "--component",
            calc.to_str().unwrap(),
        ],
    );
    assert_contains(
        &error_line(&early, 2),
        &[
            "'calc' ran at step 'double', before the fork point",
            "fork at 'double'",
        ],
    );
    let bad_input = run_with_store(
        &store,
        &[
            "replay",
            bundle,
            "--fork-at",
            "double",
            "--input",
            "{not json",
        ],
    );
    assert_eq!(bad_input.status.code(), Some(2));
    let without = run_with_store(&store, &["replay", bundle, "--input", "{}"]);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("--fork-at"));
}

#[test]
fn a_fork_can_give_its_step_a_result_instead_of_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let forked = dir.path().join("fork.bundle");
    let response = dir.path().join("response.json");
    std::fs::write(&response, r#"{"value": 100.0}"#).unwrap();
    let bundle = fanout();
    let out = text_output(&run_with_store(
        &store,
        &[
            "replay",
            bundle.to_str().unwrap(),
            "--fork-at",
            "double",
            "--response",
            response.to_str().unwrap(),
            "--bundle",
            forked.to_str().unwrap(),
        ],
    ));
    // What the run does had `double` answered 100: `sum` adds it to `square`'s 36.
    assert_contains(
        &out,
        &[
            r#"double           calc         {"value":100.0}"#,
            r#"sum              calc         {"value":136.0}"#,
        ],
    );
    let replayed = text_output(&run(&["replay", forked.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    std::fs::write(&response, "{not json").unwrap();
    let bad = run_with_store(
        &store,
        &[
            "replay",
            bundle.to_str().unwrap(),
            "--fork-at",
            "double",
            "--response",
            response.to_str().unwrap(),
        ],
    );
    assert_contains(&error_line(&bad, 2), &["response.json"]);
}

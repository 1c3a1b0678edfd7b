//! `baton call` with the reference tools, limits from flags and policy files.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

#[test]
fn calc_evaluates_an_expression() {
    let out = call(
        "calc.wasm",
        r#"{"expression": "2 * (3 + 4) ^ 2 - 10 % 4"}"#,
        &[],
    );
    assert_eq!(json_output(&out)["value"], 96.0);
}

#[test]
fn text_stats_counts_words_characters_lines_and_bytes() {
    let out = call(
        "text-stats.wasm",
        r#"{"text": "héllo wörld\nsecond line"}"#,
        &[],
    );
    let v = json_output(&out);
    assert_eq!(
        (&v["words"], &v["characters"], &v["lines"], &v["bytes"]),
        (&4.into(), &23.into(), &2.into(), &25.into())
    );
}

#[test]
fn json_query_selects_with_a_filter() {
    let input = r#"{"document": {"items": [{"name": "pen", "price": 2}, {"name": "ink", "price": 12},
                    {"name": "cap", "price": 1}]}, "query": "$.items[?@.price < 10].name"}"#;
    let v = json_output(&call("json-query.wasm", input, &[]));
    assert_eq!(v["matches"], serde_json::json!(["pen", "cap"]));
    assert_eq!(v["count"], 2);
}

#[test]
fn input_can_come_from_stdin() {
    let mut child = baton()
        .args([
            "call",
            plugin("calc.wasm").to_str().unwrap(),
            "--input",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"expression": "6 * 7"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(json_output(&out)["value"], 42.0);
}

#[test]
fn a_tool_error_exits_1_with_the_tools_message() {
    let out = call("calc.wasm", r#"{"expression": "1 / (2 - 2)"}"#, &[]);
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &["tool 'calc' failed: invalid input: division by zero at position 5"],
    );
}

#[test]
fn the_fuel_flag_overrides_the_policy_and_is_named_in_the_error() {
    let out = call(
        "calc.wasm",
        r#"{"expression": "1 + 1"}"#,
        &["--fuel", "1000"],
    );
    let line = error_line(&out, 3);
    assert_eq!(
        line,
        "error: tool 'calc' ran out of fuel after 1000 units (limit from the command line; \
         raise it with --fuel)"
    );
}

#[test]
fn verbose_output_reports_fuel_and_memory_used() {
    let out = call("calc.wasm", r#"{"expression": "1 + 1"}"#, &["-v"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_contains(&stderr, &["calc 0.1.0: ", " fuel, ", " peak memory"]);
}

#[test]
fn a_policy_file_sets_limits_per_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("tight.toml");
    std::fs::write(&policy, "[plugins.spin.limits]\nfuel = 2_000_000\n").unwrap();
    let out = call(
        "testing/spin.wasm",
        "{}",
        &["--policy", policy.to_str().unwrap()],
    );
    let line = error_line(&out, 3);
    assert_contains(
        &line,
        &[
            "tool 'spin' ran out of fuel after 2000000 units",
            "tight.toml [plugins.spin.limits]; raise it with --fuel",
        ],
    );
    // Other plugins keep the defaults.
    let out = call(
        "calc.wasm",
        r#"{"expression": "1"}"#,
        &["--policy", policy.to_str().unwrap()],
    );
    assert_eq!(json_output(&out)["value"], 1.0);
}

#[test]
fn a_policy_file_with_an_unknown_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("typo.toml");
    std::fs::write(&policy, "[limits]\nfuel = 10\nmemroy = \"1 MiB\"\n").unwrap();
    let out = call("calc.wasm", "{}", &["--policy", policy.to_str().unwrap()]);
    let line = error_line(&out, 5);
    assert_contains(
        &line,
        &["typo.toml, line 3, column 1", "unknown field `memroy`"],
    );
}

#[test]
fn a_missing_policy_file_is_refused() {
    let out = call("calc.wasm", "{}", &["--policy", "/nonexistent/policy.toml"]);
    let line = error_line(&out, 5);
    assert_contains(&line, &["cannot read policy /nonexistent/policy.toml"]);
}

/// A deadline set by what is left of the budget reads as people write durations, to the
/// millisecond ("1s", not "999ms 737us 910ns").
#[test]
fn a_deadline_from_the_budget_is_shown_to_the_millisecond() {
    let spin = plugin("testing/spin.wasm");
    let out = run(&[
        "call",
        spin.to_str().unwrap(),
        "--input",
        "{}",
        "--budget",
        "time=1s",
        "--fuel",
        "9000000000000000",
    ]);
    let line = error_line(&out, 3);
    assert_contains(
        &line,
        &["tool 'spin' did not finish within its 1s deadline (all that was left of the budget"],
    );
}

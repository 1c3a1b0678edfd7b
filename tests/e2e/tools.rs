//! Tool-to-tool calls through the host: allowed only as the caller's policy lists them; the
//! callee runs in its own sandbox under its own limits, with its own chain in the journal;
//! nesting depth and the number of calls per run are bounded, so a recursion bomb stops.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::common::*;

/// A directory holding copies of the named built plugins, for `--tools`.
fn tools_dir(dir: &Path, names: &[&str]) -> PathBuf {
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    for name in names {
        copy_plugin(name, &tools);
    }
    tools
}

fn call_with_tools(dir: &Path, component: &str, input: Value, extra: &[&str]) -> Output {
    let component = plugin(component);
    let input = input.to_string();
    let mut args = vec!["call", component.to_str().unwrap(), "--input", &input];
    args.extend_from_slice(extra);
    run_with_store(&dir.join("journal.db"), &args)
}

#[test]
fn granted_calls_run_the_callee_in_its_own_sandbox_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(
        dir.path(),
        &["calc.wasm", "text-stats.wasm", "json-query.wasm"],
    );
    let policy = write_policy(
        dir.path(),
        "[plugins.caller.tools]\ncall = [\"calc\", \"text-stats\"]\n\n\
         [plugins.text-stats.limits]\nfuel = 1000\n",
    );
    let bundle = dir.path().join("calls.bundle");
    let out = call_with_tools(
        dir.path(),
        "testing/caller.wasm",
        json!({"calls": [
            {"tool": "calc", "input": {"expression": "6*7"}},
            {"tool": "json-query", "input": {"document": {}, "query": "$"}},
            {"tool": "calc", "input": {"expression": "1/0"}},
            {"tool": "text-stats", "input": {"text": "a b c"}},
        ]}),
        &[
            "--tools",
            tools.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    let answers = json_output(&out)["answers"].clone();
    assert_eq!(answers[0]["ok"]["value"], 42.0);
    assert_contains(
        answers[1]["error"].as_str().unwrap(),
        &["NotGranted(\"calling tool 'json-query' is not granted to 'caller' by its policy\")"],
    );
    assert_contains(
        answers[2]["error"].as_str().unwrap(),
        &["InvalidArgument(\"division by zero"],
    );
    // The callee's own (tight) limits apply to it, not the caller's.
    assert_contains(
        answers[3]["error"].as_str().unwrap(),
        &["Failed(\"tool 'text-stats' ran out of fuel after 1000 units\")"],
    );
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["denied: tools: calling tool 'json-query' is not granted to 'caller'"],
    );

    let verified = text_output(&run(&["trace", "verify", bundle.to_str().unwrap()]));
    assert!(verified.starts_with("verified: "), "{verified}");
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(
        &shown,
        &[
            "tool_call          calc (step:call/1) -> returned {\"value\":42.0}",
            "step:call/1\n",
            "invocation_started input {\"expression\":\"6*7\"}",
            "step:call/3\n",
        ],
    );
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

#[test]
fn a_granted_tool_that_is_not_loaded_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "[plugins.caller.tools]\ncall = [\"calc\"]\n");
    let out = call_with_tools(
        dir.path(),
        "testing/caller.wasm",
        json!({"calls": [{"tool": "calc", "input": {"expression": "1"}}]}),
        &["--policy", policy.to_str().unwrap()],
    );
    assert_contains(
        json_output(&out)["answers"][0]["error"].as_str().unwrap(),
        &["Unavailable(\"no tool named 'calc' is loaded; give it to baton with --tools\")"],
    );
}

#[test]
fn a_recursion_bomb_is_stopped_at_the_depth_bound() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path(), &["testing/recursion-bomb.wasm"]);
    let policy = write_policy(
        dir.path(),
        "[plugins.recursion-bomb.tools]\ncall = [\"recursion-bomb\"]\n",
    );
    let bundle = dir.path().join("bomb.bundle");
    let out = call_with_tools(
        dir.path(),
        "testing/recursion-bomb.wasm",
        json!({"fanout": 1}),
        &[
            "--tools",
            tools.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &[
            "'recursion-bomb' calling tool 'recursion-bomb' would nest tool calls deeper than 4 (tools.max_depth)",
        ],
    );
    // Four nested chains below the step's own, and no fifth.
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert!(shown.contains("step:call/1/1/1/1\n"), "{shown}");
    assert!(!shown.contains("step:call/1/1/1/1/1"), "{shown}");
    let replayed = run(&["replay", bundle.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&replayed.stdout).starts_with("identical: "),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
}

#[test]
fn a_fan_out_bomb_is_stopped_at_the_call_bound() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path(), &["testing/recursion-bomb.wasm"]);
    let policy = write_policy(
        dir.path(),
        "[tools]\nmax_depth = 50\nmax_calls = 20\n\n\
         [plugins.recursion-bomb.tools]\ncall = [\"recursion-bomb\"]\n",
    );
    let bundle = dir.path().join("fanout.bundle");
    let out = call_with_tools(
        dir.path(),
        "testing/recursion-bomb.wasm",
        json!({"fanout": 3}),
        &[
            "--tools",
            tools.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &["would exceed 20 tool calls in one run (tools.max_calls)"],
    );
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    let callee_chains = shown
        .lines()
        .filter(|l| l.starts_with("step:call/"))
        .count();
    assert_eq!(callee_chains, 20, "{shown}");
}

#[test]
fn a_tools_directory_with_an_unusable_component_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path(), &["calc.wasm", "testing/forbidden-import.wasm"]);
    let out = call_with_tools(
        dir.path(),
        "calc.wasm",
        json!({"expression": "1"}),
        &["--tools", tools.to_str().unwrap()],
    );
    let line = error_line(&out, 2);
    assert_contains(
        &line,
        &["forbidden-import.wasm cannot be used as a Baton plugin"],
    );
}

/// Two tools of one name in a directory: `call --tools` refuses them rather than letting the
/// file names decide which a call reaches; `baton run` runs the newest and says so.
#[test]
fn two_tools_of_one_name_are_refused_or_chosen_between_aloud() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path(), &["calc.wasm"]);
    let copy = tools.join("calc-copy.wasm");
    std::fs::copy(tools.join("calc.wasm"), &copy).unwrap();
    for suffix in [".sig", ".intoto.json"] {
        std::fs::copy(
            tools.join(format!("calc.wasm{suffix}")),
            tools.join(format!("calc-copy.wasm{suffix}")),
        )
        .unwrap();
    }
    let out = call_with_tools(
        dir.path(),
        "testing/caller.wasm",
        json!({"calls": [{"tool": "calc", "input": {"expression": "1 + 1"}}]}),
        &["--tools", tools.to_str().unwrap()],
    );
    let line = error_line(&out, 2);
    assert_contains(
        &line,
        &[
            "holds two tools named 'calc' (",
            "calc-copy.wasm and ",
            "calc.wasm)",
        ],
    );

    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            "planner = {:?}\ntools = [{:?}]\n\n[[config.steps]]\nid = \"a\"\ntool = \"calc\"\n\
             input = {{ expression = \"2 + 3\" }}\n",
            plugin("planners/static.wasm"),
            tools
        ),
    )
    .unwrap();
    let out = run_with_store(
        &dir.path().join("journal.db"),
        &["run", flow.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_contains(&stderr, &["2 tools are named 'calc' (", "runs, the newest"]);
}

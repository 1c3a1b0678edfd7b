//! `baton mcp`: the tools in a directory served to an MCP client Baton did not write (the
//! official Python SDK), over stdio, with both handshakes; unverified components left out; a
//! hostile call answered with an error while the server goes on; the session journaled as
//! one run whose bundle replays.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common::*;

/// Runs the Python SDK's client (`client.py`) against `baton mcp --tools DIR`, with the
/// journal at `store`, making `calls`; returns what it printed and the server's stderr.
fn mcp_client(handshake: &str, tools: &Path, store: &Path, calls: &Value) -> (Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/mcp/client.py");
    let output: Output = Command::new("python3")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_baton"))
        .arg(handshake)
        .arg(tools)
        .arg(calls.to_string())
        .env("BATON_STORE", store)
        .env("BATON_CACHE_DIR", cache_dir())
        .env("BATON_MODELS", models_dir())
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the MCP client failed (is the `mcp` package installed? `cargo xtask test` installs \
         it): {stderr}"
    );
    let printed = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    (printed, stderr)
}

/// A directory with `calc` and the fuel bomb `spin`, each with its signature, a copy of
/// `text-stats` without one, and a copy of `json-query` changed after it was signed.
fn tools_dir(dir: &Path) -> PathBuf {
    let tools = dir.join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("calc.wasm", &tools);
    copy_plugin("testing/spin.wasm", &tools);
    std::fs::copy(plugin("text-stats.wasm"), tools.join("unsigned.wasm")).unwrap();
    let signed = copy_plugin("json-query.wasm", &tools);
    let tampered = tools.join("tampered.wasm");
    let mut bytes = std::fs::read(&signed).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::rename(
        format!("{}.sig", signed.display()),
        format!("{}.sig", tampered.display()),
    )
    .unwrap();
    std::fs::remove_file(&signed).unwrap();
    tools
}

#[test]
fn a_client_lists_verified_tools_and_a_fuel_bomb_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let store = dir.path().join("journal.db");
    let calls = json!([
        ["calc", {"expression": "6 * 7"}],
        ["spin", {}],
        ["calc", {"expression": "1 + 1"}],
    ]);
    let (printed, stderr) = mcp_client("initialize", &tools, &store, &calls);

    // The legacy handshake negotiates the newest version it has.
    assert_eq!(printed["version"], "2025-11-25");
    let names: Vec<&str> = printed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The unsigned and the tampered components are left out, and said why.
    assert_eq!(names, ["calc", "spin"]);
    assert_contains(
        &stderr,
        &[
            "not served: ",
            "unsigned.wasm",
            "is unsigned",
            "tampered.wasm",
            "does not verify with any trusted key",
        ],
    );
    let calc = &printed["tools"][0];
    assert_eq!(calc["inputSchema"]["required"], json!(["expression"]));
    assert_eq!(calc["outputSchema"]["required"], json!(["value"]));
    assert_eq!(calc["annotations"]["readOnlyHint"], true);
    assert_eq!(calc["annotations"]["openWorldHint"], false);

    let results = printed["calls"].as_array().unwrap();
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[0]["structured"], json!({"value": 42.0}));
    assert_eq!(results[0]["text"], json!(["{\"value\":42.0}"]));
    assert_eq!(results[1]["is_error"], true);
    assert_contains(
        results[1]["text"][0].as_str().unwrap(),
        &["tool 'spin' ran out of fuel after 1000000000 units"],
    );
    assert_eq!(results[2]["structured"], json!({"value": 2.0}));

    // The session is one run, each call a step; its bundle replays identically.
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    let line = listed.lines().find(|l| l.contains(" mcp ")).expect(&listed);
    assert!(line.contains("failed"), "a call failed: {line}");
    let run_id = line.split_whitespace().next().unwrap();
    let shown = text_output(&run_with_store(&store, &["trace", "show", run_id]));
    assert_contains(&shown, &["call:1: calc", "call:2: spin", "call:3: calc"]);
    let bundle = dir.path().join("session.bundle");
    text_output(&run_with_store(
        &store,
        &["trace", "export", run_id, "-o", bundle.to_str().unwrap()],
    ));
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    // A replacement replaces the session's component of its name; there is none here.
    let stats = plugin("text-stats.wasm");
    let out = run(&[
        "replay",
        bundle.to_str().unwrap(),
        "--component",
        stats.to_str().unwrap(),
    ]);
    assert_contains(
        &error_line(&out, 6),
        &["the run used no component named 'text-stats' to replace"],
    );
}

#[test]
fn the_newest_protocol_is_negotiated_by_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let store = dir.path().join("journal.db");
    let calls = json!([["calc", {"expression": "2 ^ 10"}]]);
    let (printed, _) = mcp_client("discover", &tools, &store, &calls);
    assert_eq!(printed["version"], "2026-07-28");
    assert_eq!(printed["calls"][0]["structured"], json!({"value": 1024.0}));
}

#[test]
fn a_tools_directory_that_cannot_be_read_is_a_clear_error() {
    let out = run(&["mcp", "--tools", "/nonexistent/tools"]);
    let line = error_line(&out, 2);
    assert_contains(&line, &["cannot read /nonexistent/tools"]);
    let out = run(&["mcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["--tools <DIR>", "required"],
    );
}

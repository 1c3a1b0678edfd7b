//! `baton inspect`, as text and as JSON.

use sha2::{Digest, Sha256};

use crate::common::*;

fn sha256_of(path: &std::path::Path) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
    )
}

#[test]
fn inspect_shows_world_identity_digest_limits_and_schemas() {
    let path = plugin("calc.wasm");
    let out = run(&["inspect", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_contains(
        &text,
        &[
            "world        tool",
            "name         calc",
            "version      0.1.0",
            &format!("digest       {}", sha256_of(&path)),
            "fuel 1000000000 (policies/default.toml)",
            "memory 64 MiB (policies/default.toml)",
            "input schema",
            "\"expression\"",
            "wasi:",
        ],
    );
}

#[test]
fn inspect_json_is_a_complete_document() {
    let path = plugin("json-query.wasm");
    let v = json_output(&run(&["inspect", path.to_str().unwrap(), "--json"]));
    assert_eq!(v["world"], "tool");
    assert_eq!(v["name"], "json-query");
    assert_eq!(v["digest"], sha256_of(&path));
    assert_eq!(v["size"], std::fs::metadata(&path).unwrap().len());
    assert_eq!(
        v["schemas"]["input"]["required"],
        serde_json::json!(["document", "query"])
    );
    assert_eq!(v["schemas"]["output"]["type"], "object");
    assert_eq!(v["limits"]["timeout_ms"], 5000);
    let imports = v["imports"].as_array().unwrap();
    assert!(imports.iter().all(|i| {
        let i = i.as_str().unwrap();
        i.starts_with("wasi:") || i.starts_with("baton:plugin/")
    }));
}

#[test]
fn inspect_applies_the_command_line_limits() {
    let path = plugin("calc.wasm");
    let v = json_output(&run(&[
        "inspect",
        path.to_str().unwrap(),
        "--json",
        "--timeout",
        "2s",
    ]));
    assert_eq!(v["limits"]["timeout_ms"], 2000);
}

#[test]
fn inspect_recognises_prompt_components() {
    let path = plugin("testing/echo-prompt.wasm");
    let v = json_output(&run(&["inspect", path.to_str().unwrap(), "--json"]));
    assert_eq!(v["world"], "prompt");
    assert_eq!(v["name"], "echo-prompt");
    assert_eq!(v["schemas"]["vars"]["type"], "object");
}

#[test]
fn inspect_recognises_planner_components() {
    let path = plugin("testing/finish-planner.wasm");
    let v = json_output(&run(&["inspect", path.to_str().unwrap(), "--json"]));
    assert_eq!(v["world"], "planner");
    assert_eq!(v["name"], "finish-planner");
    assert_eq!(v["schemas"]["config"]["type"], "null");
}

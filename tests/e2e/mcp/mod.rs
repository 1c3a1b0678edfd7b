//! `baton mcp`: the tools in a directory served to an MCP client Baton did not write (the
//! official Python SDK), over stdio, with both handshakes; unverified components left out; a
//! hostile call answered with an error while the server goes on; the session journaled as
//! one run whose bundle replays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::*;

/// Runs the Python SDK's client (`client.py`) with `target` (`--stdio BATON DIR` or `--http
/// URL ...`) and the journal at `store`, making `calls`; returns what it printed and its
/// stderr (a stdio server's too).
fn python_client(target: &[&str], store: &Path, calls: &Value) -> (Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/mcp/client.py");
    let output: Output = Command::new("python3")
        .arg(script)
        .args(target)
        .arg(calls.to_string())
        .env("BATON_STORE", store)
        .env("BATON_CACHE_DIR", cache_dir())
        .env("BATON_MODELS", models_dir())
        .env("BATON_POLICY", trust_policy())
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

/// The Python client over stdio, with the given handshake.
fn mcp_client(handshake: &str, tools: &Path, store: &Path, calls: &Value) -> (Value, String) {
    let mut target = vec![
        "--stdio",
        env!("CARGO_BIN_EXE_baton"),
        tools.to_str().unwrap(),
    ];
    if handshake == "discover" {
        target.push("--discover");
    }
    python_client(&target, store, calls)
}

/// `baton mcp --http 0 --tools DIR extra...` with the journal at `store`: the running
/// server, the address it said it listens on, and the rest of its stderr (read by a thread
/// until it exits, so that it never blocks writing a log line).
fn http_server(
    tools: &Path,
    store: &Path,
    extra: &[&str],
) -> (Child, String, std::thread::JoinHandle<String>) {
    let mut child = baton()
        .env("BATON_STORE", store)
        .env("BATON_TEST_KEY", "s3cret-key")
        .args(["mcp", "--http", "0", "--tools", tools.to_str().unwrap()])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("baton starts");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("serving MCP at") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "baton mcp exited");
    }
    let address = line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches("/mcp");
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    (child, address.to_string(), rest)
}

/// A POST of `body` to `/mcp` at `address` with `headers`: the status and the body.
fn post(address: &str, headers: &[&str], body: &str) -> (u16, String) {
    exchange(address, headers, body.len(), body)
}

/// A POST to `/mcp` whose headers announce a body of `length` bytes, of which `body` is sent.
fn exchange(address: &str, headers: &[&str], length: usize, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {length}\r\n\
         Connection: close\r\n"
    );
    for header in headers {
        request.push_str(&format!("{header}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, body.to_string())
}

/// Stops `child` as a service manager would (SIGTERM) and waits for it.
fn terminate(mut child: Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

/// The MCP session's run recorded in `store`: its `trace ls` line and what `trace show`
/// prints of it.
fn session_run(store: &Path) -> (String, String) {
    let listed = text_output(&run_with_store(store, &["trace", "ls"]));
    let line = listed.lines().find(|l| l.contains(" mcp ")).expect(&listed);
    let run_id = line.split_whitespace().next().unwrap();
    let shown = text_output(&run_with_store(store, &["trace", "show", run_id]));
    (line.to_string(), shown)
}

/// Exports the run of `line` (from [`session_run`]) to a bundle in `dir`, checks that
/// `baton replay` replays it identically, and returns the bundle.
fn assert_replays_identically(store: &Path, line: &str, dir: &Path) -> PathBuf {
    let run_id = line.split_whitespace().next().unwrap();
    let bundle = dir.join("session.bundle");
    text_output(&run_with_store(
        store,
        &["trace", "export", run_id, "-o", bundle.to_str().unwrap()],
    ));
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    bundle
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
    let (line, shown) = session_run(&store);
    assert!(line.contains("failed"), "a call failed: {line}");
    assert_contains(&shown, &["call:1: calc", "call:2: spin", "call:3: calc"]);
    let bundle = assert_replays_identically(&store, &line, dir.path());
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
fn a_cancelled_call_stops_its_sandbox_and_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("calc.wasm", &tools);
    copy_plugin("testing/sleeper.wasm", &tools);
    let store = dir.path().join("journal.db");
    // The sleeper blocks in the host for an hour: the client hears it is running, cancels
    // it, and calls on.
    let calls = json!([["sleeper", {}, "cancel"], ["calc", {"expression": "1 + 2"}]]);
    let (printed, _) = mcp_client("initialize", &tools, &store, &calls);
    let cancelled = &printed["calls"][0];
    assert_eq!(cancelled["cancelled"], true, "{printed}");
    assert_eq!(cancelled["progress"][0]["message"], "running for 1 s");
    assert_eq!(printed["calls"][1]["structured"], json!({"value": 3.0}));

    // The sandbox was stopped then, not at its deadline: the journal says it was cancelled.
    // A cancelled call is not a failure.
    let (line, shown) = session_run(&store);
    assert!(line.contains(" ok "), "{line}");
    assert_contains(
        &shown,
        &["call:1: sleeper", "cancelled by its caller", "call:2: calc"],
    );
    // The replay stops the sleeper where the record says it was stopped.
    assert_replays_identically(&store, &line, dir.path());
}

#[test]
fn the_directory_is_watched_and_only_verified_changes_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    std::fs::remove_file(tools.join("tampered.wasm")).unwrap();
    std::fs::remove_file(tools.join("tampered.wasm.sig")).unwrap();
    // What is put in place while the server runs: a component changed after it was signed
    // (as `tampered.wasm`, and over `calc.wasm`), and signed ones.
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let tampered = tools_dir(&staging).join("tampered.wasm");
    let tampered_calc = staging.join("calc.wasm");
    std::fs::copy(&tampered, &tampered_calc).unwrap();
    std::fs::copy(
        format!("{}.sig", plugin("calc.wasm").display()),
        format!("{}.sig", tampered_calc.display()),
    )
    .unwrap();
    let text_stats = copy_plugin("text-stats.wasm", &staging);
    let json_query = copy_plugin("json-query.wasm", &staging);
    let into = |name: &str| tools.join(name).to_str().unwrap().to_string();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let store = dir.path().join("journal.db");
    let steps = json!([
        // A tampered drop-in is refused; a signed one is served, and clients are told.
        {"copy": [path(&tampered), into("tampered.wasm")]},
        {"copy": [path(&text_stats), into("text-stats.wasm")]},
        "await-change",
        "list",
        // A replacement that does not verify leaves the tool as it was last verified.
        {"copy": [path(&tampered_calc), into("calc.wasm")]},
        {"remove": into("spin.wasm")},
        "await-change",
        "list",
        ["calc", {"expression": "6 * 7"}],
        // A replacement that verifies is served in its place.
        {"copy": [path(&json_query), into("text-stats.wasm")]},
        "await-change",
        "list",
    ]);
    let (printed, stderr) = mcp_client("initialize", &tools, &store, &steps);
    let names = |listed: &Value| listed["listed"].clone();
    let steps = printed["calls"].as_array().unwrap();
    assert_eq!(names(&steps[3]), json!(["calc", "spin", "text-stats"]));
    assert_eq!(names(&steps[7]), json!(["calc", "text-stats"]));
    assert_eq!(steps[8]["structured"], json!({"value": 42.0}));
    assert_eq!(names(&steps[11]), json!(["calc", "json-query"]));
    let refusals: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not served"))
        .collect();
    let refused = |name: &str| {
        refusals
            .iter()
            .any(|l| l.contains(name) && l.contains("does not verify with any trusted key"))
    };
    assert!(refused("tampered.wasm"), "{stderr}");
    assert!(refused("calc.wasm"), "{stderr}");
}

#[test]
fn prompt_components_are_served_as_prompts_and_rendered_as_steps() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("calc.wasm", &tools);
    copy_plugin("prompts/react.wasm", &tools);
    copy_plugin("testing/echo-prompt.wasm", &tools);
    let store = dir.path().join("journal.db");
    let calc = r#"[{"name": "calc", "description": "arithmetic"}]"#;
    let steps = json!([
        "prompts",
        {"prompt": ["react-prompt", {"task": "add 2 and 3", "tools": calc}]},
        {"prompt": ["react-prompt", {"tools": calc}]},
        {"prompt": ["no-such-prompt", {}]},
        ["calc", {"expression": "2 + 3"}],
    ]);
    let (printed, _) = mcp_client("initialize", &tools, &store, &steps);
    let steps = printed["calls"].as_array().unwrap();
    let prompts = steps[0]["prompts"].as_array().unwrap();
    let names: Vec<&str> = prompts
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo-prompt", "react-prompt"]);
    // Arguments come from the variables' schema.
    let arguments = &prompts[1]["arguments"];
    assert_eq!(arguments[0]["name"], "results");
    assert_eq!(arguments[1]["name"], "task");
    assert_eq!(arguments[1]["required"], true);
    assert_eq!(arguments[2]["name"], "tools");
    assert_eq!(arguments[2]["required"], false);

    // Rendered by the component: the system turn is given as the user's, and the JSON
    // argument reached it as a list.
    let messages = steps[1]["messages"].as_array();
    let messages = messages.unwrap_or_else(|| panic!("{}", steps[1]));
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["role"], "user");
    assert_contains(
        messages[0]["text"].as_str().unwrap(),
        &["You are an agent that completes a task by calling tools."],
    );
    assert_contains(
        messages[1]["text"].as_str().unwrap(),
        &["Task: add 2 and 3", "- calc: arithmetic"],
    );
    assert_contains(
        steps[2]["error"].as_str().unwrap(),
        &["prompt 'react-prompt' needs the argument 'task'"],
    );
    assert_contains(
        steps[3]["error"].as_str().unwrap(),
        &["no prompt named 'no-such-prompt' is served"],
    );
    assert_eq!(steps[4]["structured"], json!({"value": 5.0}));

    // The render is a step of the session's run, and its bundle replays.
    let (line, shown) = session_run(&store);
    assert_contains(&shown, &["render:1: react-prompt", "call:2: calc"]);
    assert_replays_identically(&store, &line, dir.path());
}

#[test]
fn with_too_many_tools_the_client_searches_for_the_ones_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    for tool in [
        "calc.wasm",
        "json-query.wasm",
        "text-stats.wasm",
        "testing/spin.wasm",
    ] {
        copy_plugin(tool, &tools);
    }
    let store = dir.path().join("journal.db");
    let steps = json!([
        "list",
        ["search_tools", {"query": "evaluate an arithmetic expression", "limit": 1}],
        "await-change",
        "list",
        ["calc", {"expression": "6 * 7"}],
        ["search_tools", {}],
    ]);
    let target = [
        "--stdio",
        env!("CARGO_BIN_EXE_baton"),
        tools.to_str().unwrap(),
        "--server-arg=--tool-search-top-k",
        "--server-arg=2",
    ];
    let (printed, _) = python_client(&target, &store, &steps);
    let steps = printed["calls"].as_array().unwrap();
    // Four tools are more than two: only the search is listed.
    assert_eq!(steps[0]["listed"], json!(["search_tools"]));
    let found = &steps[1]["structured"]["tools"];
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["name"], "calc");
    assert_eq!(found[0]["inputSchema"]["required"], json!(["expression"]));
    // What it found is listed from then on, and can be called.
    assert_eq!(steps[3]["listed"], json!(["search_tools", "calc"]));
    assert_eq!(steps[4]["structured"], json!({"value": 42.0}));
    assert_eq!(steps[5]["is_error"], true);
    assert_contains(
        steps[5]["text"][0].as_str().unwrap(),
        &["search_tools needs a \"query\""],
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

/// The MCP Inspector's CLI (from npm; `cargo xtask test` installs it and says where with
/// `BATON_MCP_INSPECTOR`) with `args`: what it printed.
pub(crate) fn inspector(args: &[&str], store: &Path) -> Value {
    let command = std::env::var_os("BATON_MCP_INSPECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/npm/node_modules/.bin/mcp-inspector")
        });
    assert!(
        command.exists(),
        "{} is missing: `cargo xtask test` installs the MCP Inspector",
        command.display()
    );
    let output = Command::new(command)
        .arg("--cli")
        .args(args)
        .env("BATON_STORE", store)
        .env("BATON_CACHE_DIR", cache_dir())
        .env("BATON_MODELS", models_dir())
        .env("BATON_POLICY", trust_policy())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Inspector failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect(&stdout)
}

#[test]
fn the_mcp_inspector_lists_and_calls_tools_over_stdio_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let store = dir.path().join("journal.db");
    let stdio = [env!("CARGO_BIN_EXE_baton"), "mcp", "--tools"];
    let stdio: Vec<&str> = stdio.into_iter().chain([tools.to_str().unwrap()]).collect();
    let with = |target: &[&str], method: &[&str]| {
        let args: Vec<&str> = target.iter().chain(method).copied().collect();
        inspector(&args, &store)
    };
    let listed = with(&stdio, &["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["calc", "spin"]);
    assert_eq!(listed["tools"][0]["annotations"]["readOnlyHint"], true);
    let calc = ["--method", "tools/call", "--tool-name", "calc"];
    let called = with(
        &stdio,
        &[&calc[..], &["--tool-arg", "expression=6 * 7"]].concat(),
    );
    assert_eq!(called["structuredContent"]["value"].as_f64(), Some(42.0));
    assert_eq!(called["isError"], false);

    let (server, address, _log) = http_server(&tools, &store, &[]);
    let url = format!("http://{address}/mcp");
    let http = [url.as_str(), "--transport", "http"];
    let spin = ["--method", "tools/call", "--tool-name", "spin"];
    let called = with(&http, &spin);
    assert_eq!(called["isError"], true);
    assert_contains(
        called["content"][0]["text"].as_str().unwrap(),
        &["tool 'spin' ran out of fuel"],
    );
    let called = with(
        &http,
        &[&calc[..], &["--tool-arg", "expression=2 ^ 8"]].concat(),
    );
    assert_eq!(called["structuredContent"]["value"].as_f64(), Some(256.0));
    assert!(terminate(server).success());
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}"#;

#[test]
fn over_http_a_client_with_the_key_is_served_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let store = dir.path().join("journal.db");
    let (server, address, log) = http_server(&tools, &store, &["--api-key-env", "BATON_TEST_KEY"]);
    let url = format!("http://{address}/mcp");
    let calls = json!([["calc", {"expression": "6 * 7"}], ["spin", {}]]);
    for handshake in [&[][..], &["--discover"][..]] {
        let mut target = vec!["--http", url.as_str(), "--key", "s3cret-key"];
        target.extend_from_slice(handshake);
        let (printed, _) = python_client(&target, &store, &calls);
        assert_eq!(printed["calls"][0]["structured"], json!({"value": 42.0}));
        assert_eq!(printed["calls"][1]["is_error"], true);
    }

    let key = "Authorization: Bearer s3cret-key";
    let (status, body) = post(&address, &[], INITIALIZE);
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(&address, &["Authorization: Bearer wrong"], INITIALIZE);
    assert_eq!(status, 401);
    // A page in a browser, on another origin, cannot reach the server (DNS rebinding).
    let (status, body) = post(&address, &[key, "Origin: http://evil.example"], INITIALIZE);
    assert_eq!(status, 403, "{body}");
    // What is not JSON-RPC gets the JSON-RPC error for it, and the server goes on.
    let (status, body) = post(&address, &[key], "{not json");
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], -32700);
    let (status, body) = post(&address, &[key], r#"{"method": "tools/list"}"#);
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        -32600
    );
    // A body announced past the limit is refused before it is read.
    let (status, body) = exchange(&address, &[key], 5 << 20, "");
    assert_eq!(status, 413, "{body}");
    let (status, body) = post(&address, &[key], INITIALIZE);
    assert_eq!(status, 200, "{body}");

    assert!(terminate(server).success());
    assert_contains(
        &log.join().unwrap(),
        &["rejected request with disallowed Origin"],
    );
    // A session of the 2025 lifecycle is one run; the 2026 lifecycle has no sessions, so
    // each of its calls is a run of its own. All of them ended with the server.
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    let mut runs: Vec<(&str, &str)> = listed
        .lines()
        .filter(|l| l.contains(" mcp "))
        .map(|l| (l.split_whitespace().next().unwrap(), l))
        .collect();
    runs.reverse();
    assert_eq!(runs.len(), 3, "{listed}");
    let steps = |run_id: &str| text_output(&run_with_store(&store, &["trace", "show", run_id]));
    assert!(runs[0].1.contains("failed"), "{}", runs[0].1);
    assert_contains(&steps(runs[0].0), &["call:1: calc", "call:2: spin"]);
    assert!(runs[1].1.contains(" ok "), "{}", runs[1].1);
    assert_contains(&steps(runs[1].0), &["call:1: calc"]);
    assert!(runs[2].1.contains("failed"), "{}", runs[2].1);
    assert_contains(&steps(runs[2].0), &["call:1: spin"]);
    for (run_id, _) in runs {
        let verified = text_output(&run_with_store(&store, &["trace", "verify", run_id]));
        assert_contains(&verified, &["complete"]);
    }
}

#[test]
fn a_bad_http_setup_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let tools = tools.to_str().unwrap();
    let out = run(&["mcp", "--tools", tools, "--http", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &["'nowhere' is not an address to listen on: give PORT or HOST:PORT"],
    );
    let out = baton()
        .env_remove("NO_SUCH_KEY_VARIABLE")
        .args([
            "mcp",
            "--tools",
            tools,
            "--http",
            "0",
            "--api-key-env",
            "NO_SUCH_KEY_VARIABLE",
        ])
        .output()
        .unwrap();
    assert_contains(
        &error_line(&out, 2),
        &["the environment variable NO_SUCH_KEY_VARIABLE is not set"],
    );
}

#[test]
fn an_mcp_session_carries_what_its_client_was_given_into_its_next_calls() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("testing/fs-probe.wasm", &tools);
    copy_plugin("fetch.wasm", &tools);
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/a.txt"), "private words").unwrap();
    let collector = crate::server::Server::start();
    let policy = write_policy(
        dir.path(),
        &format!(
            "[plugins.fs-probe.fs]\nread = [\"notes:/notes\"]\n\
             [plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n\
             [plugins.fetch.flow]\nmay_send = [\"public\"]\n",
            collector.port
        ),
    );
    let store = dir.path().join("journal.db");
    let send = json!({"url": collector.url("/hello")});
    // Sent before the client saw anything private: allowed. After: refused, since the client
    // (the agent) decides its next call having read the note.
    let steps = json!([
        ["fetch", send],
        ["fs-probe", {"ops": [{"op": "read", "path": "/notes/a.txt"}]}],
        ["fetch", send],
    ]);
    let policy_arg = format!("--server-arg={}", policy.display());
    let target = [
        "--stdio",
        env!("CARGO_BIN_EXE_baton"),
        tools.to_str().unwrap(),
        "--server-arg=--policy",
        &policy_arg,
    ];
    let (printed, _) = python_client(&target, &store, &steps);
    let results = printed["calls"].as_array().unwrap();
    assert_eq!(results[0]["is_error"], false, "{printed}");
    assert_eq!(results[1]["is_error"], false, "{printed}");
    assert_eq!(results[2]["is_error"], true, "{printed}");
    assert_eq!(collector.seen().len(), 1);
    let (line, shown) = session_run(&store);
    assert_contains(
        &shown,
        &["flow: flow-denied: 'fetch' may not send data labelled 'private'"],
    );
    // Its replay gives each call the labels it was recorded with.
    assert_replays_identically(&store, &line, dir.path());
}

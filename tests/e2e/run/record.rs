//! What a run leaves: its replay, its progress stream, and resuming it after it was cut short.

use super::*;

#[test]
fn replay_of_a_parallel_run_is_identical_over_20_repetitions() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    // A fan-out of six steps (two of them meeting over HTTP) and a fan-in.
    let mut body = DIAMOND.replace("URL", &server.url(""));
    for i in 0..4 {
        body += &format!(
            "[[config.steps]]\nid = \"fan{i}\"\ntool = \"calc\"\ninput = {{ expression = \"{{{{start.output.value}}}} + {i}\" }}\n"
        );
    }
    let flow = workflow(dir.path(), "planners/static.wasm", &body);
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
    drop(server);
    let root = result["root"].as_str().unwrap().to_string();
    for _ in 0..20 {
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(
            replayed.trim_end().ends_with(&format!("root {root}")),
            "{replayed}"
        );
    }
}

#[test]
fn progress_streams_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        "[[config.steps]]\nid = \"one\"\ntool = \"calc\"\ninput = { expression = \"6 * 7\" }\n";
    let flow = workflow(dir.path(), "planners/static.wasm", body);
    let output = run_with_store(
        &dir.path().join("journal.db"),
        &["run", flow.to_str().unwrap(), "--json"],
    );
    let events: Vec<Value> = text_output(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "planning",
            "step_started",
            "step_finished",
            "planning",
            "run_finished"
        ]
    );
    assert_eq!(events[2]["output"]["value"], 42.0);
    assert_eq!(events[4]["output"]["one"]["value"], 42.0);
    assert_eq!(events[4]["status"], "succeeded");
}

#[test]
fn resume_refuses_unknown_finished_and_non_workflow_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let unknown = run_with_store(&store, &["run", "--resume", "01NOSUCHRUN"]);
    assert_contains(
        &error_line(&unknown, 2),
        &["no run '01NOSUCHRUN' is recorded", "baton trace ls"],
    );

    let calc = plugin("calc.wasm");
    let called = run_with_store(
        &store,
        &[
            "call",
            calc.to_str().unwrap(),
            "--input",
            r#"{"expression":"1+1"}"#,
        ],
    );
    assert!(called.status.success());
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"a\"\ntool = \"calc\"\ninput = { expression = \"2 + 2\" }\n",
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert!(output.status.success());
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    let call_run = listed
        .lines()
        .find(|line| line.split_whitespace().nth(2) == Some("call"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no call run listed: {listed}"));
    let not_a_run = run_with_store(&store, &["run", "--resume", call_run]);
    assert_contains(
        &error_line(&not_a_run, 2),
        &["recorded by `baton call`, not `baton run`"],
    );

    let finished = run_with_store(
        &store,
        &["run", "--resume", result["run"].as_str().unwrap()],
    );
    assert_contains(
        &error_line(&finished, 2),
        &["it succeeded; there is nothing left to do"],
    );
    // Refusals start no run.
    let after = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_eq!(after.lines().count(), listed.lines().count(), "{after}");
}

#[test]
fn resume_after_kill_9_skips_the_completed_steps() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let policy = fetch_policy(dir.path(), &server);
    let body = format!(
        r#"timeout = "60s"
[[config.steps]]
id = "s1"
tool = "calc"
input = {{ expression = "2 + 3" }}

[[config.steps]]
id = "s2"
tool = "calc"
input = {{ expression = "{{{{s1.output.value}}}} * 10" }}

[[config.steps]]
id = "s3"
tool = "fetch"
input = {{ url = "{}" }}
depends_on = ["s2"]

[[config.steps]]
id = "s4"
tool = "calc"
input = {{ expression = "{{{{s2.output.value}}}} + 1" }}
depends_on = ["s3"]
"#,
        server.url("/hold")
    );
    let flow = workflow(dir.path(), "planners/static.wasm", &body);
    let child = baton()
        .env("BATON_STORE", &store)
        .args([
            "run",
            flow.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once s3 waits on the server and the journal holds s1 and s2 (after plan:0).
    kill_9_when_held(child, &server, &store, 3);
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_contains(&listed, &["running"]);
    let killed = listed.split_whitespace().next().unwrap().to_string();

    let result_file = dir.path().join("resumed.json");
    let bundle = dir.path().join("resumed.bundle");
    let output = run_with_store(
        &store,
        &[
            "run",
            "--resume",
            &killed,
            "--output",
            result_file.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_ne!(result["run"], killed);
    for id in ["s1", "s2"] {
        let taken = step(&result, id);
        assert_eq!(taken["resumed_from"], killed.as_str(), "{result}");
        assert_eq!(taken["attempts"], 0);
    }
    assert_eq!(step(&result, "s2")["output"]["value"], 50.0);
    assert_eq!(step(&result, "s3")["output"]["body"], "released");
    assert_eq!(step(&result, "s4")["output"]["value"], 51.0);
    assert!(step(&result, "s4").get("resumed_from").is_none());
    assert_eq!(server.held.load(Ordering::SeqCst), 2, "s3 ran once per run");
    // The resumed run replays on its own, taken-over outputs included.
    drop(server);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    // A run that succeeded has nothing to resume.
    let resumed_run = result["run"].as_str().unwrap();
    let again = run_with_store(&store, &["run", "--resume", resumed_run]);
    assert_contains(
        &error_line(&again, 2),
        &["cannot resume run", "it succeeded"],
    );
}

#[test]
fn replaying_a_run_with_a_changed_tool_diverges_where_the_tool_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[[config.steps]]\nid = \"words\"\ntool = \"text-stats\"\ninput = { text = \"a b\" }\n\
                [[config.steps]]\nid = \"sum\"\ntool = \"calc\"\ninput = { expression = \"1 + 1\" }\n";
    let flow = workflow(dir.path(), "planners/static.wasm", body);
    let bundle = dir.path().join("run.bundle");
    let (output, _) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
    assert!(output.status.success());
    // The same calc with a custom section appended: another digest, signed like the original.
    let changed = dir.path().join("calc.wasm");
    let mut bytes = std::fs::read(plugin("calc.wasm")).unwrap();
    bytes.extend_from_slice(&[0x00, 0x06, 0x04, b'n', b'o', b't', b'e', b'x']);
    std::fs::write(&changed, bytes).unwrap();
    let (key, _, password) = crate::common::dev_key();
    text_output(
        &baton()
            .env("BATON_KEY_PASSWORD", password)
            .args([
                "sign",
                "--key",
                key.to_str().unwrap(),
                changed.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
    );
    let replayed = run(&[
        "replay",
        bundle.to_str().unwrap(),
        "--component",
        changed.to_str().unwrap(),
    ]);
    // Only its digest differs, which is expected: it behaves as the recorded calc did.
    let out = text_output(&replayed);
    let digest = |path: &Path| baton::Digest::of(&std::fs::read(path).unwrap()).to_string();
    assert_contains(
        &out,
        &[
            &format!(
                "replaced: calc {} replaced by {}",
                digest(&plugin("calc.wasm")),
                digest(&changed)
            ),
            "identical behaviour: ",
        ],
    );
    // A component of a name the run never used is refused.
    let line = error_line(
        &run(&[
            "replay",
            bundle.to_str().unwrap(),
            "--component",
            plugin("testing/llm-probe.wasm").to_str().unwrap(),
        ]),
        6,
    );
    assert_contains(
        &line,
        &["the run used no component named 'llm-probe' to replace"],
    );
}

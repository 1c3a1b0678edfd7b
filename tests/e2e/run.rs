//! `baton run`: planners, DAGs of steps run in parallel, retries, deadlines, max_steps,
//! budgets, results and replay, against real tools and servers on loopback.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::server::read_request;

/// A server on loopback for steps that must meet or fail:
///
/// - `/meet/N/NAME`: answers "met NAME" only once N such requests are waiting at the same
///   time, so the steps making them must overlap; after 4 s alone it answers 504;
/// - `/flaky/K`: drops the first K connections without an answer, then answers "ok";
/// - `/hang`: answers after 4 s;
/// - `/vote`: answers each request with the next of `VOTES`, in turn;
/// - `/hold`: the first request waits 30 s (the test kills its run meanwhile), later ones
///   answer at once.
struct StepServer {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Requests for `/hold` so far.
    held: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Meeting {
    waiting: Mutex<usize>,
    arrived: Condvar,
}

impl StepServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let meeting = Arc::new(Meeting::default());
        let flaky = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let stopping = stop.clone();
        let holds = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (meeting, flaky, holds) = (meeting.clone(), flaky.clone(), holds.clone());
                std::thread::spawn(move || serve(stream, &meeting, &flaky, &holds));
            }
        });
        Self { port, stop, held }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StepServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

const VOTES: [&str; 3] = [
    "The capital of France is Paris.",
    "Paris is the capital city of France.",
    "Bananas are yellow when they are ripe.",
];

fn serve(stream: TcpStream, meeting: &Meeting, flaky: &AtomicUsize, held: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (status, body) = match parts.as_slice() {
        ["meet", n, name] => {
            let n: usize = n.parse().unwrap();
            let mut waiting = meeting.waiting.lock().unwrap();
            *waiting += 1;
            meeting.arrived.notify_all();
            let (waiting, timeout) = meeting
                .arrived
                .wait_timeout_while(waiting, Duration::from_secs(4), |w| *w < n)
                .unwrap();
            drop(waiting);
            match timeout.timed_out() {
                true => ("504 Gateway Timeout", "alone".to_string()),
                false => ("200 OK", format!("met {name}")),
            }
        }
        ["flaky", k] => {
            if flaky.fetch_add(1, Ordering::SeqCst) < k.parse().unwrap() {
                return; // dropped without an answer
            }
            ("200 OK", "ok".to_string())
        }
        ["vote"] => {
            let turn = flaky.fetch_add(1, Ordering::SeqCst);
            ("200 OK", VOTES[turn % VOTES.len()].to_string())
        }
        ["hold"] => {
            if held.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_secs(30));
            }
            ("200 OK", "released".to_string())
        }
        ["hang"] => {
            std::thread::sleep(Duration::from_secs(4));
            ("200 OK", "late".to_string())
        }
        _ => ("404 Not Found", "no such page".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let stream = reader.get_mut();
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

/// A workflow in `dir` running `planner` with the built tools, with `body` appended.
fn workflow(dir: &Path, planner: &str, body: &str) -> PathBuf {
    let path = dir.join("flow.toml");
    let text = format!(
        "planner = {:?}\ntools = [{:?}]\n{body}",
        plugin(planner),
        plugin("calc.wasm").parent().unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A policy in `dir` letting `fetch` reach `server`.
fn fetch_policy(dir: &Path, server: &StepServer) -> PathBuf {
    write_policy(
        dir,
        &format!(
            "[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n",
            server.port
        ),
    )
}

/// Runs `baton run FLOW --output result.json [extra]` with its journal in `dir`; returns
/// the process output and the result file.
fn run_flow(dir: &Path, flow: &Path, extra: &[&str]) -> (Output, Value) {
    let result = dir.join("result.json");
    let mut args = vec![
        "run",
        flow.to_str().unwrap(),
        "--output",
        result.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = run_with_store(&dir.join("journal.db"), &args);
    let text = std::fs::read_to_string(&result).unwrap_or_else(|_| {
        panic!(
            "no result written; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).unwrap())
}

fn step<'a>(result: &'a Value, id: &str) -> &'a Value {
    result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {result}"))
}

fn span(step: &Value) -> (u64, u64) {
    (
        step["started_ms"].as_u64().unwrap(),
        step["finished_ms"].as_u64().unwrap(),
    )
}

const DIAMOND: &str = r#"
[[config.steps]]
id = "start"
tool = "calc"
input = { expression = "1 + 2" }

[[config.steps]]
id = "left"
tool = "fetch"
input = { url = "URL/meet/2/left-{{start.output.value}}" }

[[config.steps]]
id = "right"
tool = "fetch"
input = { url = "URL/meet/2/right" }
depends_on = ["start"]

[[config.steps]]
id = "join"
tool = "calc"
input = { expression = "{{start.output.value}} * 10" }
depends_on = ["left", "right"]

[config.output]
left = "{{left.output.body}}"
right = "{{right.output.body}}"
total = "{{join.output.value}}"
"#;

#[test]
fn a_diamond_runs_in_order_with_its_middle_steps_overlapping() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let body = DIAMOND.replace("URL", &server.url(""));
    let flow = workflow(dir.path(), "planners/static.wasm", &body);
    let (output, result) = run_flow(dir.path(), &flow, &["--policy", policy.to_str().unwrap()]);
    let stdout = text_output(&output);
    assert_eq!(result["status"], "succeeded", "{result}");
    let expected = json!({"left": "met left-3.0", "right": "met right", "total": 30.0});
    assert_eq!(result["output"], expected);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), expected);
    // In order: start before both middle steps, both before join.
    let (start, left, right, join) = (
        span(step(&result, "start")),
        span(step(&result, "left")),
        span(step(&result, "right")),
        span(step(&result, "join")),
    );
    assert!(start.1 <= left.0 && start.1 <= right.0, "{result}");
    assert!(left.1 <= join.0 && right.1 <= join.0, "{result}");
    // Overlapping: each middle step started before the other finished (the server also
    // answered both only because both requests waited there together).
    assert!(left.0 < right.1 && right.0 < left.1, "{result}");
    assert_eq!(result["totals"]["steps"], 4);
    assert_eq!(result["totals"]["decisions"], 2);
}

#[test]
fn max_parallel_one_runs_the_middle_steps_one_after_the_other() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    // Alone at the meeting point, each middle step gets a 504 after its wait.
    let body = format!(
        "timeout = \"10s\"\n{}",
        DIAMOND.replace("URL", &server.url(""))
    );
    let flow = workflow(dir.path(), "planners/static.wasm", &body);
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &["--policy", policy.to_str().unwrap(), "--max-parallel", "1"],
    );
    assert!(output.status.success());
    assert_eq!(result["output"]["left"], "alone");
    let (left, right) = (span(step(&result, "left")), span(step(&result, "right")));
    assert!(left.1 <= right.0 || right.1 <= left.0, "{result}");
}

/// A one-step workflow fetching `path` from `server`, with `settings` added.
fn fetch_flow(dir: &Path, server: &StepServer, path: &str, settings: &str) -> PathBuf {
    let body = format!(
        "{settings}\n[[config.steps]]\nid = \"get\"\ntool = \"fetch\"\ninput = {{ url = \"{}\" }}\n",
        server.url(path)
    );
    workflow(dir, "planners/static.wasm", &body)
}

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
    let flow = workflow(dir.path(), "planners/static.wasm", &steps);
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
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert!(output.status.success(), "{result}");
    let ran: Vec<&str> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["check", "three"]);
    assert_eq!(
        result["output"],
        json!({"check": {"value": 3.0}, "three": {"value": 300.0}})
    );
    assert_eq!(result["totals"]["decisions"], 3);
}

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
fn a_run_without_a_workflow_file_takes_planner_tools_and_task() {
    let dir = tempfile::tempdir().unwrap();
    let planner = plugin("testing/finish-planner.wasm");
    let tools = plugin("calc.wasm");
    let output = run_with_store(
        &dir.path().join("journal.db"),
        &[
            "run",
            "--planner",
            planner.to_str().unwrap(),
            "--tools",
            tools.to_str().unwrap(),
            "--input",
            r#"{"answer": 42}"#,
            "say the answer",
        ],
    );
    assert_eq!(json_output(&output), json!({"answer": 42}));
}

#[test]
fn bad_workflows_and_plans_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let missing = run_with_store(&store, &["run", "/nonexistent/flow.toml"]);
    assert_contains(
        &error_line(&missing, 2),
        &["workflow /nonexistent/flow.toml", "cannot read it"],
    );
    let flow = workflow(dir.path(), "planners/static.wasm", "max_paralel = 2\n");
    let typo = run_with_store(&store, &["run", flow.to_str().unwrap()]);
    assert_contains(&error_line(&typo, 2), &["max_paralel"]);
    let not_a_planner = workflow(dir.path(), "calc.wasm", "");
    let wrong = run_with_store(&store, &["run", not_a_planner.to_str().unwrap()]);
    assert_contains(
        &error_line(&wrong, 2),
        &["is a tool component", "needs a planner"],
    );
    let nothing = run_with_store(&store, &["run"]);
    assert_contains(&error_line(&nothing, 2), &["needs a workflow file"]);
    let flow = workflow(dir.path(), "planners/static.wasm", "");
    let bad_input = run_with_store(&store, &["run", flow.to_str().unwrap(), "--input", "{"]);
    assert_contains(&error_line(&bad_input, 2), &["not JSON"]);
    // A plan naming a tool that is not there fails the run, naming the tool.
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"x\"\ntool = \"nope\"\n",
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["impossible plan", "no tool named 'nope'"],
    );
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
fn replicates_return_an_evidence_bundle_with_a_consensus() {
    let server = StepServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = fetch_policy(dir.path(), &server);
    let body = format!(
        "[[config.steps]]\nid = \"ask\"\ntool = \"fetch\"\nreplicates = 3\ninput = {{ url = \"{}\" }}\n\n[config.output]\nanswer = \"{{{{ask.output.consensus.body}}}}\"\n",
        server.url("/vote")
    );
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
    let ask = step(&result, "ask");
    assert_eq!(ask["attempts"], 3);
    let evidence = &ask["output"];
    assert_eq!(evidence["replicates"], 3);
    assert_eq!(evidence["measure"], "embedding:all-minilm-l6-v2");
    let bodies: Vec<&str> = evidence["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["body"].as_str().unwrap())
        .collect();
    let mut sorted = bodies.clone();
    sorted.sort();
    let mut votes = VOTES.to_vec();
    votes.sort();
    assert_eq!(sorted, votes, "each replicate made its own request");
    // The consensus is one of the two answers that agree, and says so with its confidence.
    let answer = result["output"]["answer"].as_str().unwrap();
    assert!(answer.contains("Paris"), "{result}");
    let sims = &evidence["similarities"];
    let at = |text: &str| bodies.iter().position(|b| *b == text).unwrap();
    let (paris, paris2, banana) = (at(VOTES[0]), at(VOTES[1]), at(VOTES[2]));
    assert_eq!(sims[paris][paris], 1.0);
    assert_eq!(sims[paris][paris2], sims[paris2][paris]);
    assert!(
        sims[paris][paris2].as_f64() > sims[paris][banana].as_f64(),
        "{sims}"
    );
    let confidence = evidence["confidence"].as_f64().unwrap();
    let medoid = evidence["consensus_index"].as_u64().unwrap() as usize;
    let expected = (1..3)
        .map(|k| sims[medoid][(medoid + k) % 3].as_f64().unwrap())
        .sum::<f64>()
        / 2.0;
    assert!(
        (confidence - expected).abs() < 1e-3,
        "{confidence} vs {expected}"
    );
    // The embeddings are journaled: a replay needs neither the server nor the model.
    drop(server);
    let replayed = baton()
        .env("BATON_MODELS", dir.path().join("no-models"))
        .args(["replay", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text_output(&replayed).starts_with("identical: "));
}

#[test]
fn with_more_tools_than_top_k_the_planner_sees_those_closest_to_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |tool: &str, input: &str| {
        format!(
            "task = \"count the words and lines in a piece of text\"\ntool_search_top_k = 1\n\
             [[config.steps]]\nid = \"one\"\ntool = \"{tool}\"\ninput = {input}\n"
        )
    };
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        &plan("text-stats", "{ text = \"a b\\nc\" }"),
    );
    let bundle = dir.path().join("run.bundle");
    let (output, result) = run_flow(dir.path(), &flow, &["--bundle", bundle.to_str().unwrap()]);
    assert!(output.status.success(), "{result}");
    assert_eq!(step(&result, "one")["output"]["words"], 3);
    let replayed = baton()
        .env("BATON_MODELS", dir.path().join("no-models"))
        .args(["replay", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text_output(&replayed).starts_with("identical: "));
    // The arithmetic tool is not among the one shown for this task.
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        &plan("calc", "{ expression = \"1\" }"),
    );
    let (output, result) = run_flow(dir.path(), &flow, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        result["reason"].as_str().unwrap(),
        &["no tool named 'calc' is available (available: text-stats)"],
    );
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
    let mut child = baton()
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
    let entered = || -> i64 {
        rusqlite::Connection::open(&store)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM events WHERE chain = 'run' AND kind = 'step_ended'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.held.load(Ordering::SeqCst) == 0 || entered() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached s3"
        );
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
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
fn an_llm_step_of_a_paraphrased_second_run_is_served_from_the_cache() {
    let server = crate::model_server::ModelServer::start(
        Vec::new(),
        crate::model_server::Reply::ok("Paris.", (9, 2)),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &(server.policy("test", "retries = 0")
            + "input_per_1k = 1.0\noutput_per_1k = 2.0\n"
            + "\n[cache]\nenabled = true\n\n[plugins.ask.llm]\nmodels = [\"test\"]\n"),
    );
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"answer\"\ntool = \"ask\"\n\
         input = { question = \"{{task}}\", model = \"test\" }\n",
    );
    let policy_arg = policy.to_str().unwrap();
    let (output, first) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "What is the capital of France?",
            "--budget",
            "calls=1",
            "--json",
        ],
    );
    assert!(output.status.success(), "{first}");
    // The one call the budget allows is spent: a warning says so.
    let events = String::from_utf8_lossy(&output.stdout);
    let warning = events
        .lines()
        .find(|l| l.contains(r#""event":"budget_warning""#))
        .unwrap_or_else(|| panic!("no budget warning in {events}"));
    assert_contains(warning, &["budget.calls"]);
    let answer = step(&first, "answer");
    assert_eq!(answer["output"]["answer"], "Paris.");
    assert!(answer.get("cache_tier").is_none(), "{answer}");
    assert_eq!(
        (answer["tokens"].as_u64(), answer["cache_hits"].as_u64()),
        (Some(11), Some(0))
    );
    // 9 input tokens at $1 per thousand, 2 output tokens at $2 per thousand.
    assert_eq!(first["totals"]["cost_usd"], 0.013);
    // A paraphrase: no request to the model, nothing spent, the hit counted and reported.
    let (output, second) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "what is the capital city of France?",
            "--json",
        ],
    );
    assert!(output.status.success(), "{second}");
    assert_eq!(server.requests().len(), 1);
    let answer = step(&second, "answer");
    assert_eq!(answer["output"]["answer"], "Paris.");
    assert_eq!(
        (answer["tokens"].as_u64(), answer["cache_hits"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(answer["cache_tier"], "semantic");
    // The first question again, word for word: the exact tier.
    let (_, third) = run_flow(
        dir.path(),
        &flow,
        &[
            "--policy",
            policy_arg,
            "--task",
            "What is the capital of France?",
        ],
    );
    assert_eq!(step(&third, "answer")["cache_tier"], "exact");
    assert_eq!(server.requests().len(), 1);
    assert_eq!(second["totals"]["cache_hits"], 1);
    assert_contains(&second["budget"].to_string(), &["1 cache hit"]);
    let events = String::from_utf8_lossy(&output.stdout);
    assert!(
        events.lines().any(|l| l.contains(r#""event":"cache_hit""#)),
        "{events}"
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

mod react {
    use super::*;
    use crate::model_server::{ModelServer, Reply};

    /// A react workflow in `dir` with the `calc` tool, the model `test` served by `server`,
    /// and `config` as the planner's `[config]` body.
    fn flow(dir: &Path, server: &ModelServer, config: &str) -> (PathBuf, PathBuf) {
        let policy = write_policy(
            dir,
            &(server.policy("test", "retries = 0")
                + "\n[plugins.react.llm]\nmodels = [\"test\"]\n\
                   \n[plugins.react-prompt.llm]\nmodels = [\"test\"]\n"),
        );
        let path = dir.join("react.toml");
        let text = format!(
            "planner = {:?}\nprompts = [{:?}]\ntools = [{:?}]\nmax_steps = 8\n\
             task = \"What is 6 times 7?\"\n[config]\nmodel = \"test\"\n{config}",
            plugin("planners/react.wasm"),
            plugin("prompts/react.wasm"),
            plugin("calc.wasm"),
        );
        std::fs::write(&path, text).unwrap();
        (path, policy)
    }

    /// The user message of the `n`th request the model server got.
    fn user_message(server: &ModelServer, n: usize) -> String {
        let body = &server.requests()[n].body;
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "user")
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_model_chooses_a_tool_sees_its_result_and_finishes() {
        let server = ModelServer::start(
            vec![Reply::ok(r#"CALL calc {"expression": "6 * 7"}"#, (50, 9))],
            Reply::ok("FINISH 6 times 7 is 42.", (60, 7)),
        );
        let dir = tempfile::tempdir().unwrap();
        let (flow, policy) = flow(dir.path(), &server, "");
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
        assert_eq!(result["output"], json!({"answer": "6 times 7 is 42."}));
        assert_eq!(step(&result, "step1")["output"]["value"], 42.0);
        assert_eq!(result["totals"]["decisions"], 2);
        assert_eq!(result["totals"]["tokens"], 126);
        // The prompt component rendered the protocol, the task, the tools, then the result.
        assert_eq!(server.requests().len(), 2);
        assert_contains(
            &user_message(&server, 0),
            &["Task: What is 6 times 7?", "- calc: "],
        );
        assert_contains(
            &user_message(&server, 1),
            &[r#"step1 (calc) returned: {"value":42.0}"#],
        );
        // The whole loop replays without the model server.
        drop(server);
        let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
        assert!(replayed.starts_with("identical: "), "{replayed}");
    }

    /// Three calls of `json-query` echoing long texts, then an answer.
    fn long_results_server() -> ModelServer {
        let calls = ["alpha", "bravo", "charlie"]
            .iter()
            .map(|word| {
                let text = format!("{word} ").repeat(40);
                let call = json!({"document": {"text": text}, "query": "$.text"});
                Reply::ok(&format!("CALL json-query {call}"), (10, 10))
            })
            .collect();
        ModelServer::start(calls, Reply::ok("FINISH done", (10, 2)))
    }

    /// The line of `step` among the results of `message`.
    fn result_line<'m>(message: &'m str, step: &str) -> &'m str {
        message
            .lines()
            .find(|l| l.starts_with(&format!("{step} (")))
            .unwrap_or_else(|| panic!("no {step} in {message}"))
    }

    #[test]
    fn the_prompt_condenses_then_drops_the_oldest_results_to_fit_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let query = plugin("json-query.wasm");
        // First with room for everything, to measure the parts of the prompt.
        let server = long_results_server();
        let (flow_path, policy) = flow(dir.path(), &server, "context_tokens = 100000\n");
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--tools",
            query.to_str().unwrap(),
        ];
        let (output, _) = run_flow(dir.path(), &flow_path, &args);
        assert!(output.status.success());
        let full = user_message(&server, 3);
        let body = &server.requests()[3].body;
        let system = body["messages"][0]["content"].as_str().unwrap().len();
        let (l1, l2, l3) = (
            result_line(&full, "step1").len(),
            result_line(&full, "step2").len(),
            result_line(&full, "step3").len(),
        );
        // The test provider counts a token per byte. Room for the fixed parts (with the
        // reserve for a "left out" line), the newest result whole and the next condensed.
        let fixed =
            system + full.len() - (l1 + l2 + l3 + 2) + "(999999 earlier results left out)\n".len();
        let condensed = 80 + "… (condensed)".len();
        let budget = fixed + l3 + condensed + 20;
        assert!(
            l2 > condensed + 20,
            "the results must be long enough to condense"
        );

        let server = long_results_server();
        let (flow_path, policy) =
            flow(dir.path(), &server, &format!("context_tokens = {budget}\n"));
        let args = [
            "--policy",
            policy.to_str().unwrap(),
            "--tools",
            query.to_str().unwrap(),
        ];
        let (output, result) = run_flow(dir.path(), &flow_path, &args);
        assert!(output.status.success(), "{result}");
        let last = user_message(&server, 3);
        // The newest result whole, the one before condensed, the oldest left out (and said).
        assert_eq!(result_line(&last, "step3"), result_line(&full, "step3"));
        assert!(
            result_line(&last, "step2").ends_with("… (condensed)"),
            "{last}"
        );
        assert!(!last.contains("step1 ("), "{last}");
        assert_contains(&last, &["(1 earlier results left out)"]);
    }

    #[test]
    fn a_local_model_that_ignores_the_protocol_still_ends_the_run_with_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let policy = write_policy(
            dir.path(),
            "[plugins.react.llm]\nmodels = [\"smollm2\"]\n\
             [plugins.react-prompt.llm]\nmodels = [\"smollm2\"]\n",
        );
        let path = dir.path().join("react.toml");
        let text = format!(
            "planner = {:?}\nprompts = [{:?}]\ntools = [{:?}]\nmax_steps = 4\ntimeout = \"60s\"\n\
             task = \"What is 6 times 7? Use the calc tool.\"\n[config]\nmax_tokens = 48\n",
            plugin("planners/react.wasm"),
            plugin("prompts/react.wasm"),
            plugin("calc.wasm"),
        );
        std::fs::write(&path, text).unwrap();
        let (output, result) = run_flow(
            dir.path(),
            &path,
            &["--policy", policy.to_str().unwrap(), "--timeout", "60s"],
        );
        // SmolLM2-135M may call calc or answer at once; either way the loop ends in an answer.
        assert!(output.status.success(), "{result}");
        assert!(result["output"]["answer"].is_string(), "{result}");
        assert!(result["totals"]["llm_calls"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn a_tool_may_not_render_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let flow = workflow(
        dir.path(),
        "planners/static.wasm",
        "[[config.steps]]\nid = \"probe\"\ntool = \"llm-probe\"\ninput = { render = [\"react-prompt\"] }\n",
    );
    let probe = plugin("testing/llm-probe.wasm");
    let prompts = plugin("prompts/react.wasm");
    let (output, result) = run_flow(
        dir.path(),
        &flow,
        &[
            "--tools",
            probe.to_str().unwrap(),
            "--prompts",
            prompts.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{result}");
    let rendered = &step(&result, "probe")["output"]["rendered"][0]["error"];
    assert_eq!(rendered["kind"], "not-granted", "{result}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("denied: prompts: rendering prompt 'react-prompt'")),
        "{stderr}"
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
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../attestations/keys/baton-dev.key");
    text_output(
        &baton()
            .env("BATON_KEY_PASSWORD", "baton-dev")
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
    // `words` replays as recorded; `sum`, the step that runs the new calc, is where it differs.
    assert_contains(
        &error_line(&replayed, 6),
        &[
            "replay diverged at chain 'run'",
            "(step_started)",
            "\"step\":\"sum\"",
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

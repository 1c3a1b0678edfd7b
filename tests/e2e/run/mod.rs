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

mod budgets;
mod planners;
mod record;
mod steps;

/// A server on loopback for steps that must meet or fail:
///
/// - `/meet/N/NAME`: answers "met NAME" only once N such requests are waiting at the same
///   time, so the steps making them must overlap; after 4 s alone it answers 504;
/// - `/flaky/K`: drops the first K connections without an answer, then answers "ok";
/// - `/hang`: answers after 4 s;
/// - `/vote`: answers each request with the next of `VOTES`, in turn;
/// - `/hold`: the first request waits 30 s (the test kills its run meanwhile), later ones
///   answer at once.
pub(crate) struct StepServer {
    pub(crate) port: u16,
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
    pub(crate) fn start() -> Self {
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

    pub(crate) fn url(&self, path: &str) -> String {
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

/// Kills `child` (kill -9) once `server` holds a `/hold` request and the run chain in `store`
/// has entered `steps` steps (decisions included), so that a resume has those to take over.
pub(crate) fn kill_9_when_held(
    mut child: std::process::Child,
    server: &StepServer,
    store: &Path,
    steps: i64,
) {
    let entered = || -> i64 {
        rusqlite::Connection::open(store)
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
    while server.held.load(Ordering::SeqCst) == 0 || entered() < steps {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got to the held request with {steps} steps entered"
        );
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
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
pub(crate) fn run_flow(dir: &Path, flow: &Path, extra: &[&str]) -> (Output, Value) {
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

pub(crate) fn step<'a>(result: &'a Value, id: &str) -> &'a Value {
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

//! The runs API over plain HTTP (reqwest) and server-sent events (curl): a workflow from the
//! server's allowlist submitted, its events streamed, its result read and its bundle
//! downloaded and replayed; keys that see only their own runs; paths outside the
//! allowlist refused; cancellation; a full queue answered 429; and a server killed with
//! runs in flight, whose runs are resumed without repeating finished steps.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{Api, Served, make_key};
use crate::common::*;

/// A server's directories: workflows, components (the allowlists) and its journal.
pub(super) struct Setup {
    dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["workflows", "components"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for name in [
            "planners/static.wasm",
            "calc.wasm",
            "text-stats.wasm",
            "testing/sleeper.wasm",
        ] {
            copy_plugin(name, &dir.path().join("components"));
        }
        let store = dir.path().join("journal.db");
        Self { dir, store }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes workflow `name` (static planner, the components directory's tools) with
    /// `body`.
    pub fn workflow(&self, name: &str, body: &str) {
        let text = format!(
            "planner = {:?}\ntools = [{:?}]\n{body}",
            self.path("components/static.wasm"),
            self.path("components")
        );
        std::fs::write(self.path(&format!("workflows/{name}.toml")), text).unwrap();
    }

    fn serve(&self, extra: &[&str]) -> Served {
        self.serve_with("", extra)
    }

    /// `serve` under a policy of `policy`'s text.
    pub fn serve_with(&self, policy: &str, extra: &[&str]) -> Served {
        let policy = write_policy(self.dir.path(), policy);
        let (workflows, components) = (self.path("workflows"), self.path("components"));
        let mut args = vec![
            "--workflows",
            workflows.to_str().unwrap(),
            "--components",
            components.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Served::start(&self.store, &policy, &args)
    }
}

pub(super) const FANOUT: &str = r#"
task = "measure a sentence"

[input]
text = "one small step for a tool"

[[config.steps]]
id = "stats"
tool = "text-stats"
input = { text = "{{input.text}}" }

[[config.steps]]
id = "double"
tool = "calc"
input = { expression = "{{stats.output.words}} * 2" }

[[config.steps]]
id = "square"
tool = "calc"
input = { expression = "{{stats.output.words}} ^ 2" }
"#;

/// `curl -N` of a run's event stream: a running child, and a reader of its lines.
fn events(
    served: &Served,
    id: &str,
    key: &str,
) -> (Child, impl Iterator<Item = (String, Value)> + use<>) {
    let mut child = Command::new("curl")
        .args(["-sS", "-N", "-H", &format!("Authorization: Bearer {key}")])
        .arg(served.url(&format!("/v1/runs/{id}/events")))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut name = String::new();
    let events = lines.map_while(Result::ok).filter_map(move |line| {
        if let Some(event) = line.strip_prefix("event: ") {
            name = event.to_string();
        }
        let data = line.strip_prefix("data: ")?;
        Some((name.clone(), serde_json::from_str(data).unwrap()))
    });
    (child, events)
}

/// Every event of run `id` until it finishes; the last is `run_finished`.
pub(crate) fn all_events(served: &Served, id: &str, key: &str) -> Vec<(String, Value)> {
    let (mut child, stream) = events(served, id, key);
    let seen: Vec<(String, Value)> = stream.collect();
    child.wait().unwrap();
    seen
}

pub(super) fn submit(api: &Api, key: &str, body: Value) -> (u16, Value) {
    api.send("POST", "/v1/runs", Some(key), &body.to_string())
}

#[test]
fn a_run_streams_its_events_and_its_bundle_replays_for_its_key_only() {
    let setup = Setup::new();
    setup.workflow("fanout", FANOUT);
    let alice = make_key(&setup.store, "alice", &["--scopes", "runs"]);
    let bob = make_key(&setup.store, "bob", &["--scopes", "runs"]);
    let gateway_only = make_key(&setup.store, "gw", &["--scopes", "llm"]);
    let served = setup.serve(&[]);
    let api = Api::new(&served.address);
    let (status, accepted) = submit(&api, &alice, json!({"workflow": "fanout"}));
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    // A static planner's plan is known at once.
    let plan: Vec<&str> = accepted["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(plan, ["stats", "double", "square"]);
    let seen = all_events(&served, &id, &alice);
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"planning"), "{names:?}");
    assert_eq!(names.last(), Some(&"run_finished"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "step_finished").count(), 3);
    let (_, finished) = seen.last().unwrap();
    assert_eq!(finished["status"], "succeeded");
    // The same events `baton run --json` prints: the result is in the last one.
    assert_eq!(finished["run"], id.as_str());
    let (status, shown) = api.send("GET", &format!("/v1/runs/{id}"), Some(&alice), "");
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["result"]["output"]["square"]["value"], 36.0);
    assert_eq!(shown["result"]["totals"]["steps"], 3);
    // The bundle downloads and replays identically, offline.
    let bundle = setup.path("run.bundle");
    let download = Command::new("curl")
        .args(["-sS", "-f", "-o", bundle.to_str().unwrap()])
        .args(["-H", &format!("Authorization: Bearer {alice}")])
        .arg(served.url(&format!("/v1/runs/{id}/bundle")))
        .status()
        .unwrap();
    assert!(download.success());
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    // Another key neither sees nor lists it, nor cancels it; a key without the scope is
    // refused.
    for path in [format!("/v1/runs/{id}"), format!("/v1/runs/{id}/bundle")] {
        let (status, answer) = api.send("GET", &path, Some(&bob), "");
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (404, json!("not_found"))
        );
    }
    let (status, _) = api.send("POST", &format!("/v1/runs/{id}/cancel"), Some(&bob), "");
    assert_eq!(status, 404);
    let (_, listed) = api.send("GET", "/v1/runs", Some(&bob), "");
    assert_eq!(listed["data"], json!([]));
    let (_, listed) = api.send("GET", "/v1/runs?limit=1", Some(&alice), "");
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert_eq!(listed["next"], id.as_str());
    let (status, _) = submit(&api, &gateway_only, json!({"workflow": "fanout"}));
    assert_eq!(status, 403);
    let (status, answer) = api.send("GET", &format!("/v1/runs/{id}"), None, "");
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (401, json!("missing_api_key"))
    );
    // A run that has ended cannot be cancelled.
    let (status, answer) = api.send("POST", &format!("/v1/runs/{id}/cancel"), Some(&alice), "");
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (409, json!("run_ended"))
    );
}

#[test]
fn requests_outside_the_allowlists_are_refused() {
    let setup = Setup::new();
    setup.workflow("fanout", FANOUT);
    let key = make_key(&setup.store, "k", &["--scopes", "runs"]);
    let served = setup.serve(&["--max-body", "16 KiB"]);
    let api = Api::new(&served.address);
    let outside = plugin("planners/static.wasm");
    let cases = [
        (json!({"workflow": "nope"}), 404, "not_found"),
        (
            json!({"workflow": "../workflows/fanout"}),
            400,
            "invalid_request",
        ),
        (json!({"planner": outside}), 403, "not_allowed"),
        (
            json!({"planner": setup.path("components/static.wasm"), "tools": ["/etc"]}),
            403,
            "not_allowed",
        ),
        (
            json!({"workflow": "fanout", "planner": outside}),
            400,
            "invalid_request",
        ),
        (json!({}), 400, "invalid_request"),
        (
            json!({"workflow": "fanout", "surprise": 1}),
            400,
            "invalid_request",
        ),
        (
            json!({"workflow": "fanout", "budget": "usd=lots"}),
            400,
            "invalid_request",
        ),
        (
            json!({"workflow": "fanout", "task": "x".repeat(20_000)}),
            413,
            "request_too_large",
        ),
        (
            json!({"planner": setup.path("components/calc.wasm")}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = submit(&api, &key, body.clone());
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (_, listed) = api.send("GET", "/v1/runs", Some(&key), "");
    assert_eq!(listed["data"], json!([]), "a refused request starts no run");
    // A query or an id that does not parse is refused the API's way too (found by the `api`
    // fuzz target: axum's own plain-text answer), its message on one line.
    for path in [
        "/v1/runs?limit=many",
        "/v1/runs/%FF%0A",
        "/v1/runs?before=%0A&limit=%0A",
    ] {
        let (status, answer) = api.send("GET", path, Some(&key), "");
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "{path}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
    // A workflow's policies must be among the server's: this one is not.
    let own = std::fs::read_to_string(setup.path("workflows/fanout.toml")).unwrap();
    std::fs::write(setup.path("workflows/extra.toml"), "[budget]\ncalls = 3\n").unwrap();
    std::fs::write(
        setup.path("workflows/own.toml"),
        format!("policy = [\"extra.toml\"]\n{own}"),
    )
    .unwrap();
    let (status, answer) = submit(&api, &key, json!({"workflow": "own"}));
    assert_eq!(status, 400, "{answer}");
    assert_contains(
        answer["error"]["message"].as_str().unwrap(),
        &["extra.toml", "does not enforce", "--policy"],
    );
    // A server that enforces it runs it.
    drop(served);
    let extra = setup.path("workflows/extra.toml");
    let served = setup.serve(&["--policy", extra.to_str().unwrap()]);
    let api = Api::new(&served.address);
    let (status, answer) = submit(&api, &key, json!({"workflow": "own"}));
    assert_eq!(status, 202, "{answer}");
}

/// A run of the static planner over one step that blocks (the sleeper): `timeout` bounds
/// it, and `optional` lets the run go on without it.
fn sleeper_run(setup: &Setup, settings: &str) -> Value {
    json!({
        "planner": setup.path("components/static.wasm"),
        "tools": [setup.path("components")],
        "max_parallel": 1,
        "config": serde_json::from_str::<Value>(settings).unwrap(),
    })
}

#[test]
fn a_run_is_cancelled_and_a_full_queue_answers_429() {
    let setup = Setup::new();
    let key = make_key(&setup.store, "k", &["--scopes", "runs"]);
    let served = setup.serve(&["--max-runs", "1", "--queue", "1"]);
    let api = Api::new(&served.address);
    let blocking = sleeper_run(
        &setup,
        r#"{"steps": [{"id": "nap", "tool": "sleeper", "input": {}}]}"#,
    );
    let (status, first) = submit(&api, &key, blocking.clone());
    assert_eq!(status, 202, "{first}");
    let first = first["id"].as_str().unwrap().to_string();
    let (mut watching, mut stream) = events(&served, &first, &key);
    assert!(stream.any(|(name, _)| name == "step_started"));
    // One runs, one waits; a third is refused until a slot frees.
    let (status, second) = submit(&api, &key, blocking.clone());
    assert_eq!(status, 202);
    let second = second["id"].as_str().unwrap().to_string();
    let (status, full) = submit(&api, &key, blocking.clone());
    assert_eq!(
        (status, full["error"]["code"].clone()),
        (429, json!("queue_full"))
    );
    // Cancelling stops the blocked step; the waiting run is cancelled before it starts.
    for id in [&first, &second] {
        let (status, _) = api.send("POST", &format!("/v1/runs/{id}/cancel"), Some(&key), "");
        assert_eq!(status, 202);
    }
    let (_, finished) = stream.find(|(name, _)| name == "run_finished").unwrap();
    watching.wait().unwrap();
    assert_eq!(finished["status"], "cancelled");
    assert!(
        finished["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{finished}"
    );
    let seen = all_events(&served, &second, &key);
    assert_eq!(seen.last().unwrap().1["status"], "cancelled");
    let (_, second_run) = api.send("GET", &format!("/v1/runs/{second}"), Some(&key), "");
    assert_eq!(second_run["status"], "cancelled");
    // The cancelled run replays as recorded: the step stopped where it was, the planner
    // not asked again.
    let bundle = setup.path("cancelled.bundle");
    text_output(&run_with_store(
        &setup.store,
        &["trace", "export", &first, "-o", bundle.to_str().unwrap()],
    ));
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    // The slots are free again.
    let quick = sleeper_run(
        &setup,
        r#"{"steps": [{"id": "sum", "tool": "calc", "input": {"expression": "1 + 1"}}]}"#,
    );
    let (status, _) = submit(&api, &key, quick);
    assert_eq!(status, 202);
}

#[test]
fn runs_a_killed_server_left_are_interrupted_and_resume_without_repeating_steps() {
    let setup = Setup::new();
    // "first" finishes, then "nap" blocks (stopped after 2 s; it may fail), then "last".
    setup.workflow(
        "napper",
        r#"
max_parallel = 1

[steps.nap]
timeout = "2s"

[[config.steps]]
id = "first"
tool = "calc"
input = { expression = "6 * 7" }

[[config.steps]]
id = "nap"
tool = "sleeper"
input = {}
depends_on = ["first"]
optional = true

[config.output]
first = "{{first.output}}"
"#,
    );
    let key = make_key(&setup.store, "k", &["--scopes", "runs"]);
    let served = setup.serve(&[]);
    let api = Api::new(&served.address);
    let (status, accepted) = submit(&api, &key, json!({"workflow": "napper"}));
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let (mut watching, mut stream) = events(&served, &id, &key);
    assert!(stream.any(|(name, event)| name == "step_started" && event["id"] == "nap"));
    // kill -9 (what dropping it does): nothing is finished, flushed or marked.
    drop(served);
    let _ = watching.wait();
    let served = setup.serve(&[]);
    let api = Api::new(&served.address);
    let (_, before) = api.send("GET", &format!("/v1/runs/{id}"), Some(&key), "");
    assert_eq!(before["status"], "interrupted", "{before}");
    let (status, answer) = api.send("GET", &format!("/v1/runs/{id}/bundle"), Some(&key), "");
    assert_eq!(status, 409);
    assert_contains(
        answer["error"]["message"].as_str().unwrap(),
        &[&format!("run '{id}' is interrupted: ")],
    );
    let (status, resumed) = api.send("POST", &format!("/v1/runs/{id}/resume"), Some(&key), "");
    assert_eq!(status, 202, "{resumed}");
    assert_eq!(resumed["resumed_from"], id.as_str());
    let new = resumed["id"].as_str().unwrap().to_string();
    let seen = all_events(&served, &new, &key);
    let (_, finished) = seen.last().unwrap();
    assert_eq!(finished["status"], "succeeded", "{finished}");
    let step = |id: &str| {
        finished["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    // The finished step is taken over, not run again; the interrupted one ran again.
    assert_eq!(step("first")["resumed_from"], id.as_str(), "{finished}");
    assert!(step("nap")["resumed_from"].is_null());
    assert_eq!(finished["output"]["first"]["value"], 42.0, "{finished}");
    let (_, after) = api.send("GET", &format!("/v1/runs/{new}"), Some(&key), "");
    assert_eq!(after["resumed_from"], id.as_str());
}

#[test]
fn a_stopping_server_waits_its_grace_then_leaves_runs_interrupted() {
    let setup = Setup::new();
    let key = make_key(&setup.store, "k", &["--scopes", "runs"]);
    let served = setup.serve(&["--grace", "1s"]);
    let api = Api::new(&served.address);
    let blocking = sleeper_run(
        &setup,
        r#"{"steps": [{"id": "nap", "tool": "sleeper", "input": {}}]}"#,
    );
    let (_, accepted) = submit(&api, &key, blocking);
    let id = accepted["id"].as_str().unwrap().to_string();
    let (mut watching, mut stream) = events(&served, &id, &key);
    assert!(stream.any(|(name, _)| name == "step_started"));
    // SIGTERM: the event stream ends, the server stops after its grace period.
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("left interrupted"), "{stderr}");
    watching.wait().unwrap();
    let served = setup.serve(&[]);
    let api = Api::new(&served.address);
    let (_, shown) = api.send("GET", &format!("/v1/runs/{id}"), Some(&key), "");
    assert_eq!(shown["status"], "interrupted", "{shown}");
    // The journal holds it unfinished, for `baton run --resume` as well as the API.
    let listed = text_output(&run_with_store(&setup.store, &["trace", "ls"]));
    let line = listed.lines().find(|l| l.starts_with(&id)).expect(&listed);
    assert!(line.contains("running"), "{line}");
}

#[test]
fn bad_server_setups_and_key_commands_are_one_line_errors() {
    let setup = Setup::new();
    let store = setup.store.to_str().unwrap();
    let missing = setup.path("nowhere");
    let serve = |args: &[&str]| {
        baton()
            .env("BATON_STORE", store)
            .arg("serve")
            .args(args)
            .output()
            .unwrap()
    };
    let error = error_line(
        &serve(&["--listen", "0", "--workflows", missing.to_str().unwrap()]),
        2,
    );
    assert_contains(&error, &["--workflows", "nowhere"]);
    // The argument parser's own message (with its usage hint).
    let output = serve(&["--listen", "nonsense"]);
    assert_eq!(output.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&output.stderr),
        &["nonsense", "HOST:PORT"],
    );
    // An address already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let error = error_line(&serve(&["--listen", &address]), 2);
    assert_contains(&error, &["cannot listen on", &address, "--listen"]);
    // Keys: a lifetime budget has no time limit; names are unique; revoking needs a key.
    let keys = |args: &[&str]| run_with_store(&setup.store, args);
    let error = error_line(
        &keys(&["keys", "create", "--name", "k", "--budget", "time=5s"]),
        2,
    );
    assert_contains(&error, &["time"]);
    make_key(&setup.store, "k", &[]);
    let error = error_line(&keys(&["keys", "create", "--name", "k"]), 2);
    assert_contains(&error, &["'k' exists", "revoke"]);
    let error = error_line(&keys(&["keys", "revoke", "nobody"]), 2);
    assert_contains(&error, &["nobody", "keys ls"]);
    let output = keys(&["keys", "create", "--name", "x", "--scopes", "root"]);
    assert_eq!(output.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&output.stderr),
        &["'root' is not a scope"],
    );
}

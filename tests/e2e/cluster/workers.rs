//! `baton run --nats`: steps on `baton worker` processes through NATS JetStream, the run and
//! its budget in PostgreSQL, against servers the tests start.

use serde_json::Value;

use super::nats::{Nats, Worker};
use super::postgres::Postgres;
use super::store::diamond;
use crate::common::*;

/// `baton run FLOW --nats … --store … --output result.json [extra]`: the process output and
/// the result.
fn run_on(
    dir: &std::path::Path,
    flow: &std::path::Path,
    nats: &Nats,
    store: &str,
    extra: &[&str],
) -> (std::process::Output, Value) {
    let result = dir.join("result.json");
    let output = baton()
        .args([
            "run",
            flow.to_str().unwrap(),
            "--nats",
            &nats.url(),
            "--store",
            store,
        ])
        .arg("--output")
        .arg(&result)
        .args(extra)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&result).unwrap_or_else(|_| {
        panic!(
            "no result written; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_diamond_runs_on_three_workers_and_replays_on_one_machine() {
    let pg = Postgres::start();
    let nats = Nats::start();
    let store = pg.url();
    let workers: Vec<Worker> = (1..=3)
        .map(|n| {
            Worker::start(
                baton(),
                &nats,
                &store,
                &format!("w{n}"),
                &["--capacity", "2"],
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let flow = diamond(dir.path());
    let (output, result) = run_on(dir.path(), &flow, &nats, &store, &[]);
    text_output(&output);
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["total"], 10.0);
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    for step in result["steps"].as_array().unwrap() {
        let worker = step["worker"].as_str().unwrap_or_default();
        assert!(names.contains(&worker), "{step} ran on a worker");
    }
    let (id, root) = (
        result["run"].as_str().unwrap(),
        result["root"].as_str().unwrap(),
    );
    let verified = text_output(&run(&["trace", "verify", id, "--store", &store]));
    assert!(
        verified.contains(&format!("root {root}, complete")),
        "{verified}"
    );
    let bundle = dir.path().join("diamond.bundle");
    text_output(&run(&[
        "trace",
        "export",
        id,
        "-o",
        bundle.to_str().unwrap(),
        "--store",
        &store,
    ]));
    // One machine, no servers: the bundle replays as it ran.
    drop(workers);
    drop(nats);
    drop(pg);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    assert!(replayed.contains(root), "{replayed}");
}

/// A model server on loopback that holds the first request it gets until the test lets it
/// go (or drops it), and answers every later one at once.
struct HeldModel {
    listener: std::net::TcpListener,
}

impl HeldModel {
    fn start() -> Self {
        Self {
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn policy(&self) -> String {
        format!(
            "[llm.providers.openai]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
             backoff = \"10ms\"\n\n[llm.models.test]\nprovider = \"openai\"\n\n\
             [plugins.ask.llm]\nmodels = [\"test\"]\n",
            self.listener.local_addr().unwrap().port()
        )
    }

    /// Waits (a minute at most) for the next request; returns its connection, the request
    /// read.
    fn next(&self) -> std::net::TcpStream {
        let listener = self.listener.try_clone().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            crate::server::read_request(&mut reader).expect("a request");
            let _ = tx.send(stream);
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("a worker asks the model within a minute")
    }

    /// Answers `stream` with a completion of 5 + 3 tokens.
    fn answer(mut stream: std::net::TcpStream) {
        use std::io::Write;
        let body = serde_json::json!({
            "id": "chatcmpl-test", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
    }
}

#[test]
fn a_worker_killed_mid_step_is_replaced_and_the_step_counts_once() {
    let pg = Postgres::start();
    let nats = Nats::start();
    let store = pg.url();
    let model = HeldModel::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), &model.policy());
    let flow = dir.path().join("ask.toml");
    std::fs::write(
        &flow,
        format!(
            "planner = {:?}\ntools = [{:?}]\n\
             [[config.steps]]\nid = \"q\"\ntool = \"ask\"\n\
             input = {{ question = \"why?\", model = \"test\" }}\n",
            plugin("planners/static.wasm"),
            plugin("calc.wasm").parent().unwrap()
        ),
    )
    .unwrap();
    let mut first = Worker::start(baton(), &nats, &store, "w1", &["--ack-wait", "2s"]);
    let result_file = dir.path().join("result.json");
    // A budget of one call: the step fits it only if the dead worker's hold is released.
    let running = baton()
        .args([
            "run",
            flow.to_str().unwrap(),
            "--nats",
            &nats.url(),
            "--store",
            &store,
        ])
        .args(["--budget", "calls=1", "--policy", policy.to_str().unwrap()])
        .arg("--output")
        .arg(&result_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first worker is mid-step, waiting for the model, when it is killed.
    let held = model.next();
    first.kill();
    drop(held);
    let _second = Worker::start(baton(), &nats, &store, "w2", &["--ack-wait", "2s"]);
    HeldModel::answer(model.next());
    let output = running.wait_with_output().unwrap();
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(&result_file)
            .unwrap_or_else(|_| panic!("no result: {}", String::from_utf8_lossy(&output.stderr))),
    )
    .unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    let step = &result["steps"][0];
    assert_eq!(step["worker"], "w2", "{result}");
    assert_eq!(step["output"]["answer"], "ok");
    // Spent once: one call, 8 tokens.
    assert_eq!(result["totals"]["llm_calls"], 1, "{result}");
    assert_eq!(result["totals"]["tokens"], 8, "{result}");
    // One committed chain for the step, verified.
    let id = result["run"].as_str().unwrap();
    let shown = json_output(&run(&["trace", "show", id, "--json", "--store", &store]));
    let chains: std::collections::BTreeSet<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["chain"].as_str())
        .filter(|c| c.starts_with("step:q"))
        .collect();
    assert_eq!(chains.into_iter().collect::<Vec<_>>(), ["step:q"]);
    let started = shown
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["chain"] == "step:q" && e["kind"] == "invocation_started")
        .count();
    assert_eq!(started, 1);
    let verified = text_output(&run(&["trace", "verify", id, "--store", &store]));
    assert!(verified.contains("complete"), "{verified}");
}

#[test]
fn sixty_four_steps_on_three_workers_spend_exactly_a_budget_of_ten_calls() {
    use crate::model_server::{ModelServer, Reply};
    let pg = Postgres::start();
    let nats = Nats::start();
    let store = pg.url();
    let model = ModelServer::start(Vec::new(), Reply::ok("ok", (5, 3)));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &(model.policy("test", "") + "\n[plugins.ask.llm]\nmodels = [\"test\"]\n"),
    );
    let mut flow = format!(
        "planner = {:?}\ntools = [{:?}]\nmax_parallel = 64\n",
        plugin("planners/static.wasm"),
        plugin("calc.wasm").parent().unwrap()
    );
    for n in 0..64 {
        flow.push_str(&format!(
            "[[config.steps]]\nid = \"q{n}\"\ntool = \"ask\"\n\
             input = {{ question = \"question {n}\", model = \"test\" }}\n"
        ));
    }
    let flow_file = dir.path().join("wide.toml");
    std::fs::write(&flow_file, flow).unwrap();
    let _workers: Vec<Worker> = (1..=3)
        .map(|n| {
            Worker::start(
                baton(),
                &nats,
                &store,
                &format!("w{n}"),
                &["--capacity", "22"],
            )
        })
        .collect();
    let (_, result) = run_on(
        dir.path(),
        &flow_file,
        &nats,
        &store,
        &["--budget", "calls=10", "--policy", policy.to_str().unwrap()],
    );
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 64, "{result}");
    let ok = steps.iter().filter(|s| s["status"] == "ok").count();
    assert_eq!(ok, 10, "{result}");
    assert_eq!(model.requests().len(), 10);
    assert_eq!(result["totals"]["llm_calls"], 10, "{result}");
    for step in steps.iter().filter(|s| s["status"] != "ok") {
        let error = step["error"].as_str().unwrap_or_default();
        assert!(error.contains("budget"), "{step}");
    }
}

#[test]
fn a_cluster_that_cannot_work_is_one_clear_line() {
    let pg = Postgres::start();
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("j.db").display());
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("nats://127.0.0.1:{free_port}");

    let line = error_line(&run(&["worker", "--nats", &nowhere, "--store", &sqlite]), 2);
    assert_contains(&line, &["share one store", "--store postgres://"]);
    let line = error_line(&run(&["worker", "--nats", &nowhere, "--store", &store]), 2);
    assert_contains(&line, &[&nowhere, "cannot connect", "nats-server -js"]);
    let line = error_line(
        &run(&[
            "worker",
            "--nats",
            &nowhere,
            "--store",
            &store,
            "--capacity",
            "0",
        ]),
        2,
    );
    assert_contains(&line, &["--capacity 0 would run nothing"]);

    // A cluster with no worker: the run says so instead of waiting for one.
    let nats = Nats::start();
    let flow = diamond(dir.path());
    let line = error_line(
        &run(&[
            "run",
            flow.to_str().unwrap(),
            "--nats",
            &nats.url(),
            "--store",
            &store,
        ]),
        2,
    );
    assert_contains(&line, &["no worker is running", "baton worker --nats"]);
}

#[test]
fn a_worker_runs_only_what_its_own_policy_trusts() {
    let pg = Postgres::start();
    let nats = Nats::start();
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    // The worker trusts one key of its own and no other, which signed none of the run's
    // components.
    let keys = dir.path().join("keys");
    let made = baton()
        .env("BATON_KEY_PASSWORD", "worker-test")
        .args(["keygen", "--out", keys.to_str().unwrap()])
        .output()
        .unwrap();
    text_output(&made);
    let policy = dir.path().join("worker.toml");
    std::fs::write(
        &policy,
        "[trust]\nreplace = true\nkeys = [\"keys/baton.pub\"]\n",
    )
    .unwrap();
    let _worker = Worker::start(
        baton(),
        &nats,
        &store,
        "careful",
        &["--policy", policy.to_str().unwrap()],
    );
    let flow = diamond(dir.path());
    let (_, result) = run_on(dir.path(), &flow, &nats, &store, &[]);
    assert_eq!(result["status"], "failed", "{result}");
    let start = &result["steps"][0];
    assert_eq!(start["id"], "start");
    assert_contains(
        start["error"].as_str().unwrap(),
        &["does not verify with any trusted key", "key baton"],
    );
}

#[test]
fn baton_serve_runs_its_runs_steps_on_the_workers() {
    use crate::serve::runs::all_events;
    use crate::serve::{Api, Served};
    let pg = Postgres::start();
    let nats = Nats::start();
    let store = pg.url();
    let dir = tempfile::tempdir().unwrap();
    // With a PostgreSQL store the server's keys live in the data directory.
    let data = dir.path().join("data");
    let with_data = || {
        let mut command = baton();
        command
            .env("XDG_DATA_HOME", &data)
            .env("BATON_STORE", &store);
        command
    };
    let made = with_data()
        .args(["keys", "create", "--name", "app", "--scopes", "runs"])
        .args(["--budget", "fuel=1000000000000"])
        .output()
        .unwrap();
    let key = text_output(&made).trim().to_string();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    let flow = diamond(&workflows);
    let _worker = Worker::start(baton(), &nats, &store, "w1", &["--capacity", "2"]);
    let components = plugin("calc.wasm").parent().unwrap().to_path_buf();
    let served = Served::spawn(
        with_data(),
        &[
            "--nats",
            &nats.url(),
            "--workflows",
            workflows.to_str().unwrap(),
            "--components",
            components.to_str().unwrap(),
        ],
    );
    let api = Api::new(&served.address);
    let name = flow.file_stem().unwrap().to_str().unwrap();
    let (status, accepted) = api.send(
        "POST",
        "/v1/runs",
        Some(&key),
        &serde_json::json!({ "workflow": name }).to_string(),
    );
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let seen = all_events(&served, &id, &key);
    let (_, finished) = seen.last().unwrap();
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["output"]["total"], 10.0);
    for step in finished["steps"].as_array().unwrap() {
        assert_eq!(step["worker"], "w1", "{step}");
    }
    let verified = text_output(&run(&["trace", "verify", &id, "--store", &store]));
    assert!(verified.contains("complete"), "{verified}");
    // What the steps spent on the workers was reserved in the key's shared ledger too.
    let keys = json_output(&with_data().args(["keys", "ls", "--json"]).output().unwrap());
    let fuel = keys[0]["spent"]["fuel"].as_u64().unwrap();
    assert!(fuel > 0, "{keys}");
}

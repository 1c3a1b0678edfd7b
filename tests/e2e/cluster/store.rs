//! `--store postgres://…`: runs recorded in PostgreSQL, listed, verified and exported from
//! it, and the bundle replayed on a machine with no server at all.

use std::path::Path;

use serde_json::Value;

use super::postgres::Postgres;
use crate::common::*;

/// A diamond of calc steps: start, then left and right at once, then join.
const DIAMOND: &str = r#"
[[config.steps]]
id = "start"
tool = "calc"
input = { expression = "1 + 2" }

[[config.steps]]
id = "left"
tool = "calc"
input = { expression = "{{start.output.value}} * 2" }
depends_on = ["start"]

[[config.steps]]
id = "right"
tool = "calc"
input = { expression = "{{start.output.value}} + 1" }
depends_on = ["start"]

[[config.steps]]
id = "join"
tool = "calc"
input = { expression = "{{left.output.value}} + {{right.output.value}}" }
depends_on = ["left", "right"]

[config.output]
total = "{{join.output.value}}"
"#;

pub(super) fn diamond(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("diamond.toml");
    let text = format!(
        "planner = {:?}\ntools = [{:?}]\n{DIAMOND}",
        plugin("planners/static.wasm"),
        plugin("calc.wasm").parent().unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_run_kept_in_postgres_exports_a_bundle_that_replays_with_no_server() {
    let server = Postgres::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let result_file = dir.path().join("result.json");
    let flow = diamond(dir.path());
    let ran = run(&[
        "run",
        flow.to_str().unwrap(),
        "--store",
        &url,
        "--output",
        result_file.to_str().unwrap(),
    ]);
    text_output(&ran);
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"]["total"], 10.0);
    let id = result["run"].as_str().unwrap();
    let root = result["root"].as_str().unwrap();

    let listed = text_output(&run(&["trace", "ls", "--json", "--store", &url]));
    let summary: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(summary["run"], id);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["root"], root);

    let verified = text_output(&run(&["trace", "verify", &id[..10], "--store", &url]));
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
        &url,
    ]));
    // No server from here on: the bundle is all a replay needs.
    drop(server);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
    assert!(replayed.contains(root), "{replayed}");
    let verified = text_output(&run(&["trace", "verify", bundle.to_str().unwrap()]));
    assert!(
        verified.contains(&format!("root {root}, complete")),
        "{verified}"
    );
}

#[test]
fn a_store_that_cannot_be_used_is_one_clear_line() {
    let unknown = run(&["trace", "ls", "--store", "mysql://db/x"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_contains(
        &String::from_utf8_lossy(&unknown.stderr),
        &["'mysql://' is not a store", "postgres://"],
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://baton:hunter2@127.0.0.1:{port}/baton");
    let absent = error_line(&run(&["trace", "ls", "--store", &url]), 2);
    assert_contains(
        &absent,
        &[
            &format!("postgres://baton:***@127.0.0.1:{port}/baton"),
            "refused",
        ],
    );
    assert!(!absent.contains("hunter2"), "{absent}");
    let calc = plugin("calc.wasm");
    let call = error_line(
        &run(&[
            "call",
            calc.to_str().unwrap(),
            "--input",
            r#"{"expression": "1"}"#,
            "--store",
            &url,
        ]),
        2,
    );
    assert_contains(&call, &["refused"]);
}

#[test]
fn a_run_pauses_while_postgres_restarts_and_loses_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let server = Postgres::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    // The step's request is held here while the server restarts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let policy = write_policy(
        dir.path(),
        &format!("[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{port}\"]\n"),
    );
    let flow = dir.path().join("held.toml");
    std::fs::write(
        &flow,
        format!(
            "planner = {:?}\ntools = [{:?}]\n\
             [[config.steps]]\nid = \"get\"\ntool = \"fetch\"\n\
             input = {{ url = \"http://127.0.0.1:{port}/held\" }}\n\
             [[config.steps]]\nid = \"after\"\ntool = \"calc\"\n\
             input = {{ expression = \"6 * 7\" }}\ndepends_on = [\"get\"]\n",
            plugin("planners/static.wasm"),
            plugin("calc.wasm").parent().unwrap()
        ),
    )
    .unwrap();
    let result_file = dir.path().join("result.json");
    let child = baton()
        .args(["run", flow.to_str().unwrap(), "--store", &url, "--policy"])
        .arg(&policy)
        .arg("--output")
        .arg(&result_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        line.clear();
    }
    // The run is mid-step: the server goes away and comes back before the step answers.
    server.stop();
    server.resume();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .unwrap();
    drop(stream);
    let output = child.wait_with_output().unwrap();
    text_output(&output);
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    let root = result["root"].as_str().unwrap();
    let id = result["run"].as_str().unwrap();
    let verified = text_output(&run(&["trace", "verify", id, "--store", &url]));
    assert!(
        verified.contains(&format!("root {root}, complete")),
        "{verified}"
    );
}

/// Runs signed in PostgreSQL are logged there too: a bundle exported from it carries its
/// inclusion proof and checkpoint, and the log proves it extends an earlier checkpoint.
#[test]
fn runs_signed_in_postgres_are_in_its_transparency_log() {
    let server = Postgres::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let with_host = |args: &[&str]| {
        baton()
            .env("BATON_STORE", &url)
            .env("BATON_HOST_KEY_PASSWORD", "pw")
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.path().to_str().unwrap();
    text_output(&with_host(&["keygen", "--host", "--out", out]));
    let policy = write_policy(dir.path(), "[journal]\nsigning_key = \"host.key\"\n");
    let policy = policy.to_str().unwrap();
    let calc = plugin("calc.wasm");
    let call = |expression: &str| {
        let input = format!("{{\"expression\": \"{expression}\"}}");
        let args = [
            "--policy",
            policy,
            "call",
            calc.to_str().unwrap(),
            "--input",
            &input,
        ];
        json_output(&with_host(&args));
    };
    call("1 + 1");
    let saved = dir.path().join("old.checkpoint");
    std::fs::write(&saved, text_output(&with_host(&["log", "checkpoint"]))).unwrap();
    call("2 + 2");
    let listed = text_output(&with_host(&["trace", "ls", "--json"]));
    let newest: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let bundle = dir.path().join("run.bundle");
    let id = newest["run"].as_str().unwrap();
    text_output(&with_host(&[
        "trace",
        "export",
        id,
        "-o",
        bundle.to_str().unwrap(),
    ]));
    let key = dir.path().join("host.pub");
    let key = key.to_str().unwrap();
    let verified = text_output(&run(&[
        "trace",
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        key,
    ]));
    assert_contains(&verified, &["signed by host", "transparency log (2 of 2)"]);
    let proved = text_output(&with_host(&[
        "log",
        "prove-consistency",
        saved.to_str().unwrap(),
        "--key",
        key,
    ]));
    assert_contains(
        &proved,
        &["consistent: the log of 2 runs extends the checkpoint of 1"],
    );
}

/// Hosts appending to one log at once take turns under its lock: every run gets a leaf of
/// its own, numbered without a gap, and every run's inclusion proof checks against the root
/// the log reports.
#[test]
fn hosts_appending_to_one_log_at_once_take_turns() {
    use baton::journal::store::{Store, TransparencyLog};
    use baton::journal::tlog;
    use baton::postgres::PgStore;
    const HOSTS: usize = 4;
    const RUNS: usize = 25;
    let server = Postgres::start();
    let envelope = |host: usize, n: usize| format!("{{\"host\": {host}, \"run\": {n}}}");
    std::thread::scope(|scope| {
        for host in 0..HOSTS {
            let url = server.url();
            scope.spawn(move || {
                let store = PgStore::open(&url).unwrap();
                let recorder = Store::recorder(&store).unwrap();
                for n in 0..RUNS {
                    recorder.attest(&format!("run-{host}-{n}"), &envelope(host, n));
                    // A transaction each, so that the hosts' appends interleave.
                    recorder.flush().unwrap();
                }
            });
        }
    });
    let store = PgStore::open(&server.url()).unwrap();
    let (size, root) = store.log_head().unwrap();
    assert_eq!(size, (HOSTS * RUNS) as u64);
    let recorder = Store::recorder(&store).unwrap();
    recorder.checkpoint(size, "a checkpoint the proofs name");
    recorder.flush().unwrap();
    let mut indexes = Vec::new();
    for host in 0..HOSTS {
        for n in 0..RUNS {
            let run = format!("run-{host}-{n}");
            let inclusion = store.inclusion(&run).unwrap().expect("every run is logged");
            let leaf = tlog::leaf_hash(envelope(host, n).as_bytes());
            assert!(
                tlog::verify_inclusion(&leaf, inclusion.index, size, &inclusion.proof, &root),
                "{run} at {}",
                inclusion.index
            );
            indexes.push(inclusion.index);
        }
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..size).collect::<Vec<_>>());
}

#[test]
fn hosts_sharing_postgres_serve_each_other_their_pure_calls() {
    use crate::pure_calls::{call, hits};
    let server = Postgres::start();
    let url = server.url();
    let store = Path::new(&url);
    let input = r#"{"expression": "6 * 7"}"#;
    let (first, first_id) = call(store, None, "calc.wasm", input);
    assert!(hits(store, &first_id).is_empty());
    // Another process, so another host: it finds what the first kept, committed before the
    // first exited.
    let (again, again_id) = call(store, None, "calc.wasm", input);
    assert_eq!(again, first);
    let served = hits(store, &again_id);
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["payload"]["run"], first_id.as_str());
}

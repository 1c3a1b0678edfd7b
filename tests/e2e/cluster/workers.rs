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
        .map(|n| Worker::start(&nats, &store, &format!("w{n}"), &["--capacity", "2"]))
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

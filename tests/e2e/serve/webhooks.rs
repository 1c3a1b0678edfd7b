//! Webhooks: a run's end delivered to a receiver Baton did not write (Python's
//! `standardwebhooks` verifies every signature), retried with backoff until it accepts,
//! only where the policy's egress rules allow, every attempt journaled.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::runs::{FANOUT, Setup, submit};
use super::{Api, make_key};
use crate::common::*;

#[test]
fn a_finished_run_is_delivered_signed_to_its_webhook_until_it_accepts() {
    let setup = Setup::new();
    setup.workflow("fanout", FANOUT);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/serve/receiver.py");
    let mut receiver = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut heard = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&heard.next().unwrap().unwrap()).unwrap();
    let url = format!("http://127.0.0.1:{}/hook", first["port"]);
    let key = make_key(&setup.store, "k", &["--scopes", "runs"]);
    let policy = format!(
        "[plugins.webhooks.net]\nallow = [\"http://127.0.0.1:{}\"]\nmethods = [\"POST\"]\n",
        first["port"]
    );
    let served = setup.serve_with(&policy, &[]);
    let api = Api::new(&served.address);
    // Where the policy does not let deliveries go, a webhook cannot point.
    let (status, refused) = api.send(
        "POST",
        "/v1/webhooks",
        Some(&key),
        &json!({"url": "http://127.0.0.1:9/x"}).to_string(),
    );
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (403, json!("egress_denied"))
    );
    let (status, hook) = api.send(
        "POST",
        "/v1/webhooks",
        Some(&key),
        &json!({"url": url}).to_string(),
    );
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    writeln!(receiver.stdin.take().unwrap(), "{secret}").unwrap();
    let (_, listed) = api.send("GET", "/v1/webhooks", Some(&key), "");
    assert_eq!(listed["data"][0]["url"], url.as_str());
    assert!(listed["data"][0].get("secret").is_none());
    let (_, accepted) = submit(&api, &key, json!({"workflow": "fanout"}));
    let id = accepted["id"].as_str().unwrap();
    // Refused twice, then accepted: three deliveries of one message, each signed.
    let deliveries: Vec<Value> = heard
        .by_ref()
        .take(3)
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    let statuses: Vec<u64> = deliveries
        .iter()
        .map(|d| d["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 204]);
    for delivery in &deliveries {
        assert_eq!(delivery["verified"], true, "{delivery}");
        assert_eq!(delivery["id"], deliveries[0]["id"]);
    }
    let payload = &deliveries[2]["payload"];
    assert_eq!(payload["type"], "run.finished");
    assert_eq!(payload["data"]["id"], id);
    assert_eq!(payload["data"]["status"], "succeeded");
    assert_eq!(payload["data"]["result"]["output"]["square"]["value"], 36.0);
    let _ = receiver.kill();
    let _ = receiver.wait();
    // Every attempt is journaled, in a run of its own.
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    let listed = text_output(&run_with_store(&setup.store, &["trace", "ls"]));
    let line = listed
        .lines()
        .find(|l| l.contains(" webhook "))
        .expect(&listed);
    assert!(line.contains(" ok "), "{line}");
    let shown = text_output(&run_with_store(
        &setup.store,
        &["trace", "show", line.split_whitespace().next().unwrap()],
    ));
    assert_eq!(shown.matches("500,").count(), 2, "{shown}");
    assert_eq!(shown.matches("204,").count(), 1, "{shown}");
}

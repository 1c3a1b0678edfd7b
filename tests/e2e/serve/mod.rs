//! `baton serve`, driven by clients Baton did not write: OpenAI's Python SDK against the
//! gateway, Prometheus's parser against the metrics, reqwest and curl against the runs API, Python's
//! `standardwebhooks` against the webhooks.

mod gateway;
pub(crate) mod runs;
mod traces;
mod webhooks;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::*;

/// A running `baton serve` with its journal (and key store) in a directory of its own.
pub struct Served {
    child: Option<Child>,
    pub address: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Served {
    /// `baton serve --listen 0 --policy POLICY` with the journal at `store`.
    pub fn start(store: &Path, policy: &Path, extra: &[&str]) -> Self {
        let mut command = baton();
        command
            .env("BATON_STORE", store)
            .args(["--policy", policy.to_str().unwrap()]);
        Self::spawn(command, extra)
    }

    /// `COMMAND serve --listen 0 EXTRA...`, once it listens.
    pub fn spawn(mut command: Command, extra: &[&str]) -> Self {
        let mut child = command
            .args(["serve", "--listen", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("baton starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "baton serve exited"
            );
        }
        let address = line.split("http://").nth(1).unwrap().trim().to_string();
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            rest
        });
        Self {
            child: Some(child),
            address,
            stderr: Some(rest),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops it as a service manager would (SIGTERM): its exit status and what it printed.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        (status, self.stderr.take().unwrap().join().unwrap())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Plain HTTP requests to a served API, with reqwest.
pub struct Api {
    address: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Api {
    pub fn new(address: &str) -> Self {
        Self {
            address: address.into(),
            runtime: tokio::runtime::Runtime::new().unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// `method path` with `body` (JSON text) and the bearer `key`: the status and the
    /// answer (JSON, or null when it is not).
    pub fn send(&self, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }
}

/// `baton keys create --name NAME EXTRA...` with the journal at `store`: the key.
pub fn make_key(store: &Path, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["keys", "create", "--name", name];
    args.extend_from_slice(extra);
    let output = run_with_store(store, &args);
    let key = text_output(&output).trim().to_string();
    assert!(key.starts_with("bk_"), "{key}");
    key
}

/// Runs `client.py` (OpenAI's SDK and prometheus_client) against `served` with `key`.
pub fn python_client(served: &Served, key: &str, actions: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/serve/client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(served.url("/v1"))
        .arg(key)
        .arg(actions.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the client failed (are the `openai` and `prometheus_client` packages installed? \
         `cargo xtask test` installs them): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    printed.as_array().unwrap().clone()
}

/// Exports run `run` from `store` and checks that `baton replay` replays it identically.
pub fn assert_replays(store: &Path, run_id: &str, dir: &Path) {
    let bundle = dir.join(format!("{run_id}.bundle"));
    text_output(&run_with_store(
        store,
        &["trace", "export", run_id, "-o", bundle.to_str().unwrap()],
    ));
    // No provider is reachable in a replay: everything is served from the bundle.
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

/// A chat completion of at most 10 tokens from model `test`, asked of `served` with `key`.
pub fn ask_once(
    client: &reqwest::Client,
    served: &Served,
    key: &str,
    question: &str,
) -> reqwest::RequestBuilder {
    client
        .post(served.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "model": "test",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": question}],
        }))
}

/// Sends the `n` requests `request` makes, all at once; each must be answered (200) or
/// refused for the budget (429), some of each. Returns how many were answered.
pub fn answered_or_refused(
    n: usize,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statuses: Vec<u16> = runtime.block_on(async {
        let client = reqwest::Client::new();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let sent = request(&client, i).send();
                tokio::spawn(async move { sent.await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for handle in handles {
            statuses.push(handle.await.unwrap());
        }
        statuses
    });
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let refused = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(ok + refused, n as u64, "{statuses:?}");
    assert!(ok > 0 && refused > 0, "{statuses:?}");
    ok
}

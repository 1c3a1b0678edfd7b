//! Traces over OTLP/HTTP, received by a loopback receiver that decodes them with the
//! OpenTelemetry project's own protobuf definitions: `baton run` exports a span per run,
//! step and tool call, nested as they ran; a gateway request's LLM span carries the GenAI
//! semantic-convention attributes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Served, make_key, python_client};
use crate::common::*;
use crate::model_server::{ModelServer, Reply};

/// The receiver (`otlp.py`): its process, its endpoint and the spans it prints.
struct Collector {
    child: Child,
    endpoint: String,
    spans: Receiver<Value>,
}

impl Collector {
    fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/serve/otlp.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let endpoint = format!("http://127.0.0.1:{}", first["port"]);
        let (send, spans) = channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if send.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            endpoint,
            spans,
        }
    }

    /// Spans received until one satisfies `last` (a generous bound catches a span that
    /// never comes).
    fn until(&self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let span = self
                .spans
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no such span arrived; received: {seen:#?}"));
            let done = last(&span);
            seen.push(span);
            if done {
                return seen;
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_run_exports_nested_spans_for_the_run_its_steps_and_tool_calls() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("calc.wasm", &tools);
    let flow = dir.path().join("flow.toml");
    std::fs::write(
        &flow,
        format!(
            "name = \"traced\"\nplanner = {:?}\ntools = [{:?}]\n\n[[config.steps]]\nid = \"sum\"\n\
             tool = \"calc\"\ninput = {{ expression = \"2 + 3\" }}\n",
            plugin("planners/static.wasm"),
            tools
        ),
    )
    .unwrap();
    let output = baton()
        .env("BATON_STORE", dir.path().join("journal.db"))
        .args([
            "--otlp-endpoint",
            &collector.endpoint,
            "run",
            flow.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text_output(&output));
    let spans = collector.until(|s| s["name"] == "run traced");
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
    };
    let run = named("run traced");
    let step = named("step sum");
    let tool = named("execute_tool calc");
    assert_eq!(run["service"], "baton");
    assert_eq!(run["attributes"]["baton.status"], "succeeded");
    // One trace, nested as it ran.
    assert_eq!(step["parent"], run["span_id"]);
    assert_eq!(tool["parent"], step["span_id"]);
    assert_eq!(tool["trace_id"], run["trace_id"]);
    assert_eq!(tool["attributes"]["gen_ai.operation.name"], "execute_tool");
    assert_eq!(tool["attributes"]["gen_ai.tool.name"], "calc");
    assert_eq!(tool["attributes"]["baton.outcome"], "ok");
    assert!(tool["attributes"]["baton.fuel"].as_i64().unwrap() > 0);
    // `baton call` takes the same flag.
    let output = baton()
        .args(["--otlp-endpoint", &collector.endpoint, "call"])
        .arg(plugin("calc.wasm"))
        .args(["--input", r#"{"expression": "1 + 1"}"#])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text_output(&output));
    collector.until(|s| s["name"] == "execute_tool calc");
    // An endpoint that is not an OTLP/HTTP URL is refused before anything runs.
    for endpoint in ["grpc://127.0.0.1:4317", "not a url"] {
        let output = baton()
            .args(["--otlp-endpoint", endpoint, "call"])
            .arg(plugin("calc.wasm"))
            .args(["--input", r#"{"expression": "1 + 1"}"#])
            .output()
            .unwrap();
        let error = error_line(&output, 2);
        assert_contains(&error, &["--otlp-endpoint", endpoint]);
    }
}

#[test]
fn a_gateway_requests_llm_span_carries_the_genai_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start();
    let upstream = ModelServer::start(vec![], Reply::ok("Paris.", (12, 2)));
    let policy = write_policy(dir.path(), &upstream.policy("test", ""));
    let store = dir.path().join("journal.db");
    let key = make_key(&store, "app", &["--scopes", "llm"]);
    let served = Served::start(&store, &policy, &["--otlp-endpoint", &collector.endpoint]);
    let ask = json!({"do": "chat", "model": "test", "max_tokens": 20,
                     "messages": [{"role": "user", "content": "Capital of France?"}]});
    python_client(&served, &key, &json!([ask]));
    // The server exports what is left when it stops.
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    let spans = collector.until(|s| s["name"] == "chat test");
    let chat = spans.last().unwrap();
    let attributes = &chat["attributes"];
    assert_eq!(chat["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(attributes["gen_ai.operation.name"], "chat");
    assert_eq!(attributes["gen_ai.provider.name"], "openai");
    assert_eq!(attributes["gen_ai.request.model"], "test");
    assert_eq!(attributes["gen_ai.request.max_tokens"], 20);
    assert_eq!(attributes["gen_ai.response.model"], "test");
    assert_eq!(attributes["gen_ai.usage.input_tokens"], 12);
    assert_eq!(attributes["gen_ai.usage.output_tokens"], 2);
    assert_eq!(attributes["gen_ai.response.finish_reasons"], "stop");
    assert_eq!(attributes["baton.llm.source"], "provider");
}

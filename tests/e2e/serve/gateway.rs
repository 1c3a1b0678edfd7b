//! The OpenAI-compatible gateway driven by OpenAI's own Python SDK (plain and streamed
//! completions, exact and semantic cache hits, embeddings), every request a run whose
//! bundle replays; API keys with scopes and budgets, refused the API's way; a key's budget
//! held under 64 concurrent requests; metrics read by Prometheus's own parser.

use serde_json::{Value, json};

use super::{Api, Served, answered_or_refused, ask_once, assert_replays, make_key, python_client};
use crate::common::*;
use crate::model_server::{ModelServer, Reply};

fn chat(prompt: &str) -> Value {
    json!({"do": "chat", "model": "test", "messages": [{"role": "user", "content": prompt}]})
}

#[test]
fn openai_sdk_gets_completions_streams_cache_hits_and_embeddings_that_replay() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = ModelServer::start(
        vec![Reply::ok("Paris.", (12, 2))],
        Reply::ok(
            "A longer answer, streamed to the client in several chunks of text.",
            (9, 14),
        ),
    );
    let policy = write_policy(
        dir.path(),
        &format!("{}\n[cache]\nenabled = true\n", upstream.policy("test", "")),
    );
    let store = dir.path().join("journal.db");
    let key = make_key(&store, "app", &["--scopes", "llm"]);
    let served = Served::start(&store, &policy, &[]);
    let mut streamed = chat("Write two sentences about rivers.");
    streamed["stream"] = json!(true);
    let mut with_usage = chat("Write two sentences about mountains.");
    with_usage["stream"] = json!(true);
    with_usage["include_usage"] = json!(true);
    let results = python_client(
        &served,
        &key,
        &json!([
            chat("What is the capital of France?"),
            streamed,
            with_usage,
            chat("what is the capital city of France?"),
            chat("What is the capital of France?"),
            {"do": "embed", "model": "all-minilm-l6-v2", "input": ["a river", "a mountain"]},
            {"do": "models"},
            {"do": "metrics"},
        ]),
    );
    let first = &results[0];
    assert_eq!(first["text"], "Paris.");
    assert_eq!(first["cache"], "miss");
    assert_eq!(
        first["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
               "completion_tokens_details": null, "prompt_tokens_details": null})
    );
    let long = "A longer answer, streamed to the client in several chunks of text.";
    for streamed in &results[1..3] {
        assert_eq!(streamed["text"], long);
        assert_eq!(streamed["finish_reason"], "stop");
        assert!(streamed["chunks"].as_u64().unwrap() >= 4, "{streamed}");
        assert_eq!(streamed["usage"]["total_tokens"], 23);
    }
    // A paraphrase is answered by the semantic tier, a repeat by the exact one: neither
    // reaches the provider.
    assert_eq!(results[3]["cache"], "semantic");
    assert_eq!(results[3]["text"], "Paris.");
    assert_eq!(results[4]["cache"], "exact");
    assert_eq!(upstream.requests().len(), 3);
    let embedded = &results[5];
    assert_eq!(
        (embedded["count"].clone(), embedded["dims"].clone()),
        (json!(2), json!(384))
    );
    assert!((embedded["norm"].as_f64().unwrap() - 1.0).abs() < 1e-3);
    assert!(embedded["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);
    assert_eq!(
        results[6],
        json!(["all-minilm-l6-v2", "qwen2.5-coder", "smollm2", "test"])
    );
    let samples = results[7].as_array().unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(
        value("baton_llm_requests_total", &[("source", "provider")]),
        3.0
    );
    assert_eq!(
        value("baton_cache_lookups_total", &[("tier", "semantic")]),
        1.0
    );
    assert_eq!(
        value("baton_cache_lookups_total", &[("tier", "exact")]),
        1.0
    );
    assert_eq!(value("baton_cache_lookups_total", &[("tier", "miss")]), 3.0);
    assert_eq!(
        value(
            "baton_llm_tokens_total",
            &[("model", "test"), ("direction", "output")]
        ),
        30.0
    );
    let chats = [("route", "/v1/chat/completions"), ("status", "200")];
    assert_eq!(value("baton_http_requests_total", &chats), 5.0);
    let histogram = samples
        .iter()
        .find(|s| s["family"] == "baton_http_request_duration_seconds")
        .expect("request durations");
    assert_eq!(histogram["type"], "histogram");
    // Every request is a run of its own whose bundle replays without the provider.
    for result in [&results[0], &results[1], &results[3], &results[5]] {
        assert_replays(&store, result["run"].as_str().unwrap(), dir.path());
    }
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn keys_are_checked_and_bad_requests_refused_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = ModelServer::start(vec![], Reply::ok("ok", (3, 1)));
    let policy = write_policy(dir.path(), &upstream.policy("test", ""));
    let store = dir.path().join("journal.db");
    let llm = make_key(&store, "llm", &["--scopes", "llm"]);
    let runs_only = make_key(&store, "runs", &["--scopes", "runs"]);
    let served = Served::start(&store, &policy, &["--max-body", "64 KiB"]);
    let client = Api::new(&served.address);
    let body = json!({"model": "test", "messages": [{"role": "user", "content": "hi"}]});
    let cases: Vec<(Option<&str>, &str, String, u16, &str)> =
        vec![
        (None, "POST", body.to_string(), 401, "missing_api_key"),
        (Some("bk_wrong"), "POST", body.to_string(), 401, "invalid_api_key"),
        (Some(&runs_only), "POST", body.to_string(), 403, "missing_scope"),
        (Some(&llm), "POST", "{not json".into(), 400, "invalid_request"),
        (
            Some(&llm),
            "POST",
            json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            404,
            "model_not_found",
        ),
        (
            Some(&llm),
            "POST",
            json!({"model": "test", "messages": [{"role": "user", "content": "x".repeat(70_000)}]})
                .to_string(),
            413,
            "request_too_large",
        ),
        (Some(&llm), "GET", String::new(), 405, "method_not_allowed"),
    ];
    for (key, method, body, status, code) in cases {
        let (got, answer) = client.send(method, "/v1/chat/completions", key, &body);
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = client.send(
        "POST",
        "/v1/chat/completions",
        Some(&llm),
        &body.to_string(),
    );
    assert_eq!(status, 200);
    // A revoked key stops working at once, without a restart.
    text_output(&run_with_store(&store, &["keys", "revoke", "llm"]));
    let (status, answer) = client.send(
        "POST",
        "/v1/chat/completions",
        Some(&llm),
        &body.to_string(),
    );
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (401, json!("invalid_api_key"))
    );
    let (status, _) = client.send("GET", "/nowhere", Some(&llm), "");
    assert_eq!(status, 404);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_keys_budget_is_never_overspent_by_64_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = ModelServer::start(vec![], Reply::ok("fine", (10, 9)));
    let policy = write_policy(dir.path(), &upstream.policy("test", ""));
    let store = dir.path().join("journal.db");
    let key = make_key(
        &store,
        "tight",
        &["--scopes", "llm", "--budget", "tokens=300"],
    );
    let served = Served::start(&store, &policy, &[]);
    let ok = answered_or_refused(64, |client, i| {
        ask_once(client, &served, &key, &format!("question {i}"))
    });
    assert!(ok * 19 <= 300, "{ok} answers of 19 tokens overspend 300");
    assert_eq!(upstream.requests().len() as u64, ok);
    // What the key spent survives the server: written when it stops.
    let (status, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
    let keys = json_output(&run_with_store(&store, &["keys", "ls", "--json"]));
    assert_eq!(keys[0]["spent"]["tokens"], ok * 19);
    assert_eq!(keys[0]["spent"]["calls"], ok);
    // A restarted server goes on from there: the key cannot spend it twice.
    let served = Served::start(&store, &policy, &[]);
    let client = Api::new(&served.address);
    let body = json!({"model": "test", "max_tokens": 300,
                      "messages": [{"role": "user", "content": "more"}]});
    let (status, answer) = client.send(
        "POST",
        "/v1/chat/completions",
        Some(&key),
        &body.to_string(),
    );
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (429, json!("budget_exceeded"))
    );
}

#[test]
fn the_local_model_answers_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "");
    let store = dir.path().join("journal.db");
    let key = make_key(&store, "local", &[]);
    let served = Served::start(&store, &policy, &[]);
    let mut ask = json!({"do": "chat", "model": "smollm2", "max_tokens": 8,
                         "messages": [{"role": "user", "content": "Name a colour."}]});
    let results = python_client(&served, &key, &json!([ask.clone()]));
    let answer = &results[0];
    assert!(!answer["text"].as_str().unwrap().is_empty(), "{answer}");
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() <= 8);
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    ask["stream"] = json!(true);
    let streamed = &python_client(&served, &key, &json!([ask]))[0];
    // Greedy decoding: the same answer, streamed.
    assert_eq!(streamed["text"], answer["text"]);
    assert_replays(&store, answer["run"].as_str().unwrap(), dir.path());
}

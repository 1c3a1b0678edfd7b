//! LLM calls in the host, against an OpenAI-compatible server on loopback with scripted
//! answers (and the local model): retries with backoff and Retry-After, the circuit breaker,
//! idempotency keys, budget reservations under concurrency, cost-aware fallbacks, and replay
//! without any provider.
//!
//! Longer than most files here: every test shares the scripted server's helpers, and each
//! exercises one step of the same path (route, retry, breaker, budget, journal).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use baton::budget::{BudgetLimits, Ledger, Usd};
use baton::effects::{Gate, LiveGate};
use baton::journal::event::{
    EventKind, LlmAttempt, LlmMessage, LlmOutcome, LlmRequest, step_chain,
};
use baton::journal::store::{Journal, StoreUrl};
use baton::llm::{Llm, Requester};
use baton::policy::Policy;
use baton::runtime::models;
use baton::{Host, HostOptions};
use serde_json::{Value, json};

use crate::common::*;
use crate::model_server::{ModelServer, Reply};

/// `baton --policy POLICY llm complete PROMPT --model test ARGS...` with its journal in `dir`.
pub fn complete(dir: &Path, policy: &Path, prompt: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--policy",
        policy.to_str().unwrap(),
        "llm",
        "complete",
        prompt,
        "--model",
        "test",
    ];
    args.extend_from_slice(extra);
    run_with_store(&dir.join("journal.db"), &args)
}

/// `baton --policy POLICY call llm-probe --input INPUT EXTRA...`, with the journal in `dir`
/// (where the probe must have been copied).
fn call_probe(dir: &Path, policy: &Path, input: &str, extra: &[&str]) -> Output {
    let probe = dir.join("llm-probe.wasm");
    let mut args = vec![
        "--policy",
        policy.to_str().unwrap(),
        "call",
        probe.to_str().unwrap(),
        "--input",
        input,
    ];
    args.extend_from_slice(extra);
    run_with_store(&dir.join("journal.db"), &args)
}

/// A caller of the library, not a plugin.
const REQUESTER: Requester = Requester {
    name: "test",
    digest: "",
    cache: None,
};

fn request(prompt: &str, max_tokens: u32) -> LlmRequest {
    LlmRequest {
        idempotency_key: None,
        max_tokens,
        messages: vec![LlmMessage {
            content: prompt.into(),
            role: "user".into(),
        }],
        model: "test".into(),
        seed: None,
        stop: Vec::new(),
        temperature: "0".into(),
        pattern: None,
    }
}

/// The attempts journaled for the completion of run `run` in the journal at `store`.
fn attempts(store: &Path, run: &str) -> Vec<LlmAttempt> {
    let journal = Journal::open_read_only(store).unwrap();
    journal
        .events(run)
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Llm { attempts, .. } => Some(attempts),
            _ => None,
        })
        .expect("the run journals its completion")
}

#[test]
fn retries_back_off_and_honour_retry_after_then_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(
        vec![
            Reply::status(500),
            Reply::status_with(429, "retry-after-ms", "300"),
            Reply::ok("done", (5, 2)),
        ],
        Reply::status(500),
    );
    let provider = "retries = 3\napi_key_env = \"BATON_TEST_KEY\"";
    let policy = write_policy(dir.path(), &server.policy("test", provider));
    let store = dir.path().join("journal.db");
    let output = baton()
        .env("BATON_STORE", &store)
        .env("BATON_TEST_KEY", "sk-test-123")
        .args([
            "--policy",
            policy.to_str().unwrap(),
            "llm",
            "complete",
            "hi",
        ])
        .args(["--model", "test", "--json"])
        .output()
        .unwrap();
    let out = json_output(&output);
    assert_eq!(out["text"], "done");
    assert_eq!(out["model"], "test");
    assert_eq!(
        (out["input_tokens"].as_u64(), out["output_tokens"].as_u64()),
        (Some(5), Some(2))
    );

    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    // Backoff of 10 ms waits at least half of it; Retry-After is waited for exactly.
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(5));
    assert!(seen[2].at - seen[1].at >= Duration::from_millis(300));
    assert_eq!(
        seen[0].body["messages"][0],
        json!({"role": "user", "content": "hi"})
    );
    let auth = seen[0].headers.iter().find(|(n, _)| n == "authorization");
    assert_eq!(auth.map(|(_, v)| v.as_str()), Some("Bearer sk-test-123"));
    // The key is sent, never written anywhere (journal, its log, the idempotency store).
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(11).any(|w| w == b"sk-test-123"));
    }

    let attempts = attempts(&store, out["run"].as_str().unwrap());
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 429, 0]);
    assert_eq!(attempts[1].delay_ms, 300);
    assert!(attempts[2].error.is_empty());
}

#[test]
fn a_provider_that_keeps_failing_is_reported_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::status(503));
    let policy = write_policy(dir.path(), &server.policy("test", "retries = 2"));
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 1);
    assert_contains(
        &line,
        &[
            "unavailable",
            "HTTP 503",
            "(3 attempts)",
            "provider 'openai'",
        ],
    );
    assert_eq!(server.requests().len(), 3);

    // A request the provider rejects as such is not retried.
    let server = ModelServer::start(Vec::new(), Reply::status(400));
    let policy = write_policy(dir.path(), &server.policy("test", "retries = 2"));
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 1);
    assert_contains(&line, &["HTTP 400", "scripted status 400", "(1 attempt)"]);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_slow_provider_times_out_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Reply::Slow(Duration::from_secs(2), Box::new(Reply::ok("late", (1, 1))));
    let server = ModelServer::start(Vec::new(), slow);
    let policy = write_policy(
        dir.path(),
        &server.policy("test", "retries = 1\ntimeout = \"200ms\""),
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 1);
    assert_contains(
        &line,
        &["timeout", "no answer within 200ms", "(2 attempts)"],
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_retry_after_beyond_max_backoff_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::status_with(429, "retry-after", "3600"));
    let policy = write_policy(
        dir.path(),
        &server.policy("test", "retries = 3\nmax_backoff = \"2s\""),
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 1);
    assert_contains(
        &line,
        &["HTTP 429", "asked to retry after 1h", "max_backoff 2s"],
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(
        vec![Reply::status(500), Reply::status(500)],
        Reply::ok("back", (3, 1)),
    );
    let policy = write_policy(
        dir.path(),
        &server.policy(
            "test",
            "retries = 0\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"",
        ),
    );
    let store = dir.path().join("journal.db");
    let host = Host::new(HostOptions {
        policies: vec![crate::common::trust_policy(), policy],
        store: Some(StoreUrl::Sqlite(store.clone())),
        ..HostOptions::default()
    })
    .unwrap();
    let kind = |run: &baton::runtime::completion::CompletionRun| match &run.outcome {
        LlmOutcome::Completed { text, .. } => format!("ok {text}"),
        LlmOutcome::Failed { kind, message } => format!("{kind}: {message}"),
    };

    let first = host.complete(request("a", 4)).await;
    assert!(kind(&first).starts_with("unavailable"), "{}", kind(&first));
    let second = host.complete(request("b", 4)).await;
    let opened = host.complete(request("c", 4)).await;
    assert_contains(
        &kind(&opened),
        &["unavailable", "circuit breaker opened after 2"],
    );
    // Failing fast: no third request reached the server.
    assert_eq!(server.requests().len(), 2);

    // The cooldown is what is under test here: wait it out.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let probe = host.complete(request("d", 4)).await;
    assert_eq!(kind(&probe), "ok back");
    let after = host.complete(request("e", 4)).await;
    assert_eq!(kind(&after), "ok back");
    assert_eq!(server.requests().len(), 4);

    drop(host);
    let breaker = |run: &baton::runtime::completion::CompletionRun| -> Vec<String> {
        let id = &run.run.as_ref().unwrap().id;
        attempts(&store, id)
            .into_iter()
            .map(|a| a.breaker)
            .collect()
    };
    assert_eq!(breaker(&first), [""]);
    assert_eq!(breaker(&second), ["closed->open"]);
    assert_eq!(breaker(&opened), [""]);
    assert_eq!(breaker(&probe), ["open->half_open, half_open->closed"]);
    assert_eq!(breaker(&after), [""]);
}

#[test]
fn an_idempotent_repeat_returns_the_stored_result_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(vec![Reply::status(400)], Reply::ok("fine", (2, 2)));
    let policy = write_policy(dir.path(), &server.policy("test", "retries = 0"));
    let key = ["--idempotency-key", "k1"];

    let first = error_line(&complete(dir.path(), &policy, "hi", &key), 1);
    assert_contains(&first, &["HTTP 400"]);
    // The stored error, even across processes, and no second request.
    let again = error_line(&complete(dir.path(), &policy, "hi", &key), 1);
    assert_eq!(again, first);
    assert_eq!(server.requests().len(), 1);

    let other = error_line(&complete(dir.path(), &policy, "something else", &key), 2);
    assert_contains(
        &other,
        &["idempotency key 'k1' was used before with different parameters"],
    );
    assert_eq!(server.requests().len(), 1);

    let key = ["--idempotency-key", "k2"];
    let answer = text_output(&complete(dir.path(), &policy, "hi", &key));
    assert_eq!(answer.trim(), "fine");
    let repeat = text_output(&complete(dir.path(), &policy, "hi", &key));
    assert_eq!(repeat, answer);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_calls_never_overspend_the_budget() {
    // "hi" with max_tokens 10: the reservation's worst case is 14 input tokens (2 bytes plus
    // the chat format's allowance) and 10 output tokens; the server reports exactly that.
    let server = ModelServer::start(Vec::new(), Reply::ok("ok", (14, 10)));
    let dir = tempfile::tempdir().unwrap();
    let text = server.policy("test", "retries = 0") + "input_per_1k = 1.0\noutput_per_1k = 2.0\n";
    let policy = Policy::load(&write_policy(dir.path(), &text)).unwrap();
    let llm = Arc::new(Llm::new(policy.llm(), &baton::llm::Stores::Memory));
    // One call costs 14 × $0.001 + 10 × $0.002 = $0.034: the budget fits exactly ten.
    let per_call = Usd::parse("0.034").unwrap();
    let limit = Usd(per_call.0 * 10);
    let mut requests = 0;
    for repetition in 0..100 {
        let ledger = Ledger::run(BudgetLimits {
            usd: Some(limit),
            ..BudgetLimits::default()
        });
        let gate: Arc<dyn Gate> = LiveGate::unrecorded("run", step_chain("x"));
        let calls: Vec<_> = (0..64)
            .map(|_| {
                let (gate, llm, ledger) = (gate.clone(), llm.clone(), ledger.clone());
                tokio::spawn(async move {
                    models::complete(&*gate, &llm, &REQUESTER, request("hi", 10), &ledger).await
                })
            })
            .collect();
        let mut succeeded = 0;
        for call in calls {
            match call.await.unwrap() {
                LlmOutcome::Completed { .. } => succeeded += 1,
                LlmOutcome::Failed { kind, .. } => assert_eq!(kind, "budget-exceeded"),
            }
        }
        let spent = ledger.report().spent;
        assert_eq!(succeeded, 10, "repetition {repetition}");
        assert!(
            spent.usd <= limit,
            "repetition {repetition}: spent {}",
            spent.usd
        );
        assert_eq!(spent.usd, limit);
        requests += 10;
        assert_eq!(server.requests().len(), requests);
    }
}

#[test]
fn cost_is_priced_per_thousand_tokens_and_reported_with_the_budget_left() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("priced", (1000, 2000)));
    let text = server.policy("test", "") + "input_per_1k = 0.5\noutput_per_1k = 1.5\n";
    let policy = write_policy(dir.path(), &text);
    let output = complete(
        dir.path(),
        &policy,
        "hi",
        &["--json", "--max-tokens", "2000", "--budget", "usd=10"],
    );
    let out = json_output(&output);
    // 1000 × $0.5/1k + 2000 × $1.5/1k
    assert_eq!(out["cost_usd"], 3.5);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains(
        &stderr,
        &["budget: 1 LLM call, 3000 tokens, $3.50; budget left: $6.50"],
    );
}

#[test]
fn a_cheaper_fallback_serves_when_the_budget_cannot_cover_the_preferred_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("cheap answer", (3, 3)));
    let text = server.policy("test", "")
        + "input_per_1k = 10.0\noutput_per_1k = 10.0\nfallbacks = [\"small\"]\n\n\
           [llm.models.small]\nprovider = \"openai\"\nname = \"small-remote\"\n";
    let policy = write_policy(dir.path(), &text);
    let out = json_output(&complete(
        dir.path(),
        &policy,
        "hi",
        &["--json", "--budget", "usd=0.01", "--max-tokens", "16"],
    ));
    assert_eq!(out["model"], "small");
    assert_eq!(server.requests()[0].body["model"], "small-remote");

    // Without a fallback the refusal says which budget and how much.
    let text = server.policy("test", "") + "input_per_1k = 10.0\noutput_per_1k = 10.0\n";
    let policy = write_policy(dir.path(), &text);
    let line = error_line(
        &complete(
            dir.path(),
            &policy,
            "hi",
            &["--budget", "usd=0.01", "--max-tokens", "16"],
        ),
        3,
    );
    assert_contains(&line, &["budget exceeded", "$0.30 needed", "budget.usd"]);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_budget_refusal_reaches_the_plugin_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("first", (14, 10)));
    let text = server.policy("test", "")
        + "\n[budget]\ntokens = 30\n\n[plugins.llm-probe.llm]\nmodels = [\"test\"]\n";
    let policy = write_policy(dir.path(), &text);
    copy_plugin("testing/llm-probe.wasm", dir.path());
    let input = json!({"requests": [
        {"model": "test", "prompt": "hi", "max_tokens": 10},
        {"model": "test", "prompt": "hi", "max_tokens": 10},
        {"model": "test", "prompt": "hi", "max_tokens": 10, "temperature": 7.5},
    ]})
    .to_string();
    let output = call_probe(dir.path(), &policy, &input, &[]);
    let out = json_output(&output);
    assert_eq!(out["answers"][0]["ok"]["text"], "first");
    let refusal = &out["answers"][1]["error"];
    assert_eq!(refusal["kind"], "budget-exceeded");
    assert_contains(
        refusal["message"].as_str().unwrap(),
        &[
            "the run's budget cannot cover this",
            "24 tokens needed, 24 of 30",
            "budget.tokens",
        ],
    );
    let invalid = &out["answers"][2]["error"];
    assert_eq!(invalid["kind"], "invalid-argument");
    assert_contains(
        invalid["message"].as_str().unwrap(),
        &["temperature 7.5 is outside 0 to 2"],
    );
    assert_eq!(server.requests().len(), 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_contains(
        &stderr,
        &["budget: 1 LLM call, 24 tokens, $0.00; budget left: 6 tokens"],
    );
}

#[test]
fn a_replay_serves_recorded_completions_without_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(vec![Reply::status(502)], Reply::ok("recorded", (4, 4)));
    let text =
        server.policy("test", "retries = 1") + "\n[plugins.llm-probe.llm]\nmodels = [\"test\"]\n";
    let policy = write_policy(dir.path(), &text);
    copy_plugin("testing/llm-probe.wasm", dir.path());
    let bundle = dir.path().join("run.bundle");
    let input = json!({"requests": [{"model": "test", "prompt": "hi"}]}).to_string();
    let out = json_output(&call_probe(
        dir.path(),
        &policy,
        &input,
        &["--bundle", bundle.to_str().unwrap()],
    ));
    assert_eq!(out["answers"][0]["ok"]["text"], "recorded");
    drop(server);

    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert_contains(&replayed, &["identical:"]);
}

#[test]
fn misconfigured_routes_and_budgets_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "[llm.models.test]\nprovider = \"nowhere\"\n");
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 5);
    assert_contains(&line, &["[llm.models.test] names provider 'nowhere'"]);

    // A local model is named in the models directory or given by path, not both.
    let policy = write_policy(
        dir.path(),
        "[llm.providers.mine]\nkind = \"local\"\nmodel = \"a.gguf\"\nmodel_file = \"b.gguf\"\n",
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 5);
    assert_contains(
        &line,
        &[
            "[llm.providers.mine] gives both model and model_file",
            "not both",
        ],
    );
    let policy = write_policy(
        dir.path(),
        "[llm.providers.mine]\nkind = \"local\"\nmodel = \"../elsewhere.gguf\"\n",
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 5);
    assert_contains(
        &line,
        &[
            "model '../elsewhere.gguf' is not a name in the models directory",
            "model_file",
        ],
    );

    let policy = write_policy(
        dir.path(),
        "[llm.models.test]\nprovider = \"local\"\ninput_per_1k = -1\n",
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 5);
    assert_contains(&line, &["line 3", "not a price"]);

    let empty = write_policy(dir.path(), "");
    let line = error_line(&complete(dir.path(), &empty, "hi", &[]), 2);
    assert_contains(&line, &["model 'test' has no route", "[llm.models.test]"]);

    let usage = complete(dir.path(), &empty, "hi", &["--budget", "dollars=1"]);
    assert_eq!(usage.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&usage.stderr);
    assert_contains(
        &stderr,
        &["--budget", "'dollars' is not a budget (tokens, usd, time"],
    );
    for bad in [["--temperature", "3"], ["--max-tokens", "0"]] {
        let usage = complete(dir.path(), &empty, "hi", &bad);
        assert_eq!(usage.status.code(), Some(2), "{bad:?}");
        assert_contains(&String::from_utf8_lossy(&usage.stderr), &[bad[0]]);
    }
}

#[test]
fn the_local_model_answers_offline_and_repeats_itself_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "");
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "--policy",
            policy.to_str().unwrap(),
            "llm",
            "complete",
            "What is the capital of France?",
            "--max-tokens",
            "24",
        ];
        args.extend_from_slice(extra);
        text_output(&run_with_store(&dir.path().join("journal.db"), &args))
    };
    let greedy = ask(&[]);
    assert!(greedy.contains("Paris"), "{greedy}");
    let sampled = ask(&["--temperature", "0.9", "--seed", "42"]);
    assert_eq!(ask(&["--temperature", "0.9", "--seed", "42"]), sampled);
}

#[test]
fn a_plugin_counts_tokens_with_the_local_models_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "[plugins.llm-probe.llm]\nmodels = [\"smollm2\"]\n",
    );
    copy_plugin("testing/llm-probe.wasm", dir.path());
    let input = json!({"count": [
        {"model": "smollm2", "text": "Hello world"},
        {"model": "smollm2", "text": "<|im_start|>"},
        {"model": "nothing", "text": "x"},
    ]})
    .to_string();
    let out: Value = json_output(&call_probe(dir.path(), &policy, &input, &[]));
    // "Hello" and " world" are one token each; a control token is one token.
    assert_eq!(out["counts"][0]["ok"], 2);
    assert_eq!(out["counts"][1]["ok"], 1);
    assert_eq!(out["counts"][2]["error"]["kind"], "not-granted");
}

#[test]
fn fuel_and_time_are_charged_to_the_budget_like_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let spin = plugin("testing/spin.wasm");
    let store = dir.path().join("journal.db");
    let call = |extra: &[&str]| {
        let mut args = vec!["call", spin.to_str().unwrap(), "--input", "{}"];
        args.extend_from_slice(extra);
        run_with_store(&store, &args)
    };
    // The call's fuel limit is cut to what the budget has left.
    let line = error_line(&call(&["--budget", "fuel=2_000_000"]), 3);
    assert_contains(
        &line,
        &[
            "ran out of fuel after 2000000 units",
            "all that was left of the budget",
            "--budget fuel=",
        ],
    );
    let summary = call(&["--budget", "fuel=2_000_000"]).stderr;
    assert_contains(
        &String::from_utf8_lossy(&summary),
        &["budget: 0 LLM calls, 0 tokens, $0.00; budget left: 0 fuel"],
    );

    // With fuel to spare, the deadline is what is left of the time budget.
    let endless = call(&["--fuel", "1_000_000_000_000", "--budget", "time=200ms"]);
    let line = error_line(&endless, 3);
    assert_contains(
        &line,
        &[
            "deadline",
            "all that was left of the budget",
            "--budget time=",
        ],
    );
}

/// Reference cosine similarities of all-MiniLM-L6-v2 from an independent implementation
/// (sentence-transformers), as ../shared/TOOLCHAIN.md records them.
const REFERENCE_SIMILARITIES: [(&str, &str, f32); 3] = [
    (
        "What is the capital of France?",
        "Capital of France",
        0.9205,
    ),
    (
        "What is the capital of France?",
        "How do I bake bread?",
        0.1481,
    ),
    (
        "Summarize Q3",
        "Give me a summary of the third quarter",
        0.4952,
    ),
];

#[test]
fn embeddings_match_the_reference_implementation() {
    for (a, b, expected) in REFERENCE_SIMILARITIES {
        let printed = text_output(&run(&["eval", a, b]));
        let found: f32 = printed.trim().parse().unwrap();
        assert!(
            (found - expected).abs() <= 1e-3,
            "{a:?} vs {b:?}: {found}, expected {expected}"
        );
    }
    let line = error_line(&run(&["eval", "a", "b", "--model", "smollm2"]), 1);
    assert_contains(&line, &["'smollm2'", "does not embed"]);
}

#[test]
fn a_plugins_embeddings_and_token_counts_replay_without_the_models() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "[plugins.llm-probe.llm]\nmodels = [\"all-minilm-l6-v2\", \"smollm2\"]\n",
    );
    copy_plugin("testing/llm-probe.wasm", dir.path());
    let bundle = dir.path().join("run.bundle");
    let (a, b, expected) = REFERENCE_SIMILARITIES[0];
    let input = json!({
        "embed": [{"model": "all-minilm-l6-v2", "texts": [a, b]}],
        "count": [{"model": "smollm2", "text": "Hello world"}],
    })
    .to_string();
    let out = json_output(&call_probe(
        dir.path(),
        &policy,
        &input,
        &["--bundle", bundle.to_str().unwrap()],
    ));
    let vectors: Vec<Vec<f32>> =
        serde_json::from_value(out["embeddings"][0]["ok"].clone()).unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].len(), 384);
    let norm: f32 = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(x, y)| x * y).sum();
    assert!((cosine - expected).abs() <= 1e-3, "{cosine}");
    assert_eq!(out["counts"][0]["ok"], 2);

    // No models at all: the recorded vectors and counts are served.
    let nowhere = dir.path().join("no-models");
    let replayed = baton()
        .env("BATON_MODELS", &nowhere)
        .args(["replay", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert_contains(&text_output(&replayed), &["identical:"]);
}

/// A GGUF of an architecture the local provider does not run is refused by name, before any
/// weight is read.
#[test]
fn a_local_model_of_another_architecture_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    // A GGUF (version 3) with no tensors and one key: general.architecture = "mamba".
    let mut gguf = b"GGUF".to_vec();
    gguf.extend(3u32.to_le_bytes());
    gguf.extend(0u64.to_le_bytes());
    gguf.extend(1u64.to_le_bytes());
    let key = b"general.architecture";
    gguf.extend((key.len() as u64).to_le_bytes());
    gguf.extend(key);
    gguf.extend(8u32.to_le_bytes()); // a string
    gguf.extend(5u64.to_le_bytes());
    gguf.extend(b"mamba");
    std::fs::write(dir.path().join("mamba.gguf"), gguf).unwrap();
    let policy = write_policy(
        dir.path(),
        "[llm.providers.mine]\nkind = \"local\"\nmodel_file = \"mamba.gguf\"\n\
         [llm.models.test]\nprovider = \"mine\"\n",
    );
    let line = error_line(&complete(dir.path(), &policy, "hi", &[]), 1);
    assert_contains(
        &line,
        &[
            "mamba.gguf",
            "its architecture is 'mamba'",
            "'llama' (SmolLM2) and 'qwen2' (Qwen2.5)",
        ],
    );
}

#[test]
fn a_missing_model_file_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-models");
    let out = baton()
        .env("BATON_STORE", dir.path().join("journal.db"))
        .env("BATON_MODELS", &nowhere)
        .args(["llm", "complete", "hi"])
        .output()
        .unwrap();
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &[
            "unavailable",
            "cannot open the local model",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "cargo xtask models",
        ],
    );
    let out = baton()
        .env("BATON_MODELS", &nowhere)
        .args(["eval", "a", "b"])
        .output()
        .unwrap();
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &[
            "the embedding model lacks",
            "BATON_MODELS is ",
            "no-models",
            "cargo xtask models",
        ],
    );
}

/// Without BATON_MODELS, Baton looks in the user's data directory, says so when the model is
/// not there, and finds it there (where `cargo xtask models` also puts it) in a new shell.
#[test]
fn without_baton_models_the_data_directory_is_where_models_are_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let eval = || {
        baton()
            .env_remove("BATON_MODELS")
            .env("XDG_DATA_HOME", &data)
            .args(["eval", "a cat", "a kitten"])
            .output()
            .unwrap()
    };
    let line = error_line(&eval(), 1);
    let default = data.join("baton/models");
    assert_contains(
        &line,
        &[
            "BATON_MODELS is unset, so Baton looks in ",
            default.to_str().unwrap(),
            "cargo xtask models",
        ],
    );
    let model = default.join("all-minilm-l6-v2");
    std::fs::create_dir_all(&model).unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let from = models_dir().join("all-minilm-l6-v2").join(file);
        std::fs::hard_link(&from, model.join(file))
            .or_else(|_| std::fs::copy(&from, model.join(file)).map(|_| ()))
            .unwrap();
    }
    let similarity: f64 = text_output(&eval()).trim().parse().unwrap();
    assert!(similarity > 0.5, "{similarity}");
}

/// `--pattern` holds the local model's reply to a regular expression, journaled with the
/// request; a pattern that does not compile is one line and exit status 2.
#[test]
fn a_pattern_holds_the_local_models_reply() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let ask = |pattern: &str| {
        run_with_store(
            &store,
            &[
                "llm",
                "complete",
                "Tell me a long story about the number four.",
                "--max-tokens",
                "24",
                "--json",
                "--pattern",
                pattern,
            ],
        )
    };
    let pattern = r"ANSWER: [0-9]{1,3}\.";
    let out = json_output(&ask(pattern));
    let text = out["text"].as_str().unwrap();
    let digits = text
        .strip_prefix("ANSWER: ")
        .and_then(|t| t.strip_suffix('.'))
        .unwrap_or_else(|| panic!("outside the pattern: {text:?}"));
    assert!(
        (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "{text:?}"
    );
    // The pattern complete, the reply ends there rather than at max_tokens.
    assert_eq!(out["finish_reason"], "stop", "{out}");
    let journal = Journal::open_read_only(&store).unwrap();
    let recorded = journal
        .events(out["run"].as_str().unwrap())
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Llm { request, .. } => request.pattern,
            _ => None,
        });
    assert_eq!(recorded.as_deref(), Some(pattern));

    assert_contains(
        &error_line(&ask("ANSWER: ([0-9]"), 2),
        &[
            "--pattern: the pattern is not a regular expression Baton can use",
            "unclosed group",
        ],
    );
}

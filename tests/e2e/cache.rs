//! The completion cache: exact and semantic hits answer without the provider, near-misses
//! do not, sampled requests are not served semantically unless the policy opts in, hits are
//! journaled and replayed, and the cache can be listed and cleared.

use std::path::{Path, PathBuf};
use std::process::Output;

use baton::journal::event::{EventKind, LlmMessage, LlmOutcome, LlmRequest};
use baton::journal::store::{Journal, StoreUrl};
use baton::{Host, HostOptions};
use serde_json::json;

use crate::common::*;
use crate::model_server::{ModelServer, Reply};

/// A policy routing `test` to `server` with the cache on, and `extra` appended.
fn cached_policy(dir: &Path, server: &ModelServer, extra: &str) -> PathBuf {
    let text = server.policy("test", "retries = 0") + "\n[cache]\nenabled = true\n" + extra;
    write_policy(dir, &text)
}

/// `llm::complete` with `--json`.
fn ask(dir: &Path, policy: &Path, prompt: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    crate::llm::complete(dir, policy, prompt, &args)
}

/// Where the completion of `run` came from, and the similarity it was served at.
fn source(dir: &Path, run: &serde_json::Value) -> (String, String) {
    let journal = Journal::open_read_only(&dir.join("journal.db")).unwrap();
    journal
        .events(run.as_str().unwrap())
        .unwrap()
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Llm {
                source, similarity, ..
            } => Some((source, similarity)),
            _ => None,
        })
        .unwrap()
}

#[test]
fn exact_and_semantic_hits_answer_without_the_provider_and_near_misses_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("Paris.", (9, 2)));
    let policy = cached_policy(dir.path(), &server, "");

    let first = json_output(&ask(
        dir.path(),
        &policy,
        "What is the capital of France?",
        &[],
    ));
    assert_eq!(source(dir.path(), &first["run"]).0, "provider");
    assert_eq!(server.requests().len(), 1);

    let output = ask(dir.path(), &policy, "What is the capital of France?", &[]);
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_contains(
        &summary,
        &["budget: 0 LLM calls, 0 tokens, $0.00, 1 cache hit"],
    );
    let again = json_output(&output);
    assert_eq!(again["text"], "Paris.");
    assert_eq!(
        source(dir.path(), &again["run"]),
        ("cache:exact".into(), String::new())
    );
    assert_eq!(again["cost_usd"], 0.0);

    let paraphrase = "what is the capital city of France?";
    let similar = json_output(&ask(dir.path(), &policy, paraphrase, &[]));
    let (tier, similarity) = source(dir.path(), &similar["run"]);
    assert_eq!(tier, "cache:semantic");
    assert!(similarity.parse::<f32>().unwrap() >= 0.9, "{similarity}");
    assert_eq!(server.requests().len(), 1);

    // Near-misses reach the provider: another entity, a negation, another number.
    for near_miss in [
        "What is the capital of Germany?",
        "What is not the capital of France?",
        "What was the capital of France in 1500?",
    ] {
        let out = json_output(&ask(dir.path(), &policy, near_miss, &[]));
        assert_eq!(source(dir.path(), &out["run"]).0, "provider", "{near_miss}");
    }
    assert_eq!(server.requests().len(), 4);

    // A sampled request is served only by the exact tier, unless the policy opts in.
    let sampled = ["--temperature", "0.7", "--seed", "1"];
    let out = json_output(&ask(
        dir.path(),
        &policy,
        "What is the capital of France?",
        &sampled,
    ));
    assert_eq!(source(dir.path(), &out["run"]).0, "provider");
    let out = json_output(&ask(dir.path(), &policy, paraphrase, &sampled));
    assert_eq!(source(dir.path(), &out["run"]).0, "provider");
    // (A changed policy is a new namespace: answers given under another are not reused.)
    let opted = cached_policy(dir.path(), &server, "sampled = true\n");
    let out = json_output(&ask(
        dir.path(),
        &opted,
        "Tell me the capital of France.",
        &sampled,
    ));
    assert_eq!(source(dir.path(), &out["run"]).0, "provider");
    let out = json_output(&ask(
        dir.path(),
        &opted,
        "What's the capital of France?",
        &sampled,
    ));
    assert_eq!(source(dir.path(), &out["run"]).0, "cache:semantic");
}

#[test]
fn the_cache_is_listed_counted_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("ok", (3, 1)));
    let policy = cached_policy(dir.path(), &server, "");
    let store = dir.path().join("journal.db");
    for prompt in ["one question", "one question", "another question"] {
        json_output(&ask(dir.path(), &policy, prompt, &[]));
    }
    let cache = |args: &[&str]| {
        let mut all = vec!["--policy", policy.to_str().unwrap(), "cache"];
        all.extend_from_slice(args);
        run_with_store(&store, &all)
    };
    let stats = json_output(&cache(&["stats", "--json"]));
    assert_eq!(stats["entries"], 2);
    assert_eq!(stats["lookups"], 3);
    assert_eq!(stats["exact_hits"], 1);

    let listed = text_output(&cache(&["ls"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    let id = lines[0].split_whitespace().next().unwrap().to_string();
    assert_contains(
        &text_output(&cache(&["rm", &id])),
        &[&format!("removed entry {id}")],
    );
    let line = error_line(&cache(&["rm", &id]), 2);
    assert_contains(
        &line,
        &[&format!("there is no entry {id}"), "baton cache ls"],
    );
    assert_contains(&text_output(&cache(&["clear"])), &["removed 1 entries"]);
    assert_eq!(json_output(&cache(&["stats", "--json"]))["entries"], 0);
}

#[tokio::test]
async fn hits_are_served_while_the_providers_breaker_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(vec![Reply::ok("cached", (3, 1))], Reply::status(500));
    let policy = cached_policy(dir.path(), &server, "");
    let text = std::fs::read_to_string(&policy).unwrap().replace(
        "retries = 0",
        "retries = 0\nbreaker_failures = 1\nbreaker_cooldown = \"60s\"",
    );
    std::fs::write(&policy, text).unwrap();
    let host = Host::new(HostOptions {
        policies: vec![crate::common::trust_policy(), policy],
        store: Some(StoreUrl::Sqlite(dir.path().join("journal.db"))),
        ..HostOptions::default()
    })
    .unwrap();
    let request = |prompt: &str| LlmRequest {
        idempotency_key: None,
        max_tokens: 8,
        messages: vec![LlmMessage {
            content: prompt.into(),
            role: "user".into(),
        }],
        model: "test".into(),
        seed: None,
        stop: Vec::new(),
        temperature: "0".into(),
        pattern: None,
    };
    let text = |outcome: &LlmOutcome| match outcome {
        LlmOutcome::Completed { text, .. } => text.clone(),
        LlmOutcome::Failed { kind, message } => format!("{kind}: {message}"),
    };
    assert_eq!(
        text(&host.complete(request("first")).await.outcome),
        "cached"
    );
    let failed = host.complete(request("second")).await.outcome;
    assert!(text(&failed).contains("HTTP 500"), "{}", text(&failed));
    let open = host.complete(request("third")).await.outcome;
    assert!(
        text(&open).contains("circuit breaker opened"),
        "{}",
        text(&open)
    );
    // The breaker is open, and the cache still answers.
    assert_eq!(
        text(&host.complete(request("first")).await.outcome),
        "cached"
    );
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_cached_call_replays_and_a_plugin_can_be_kept_out_of_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("fresh", (3, 1)));
    let grant = "\n[plugins.llm-probe.llm]\nmodels = [\"test\"]\n";
    let policy = cached_policy(dir.path(), &server, grant);
    let probe = copy_plugin("testing/llm-probe.wasm", dir.path());
    let input = json!({"requests": [
        {"model": "test", "prompt": "Name a colour."},
        {"model": "test", "prompt": "Name a colour."},
    ]})
    .to_string();
    let bundle = dir.path().join("run.bundle");
    let call = |policy: &Path, extra: &[&str]| {
        let mut args = vec![
            "--policy",
            policy.to_str().unwrap(),
            "call",
            probe.to_str().unwrap(),
            "--input",
            &input,
        ];
        args.extend_from_slice(extra);
        run_with_store(&dir.path().join("journal.db"), &args)
    };
    let out = json_output(&call(&policy, &["--bundle", bundle.to_str().unwrap()]));
    assert_eq!(out["answers"][1]["ok"]["text"], "fresh");
    assert_eq!(server.requests().len(), 1);
    drop(server);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert_contains(&replayed, &["identical:"]);

    let server = ModelServer::start(Vec::new(), Reply::ok("uncached", (3, 1)));
    let kept_out = grant.to_string() + "cache = false\n";
    let policy = cached_policy(dir.path(), &server, &kept_out);
    let out = json_output(&call(&policy, &[]));
    assert_eq!(out["answers"][0]["ok"]["text"], "uncached");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn fuzzy_assert_checks_meaning_rather_than_wording() {
    // The helper finds the embedding model through BATON_MODELS, as `cargo xtask test` sets it.
    baton::testing::fuzzy_assert(
        "The capital of France is Paris.",
        "Paris is the capital city of France.",
        0.8,
    );
    let mismatch = std::panic::catch_unwind(|| {
        baton::testing::fuzzy_assert(
            "The capital of France is Paris.",
            "Bake at 200 degrees.",
            0.8,
        )
    });
    let message = mismatch.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert_contains(
        message,
        &["fuzzy_assert", "only", "(at least 0.8 expected)"],
    );
}

#[test]
fn the_least_recently_used_entries_are_evicted_past_max_entries() {
    let dir = tempfile::tempdir().unwrap();
    let server = ModelServer::start(Vec::new(), Reply::ok("ok", (3, 1)));
    let policy = cached_policy(dir.path(), &server, "max_entries = 2\n");
    for prompt in [
        "first question",
        "second question",
        "first question",
        "third question",
    ] {
        json_output(&ask(dir.path(), &policy, prompt, &[]));
    }
    let listed = text_output(&run_with_store(
        &dir.path().join("journal.db"),
        &["--policy", policy.to_str().unwrap(), "cache", "ls"],
    ));
    // "first" was used again after "second", so "second" went.
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_contains(&listed, &["third question", "first question"]);
    assert!(!listed.contains("second question"), "{listed}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_large_namespace_is_searched_through_a_vector_index_kept_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let replies = (0..6).map(|n| Reply::ok(&format!("answer {n}"), (3, 1)));
    let server = ModelServer::start(replies.collect(), Reply::ok("other", (3, 1)));
    // Past two entries the namespace is indexed, and two changes are merged into the index.
    let policy = cached_policy(dir.path(), &server, "index_above = 2\n");
    let questions = [
        "What is the capital of France?",
        "How do I bake sourdough bread?",
        "Who wrote the novel Moby Dick?",
        "How tall is the Eiffel Tower?",
        "What causes the seasons on Earth?",
        "How do vaccines train the immune system?",
    ];
    for question in questions {
        let out = json_output(&ask(dir.path(), &policy, question, &[]));
        assert_eq!(source(dir.path(), &out["run"]).0, "provider", "{question}");
    }
    let index_files = || -> Vec<String> {
        std::fs::read_dir(dir.path().join("llm-cache.db.index"))
            .map(|listing| {
                listing
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (paraphrase, original) in [
        ("what is the capital city of France?", 0),
        ("Who wrote the book Moby Dick?", 2),
        ("how do vaccines train our immune system?", 5),
    ] {
        let out = json_output(&ask(dir.path(), &policy, paraphrase, &[]));
        assert_eq!(source(dir.path(), &out["run"]).0, "cache:semantic");
        let expected = format!("answer {original}");
        assert_eq!(
            out["text"], expected,
            "{paraphrase} for {}",
            questions[original]
        );
    }
    // A near-miss still goes to the provider.
    let out = json_output(&ask(dir.path(), &policy, "How tall is Big Ben?", &[]));
    assert_eq!(source(dir.path(), &out["run"]).0, "provider");
    assert_eq!(server.requests().len(), questions.len() + 1);
    let files = index_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".usearch"), "{files:?}");

    let cleared = run_with_store(
        &dir.path().join("journal.db"),
        &["--policy", policy.to_str().unwrap(), "cache", "clear"],
    );
    assert!(cleared.status.success());
    assert!(index_files().is_empty(), "{:?}", index_files());
}

/// `baton cache eval` runs labelled pairs through the real lookups: an identical question is
/// an exact hit at any threshold, a paraphrase hits at the policy's threshold but not at
/// 0.99, and a near-miss on a number is refused by the second check however low the
/// threshold.
#[test]
fn cache_eval_reports_true_and_false_hits_through_the_real_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    let lines = [
        json!({"a": "What is the capital of France?", "b": "What is the capital of France?",
               "hit": true, "kind": "same"}),
        json!({"a": "What is the capital of France?", "b": "what is the capital city of France?",
               "hit": true, "kind": "paraphrase"}),
        json!({"a": "Is 3 a prime number?", "b": "Is 4 a prime number?", "hit": false,
               "kind": "number"}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(&pairs, text.join("\n") + "\n\n").unwrap();
    let pairs = pairs.to_str().unwrap();
    let eval = |threshold: &str| {
        json_output(&run(&[
            "cache",
            "eval",
            pairs,
            "--json",
            "--threshold",
            threshold,
            "--errors",
            "5",
        ]))
    };

    let loose = eval("0");
    assert_eq!(loose["pairs"], 3);
    assert_eq!(loose["true_hits"]["count"], 2, "{loose}");
    assert_eq!(loose["true_hits"]["of"], 2);
    assert_eq!(loose["false_hits"]["count"], 0, "{loose}");
    assert_eq!(loose["false_hits"]["of"], 1);
    assert_eq!(loose["kinds"]["number"]["false_hits"]["count"], 0);
    assert_eq!(loose["errors"], json!([]));
    // Nothing wrong and one pair of a kind: the interval still says how little that proves.
    let ci = &loose["false_hits"]["ci95"];
    assert_eq!(ci[0], 0.0);
    assert!(ci[1].as_f64().unwrap() > 0.5, "{ci}");

    let strict = eval("0.99");
    assert_eq!(strict["true_hits"]["count"], 1, "{strict}");
    assert_eq!(strict["kinds"]["same"]["true_hits"]["count"], 1);
    assert_eq!(strict["kinds"]["paraphrase"]["true_hits"]["count"], 0);
    let missed = &strict["errors"][0];
    assert_eq!(missed["b"], "what is the capital city of France?");
    let similarity = missed["similarity"].as_f64().unwrap();
    assert!((0.9..0.99).contains(&similarity), "{similarity}");

    // The policy's own threshold, in words, with a sweep.
    let text = text_output(&run(&["cache", "eval", pairs, "--sweep"]));
    assert_contains(
        &text,
        &[
            "3 pairs from",
            "2 should hit, 1 should not (threshold 0.92",
            "true hits   100.0% (2 of 2; 95% CI",
            "false hits    0.0% (0 of 1; 95% CI 0.0–",
            "lowest threshold with no false hits: 0.70 (100.0% true hits)",
        ],
    );
}

#[test]
fn cache_eval_refuses_a_set_it_cannot_read_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pairs.jsonl");
    let path = file.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec!["cache", "eval", path];
        args.extend_from_slice(extra);
        error_line(&run(&args), 2)
    };
    assert_contains(&eval(&[]), &["cannot read", "pairs.jsonl"]);
    std::fs::write(&file, "\n\n").unwrap();
    assert_contains(&eval(&[]), &["pairs.jsonl holds no pairs", "per line"]);
    std::fs::write(
        &file,
        "{\"a\": \"x\", \"b\": \"y\", \"hit\": true}\n{\"a\": \"x\", \"b\": \"y\"}\n",
    )
    .unwrap();
    assert_contains(
        &eval(&[]),
        &[
            "pairs.jsonl line 2: missing field `hit`",
            "\"hit\": true|false",
        ],
    );
    std::fs::write(&file, "{\"a\": \"x\", \"b\": \"y\", \"hit\": \"yes\"}\n").unwrap();
    assert_contains(&eval(&[]), &["line 1: invalid type: string \"yes\""]);
    std::fs::write(&file, "{\"a\": \"x\", \"b\": \"y\", \"hit\": true}\n").unwrap();
    assert_contains(
        &eval(&["--threshold", "1.5"]),
        &["--threshold 1.5 is not a similarity", "from 0 to 1"],
    );
}

//! LLM calls in the host: what the ledger, the gate and the provider client add, and how fast
//! the local model generates.
//!
//! - `ledger/reserve_commit`: one reservation and its commit on an uncontended run ledger,
//!   against `ledger/mutex_baseline` (two lock-add-unlock rounds on a plain `Mutex<u64>`, the
//!   least a shared counter can cost).
//! - `ledger/contended_64`: 64 threads reserving and committing against one run budget; time
//!   per reservation. The budget is checked after every sample: spend never exceeds it.
//! - `llm_call/gate` / `llm_call/native_reqwest`: one chat completion against a keep-alive
//!   loopback server answering at once, through Baton (gate, router, ledger, provider client,
//!   breaker) and by a bare reqwest POST of the same body; the difference is Baton's
//!   overhead per call.
//! - `local/generate_1`, `local/generate_32`: SmolLM2-135M (the default local model) reading a
//!   short prompt and generating 1 or 32 tokens, greedy: tokens per second, with and without
//!   the prompt.
//!
//! - `cache/exact_hit`, `cache/semantic_hit`: an exact-tier lookup, and a semantic hit end to
//!   end (embedding the question, scanning a namespace of 1,000 entries, fetching and
//!   decompressing the answer); `cache/model_load`: loading all-MiniLM-L6-v2.
//!
//! Run with `cargo xtask bench`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::budget::{BudgetLimits, Ledger, Spend, Usd};
use baton::effects::{Gate, LiveGate};
use baton::journal::event::{LlmMessage, LlmOutcome, LlmRequest, step_chain};
use baton::llm::{Llm, Requester};
use baton::policy::Policy;
use baton::runtime::models;
use criterion::{Criterion, criterion_group};

#[allow(dead_code)]
mod common;

use common::serve_completions;

fn ledger(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger");
    let run = Ledger::run(BudgetLimits {
        usd: Some(Usd(u64::MAX / 2)),
        tokens: Some(u64::MAX / 2),
        ..BudgetLimits::default()
    });
    let want = Spend {
        tokens: 100,
        usd: Usd(1000),
        calls: 1,
        fuel: 0,
    };
    group.bench_function("reserve_commit", |b| {
        b.iter(|| {
            let hold = run.reserve(want).unwrap();
            hold.commit(want);
        })
    });
    let counter = Mutex::new(0u64);
    group.bench_function("mutex_baseline", |b| {
        b.iter(|| {
            *counter.lock().unwrap() += 1;
            *counter.lock().unwrap() += 1;
        })
    });
    group.bench_function("contended_64", |b| {
        b.iter_custom(|iterations| {
            let per_thread = iterations.div_ceil(64).max(1);
            // Room for a tenth of the attempts: most reservations are refused near the limit.
            let limit = Usd(per_thread * 64 * 1000 / 10);
            let run = Ledger::run(BudgetLimits {
                usd: Some(limit),
                ..BudgetLimits::default()
            });
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..64 {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            if let Ok(hold) = run.reserve(want) {
                                hold.commit(want);
                            }
                        }
                    });
                }
            });
            let elapsed = start.elapsed();
            assert!(run.report().spent.usd <= limit, "the ledger overspent");
            elapsed.mul_f64(iterations as f64 / (per_thread * 64) as f64)
        })
    });
    group.finish();
}

/// A caller of the library, not a plugin.
const REQUESTER: Requester = Requester {
    name: "bench",
    digest: "",
    cache: None,
};

fn request(model: &str, prompt: &str, max_tokens: u32) -> LlmRequest {
    LlmRequest {
        idempotency_key: None,
        max_tokens,
        messages: vec![LlmMessage {
            content: prompt.into(),
            role: "user".into(),
        }],
        model: model.into(),
        seed: None,
        stop: Vec::new(),
        temperature: "0".into(),
        pattern: None,
    }
}

fn llm_for(policy_text: &str) -> Llm {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy_text).unwrap();
    let policy = Policy::load(&path).unwrap();
    Llm::new(policy.llm(), &baton_llm::Stores::Memory)
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = rt.block_on(serve_completions());
    let base = format!("http://127.0.0.1:{port}/v1");
    let llm = llm_for(&format!(
        "[llm.providers.bench]\nkind = \"openai\"\nbase_url = \"{base}\"\n\n\
         [llm.models.bench]\nprovider = \"bench\"\ninput_per_1k = 0.001\noutput_per_1k = 0.002\n"
    ));
    let gate: Arc<dyn Gate> = LiveGate::unrecorded("bench", step_chain("bench"));
    let ledger = Ledger::run(BudgetLimits {
        usd: Some(Usd(u64::MAX / 2)),
        ..BudgetLimits::default()
    });
    let prompt = "Say ok.";
    let mut group = c.benchmark_group("llm_call");
    group.bench_function("gate", |b| {
        b.to_async(&rt).iter(|| async {
            let outcome = models::complete(
                &*gate,
                &llm,
                &REQUESTER,
                request("bench", prompt, 8),
                &ledger,
            )
            .await;
            assert!(
                matches!(outcome, LlmOutcome::Completed { .. }),
                "{outcome:?}"
            );
        })
    });
    let client = reqwest::Client::new();
    let url = format!("{base}/chat/completions");
    let body = serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 8,
        "temperature": 0.0,
        "stream": false,
    });
    group.bench_function("native_reqwest", |b| {
        b.to_async(&rt).iter(|| async {
            let answer: serde_json::Value = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["choices"][0]["message"]["content"], "ok");
        })
    });
    group.finish();
}

fn local(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The built-in policy's local model, from BATON_MODELS (set by `cargo xtask bench`).
    let llm = llm_for("");
    let gate: Arc<dyn Gate> = LiveGate::unrecorded("bench", step_chain("bench"));
    let ledger = Ledger::run(BudgetLimits::default());
    let generate = |tokens: u32| {
        let story = request("smollm2", "Write a long story about a dragon.", tokens);
        let (gate, llm, ledger) = (&gate, &llm, &ledger);
        async move {
            match models::complete(&**gate, llm, &REQUESTER, story, ledger).await {
                LlmOutcome::Completed { output_tokens, .. } => output_tokens,
                failed => panic!("the local model failed: {failed:?}"),
            }
        }
    };
    // Loads the model, and checks the answer runs to its 32 tokens.
    assert_eq!(rt.block_on(generate(32)), 32);
    let mut group = c.benchmark_group("local");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    // The prompt and the first token; the difference to 32 tokens is 31 decoding steps.
    group.bench_function("generate_1", |b| b.to_async(&rt).iter(|| generate(1)));
    group.bench_function("generate_32", |b| b.to_async(&rt).iter(|| generate(32)));
    group.finish();
}

fn cache(c: &mut Criterion) {
    use baton::llm::cache::{Cache, Keys};
    use baton::llm::embedding::Embedding;
    use baton::policy::llm::{CacheSettings, DEFAULT_EMBEDDING_MODEL, models_dir};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let llm = llm_for("");
    let settings = CacheSettings::default();
    let cache = Cache::new(None);
    let answer = LlmOutcome::Completed {
        finish_reason: "stop".into(),
        input_tokens: 20,
        model: "smollm2".into(),
        output_tokens: 40,
        text: "A cached answer of a few dozen words, as a short completion would be. ".repeat(4),
    };
    // A thousand questions in one namespace, with their embeddings.
    let questions: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "Question number {i} about topic {} and detail {}",
                i % 37,
                i % 11
            )
        })
        .collect();
    let vectors = rt
        .block_on(llm.embed(DEFAULT_EMBEDDING_MODEL, &questions))
        .unwrap();
    for (question, vector) in questions.iter().zip(&vectors) {
        let keys = Keys::of(&request("smollm2", question, 64), "", "bench");
        cache
            .store(&keys, Some(vector), &answer, &settings)
            .unwrap();
    }
    let mut group = c.benchmark_group("cache");
    let stored = Keys::of(&request("smollm2", &questions[500], 64), "", "bench");
    group.bench_function("exact_hit", |b| {
        b.iter(|| assert!(cache.exact(&stored, &settings).unwrap().is_some()))
    });
    // A paraphrase of a stored question: embed it, scan the namespace, fetch, decompress.
    let paraphrase = "Question number 500 about topic 19 and detail 5?";
    let asked = Keys::of(&request("smollm2", paraphrase, 64), "", "bench");
    group.bench_function("semantic_hit", |b| {
        b.iter(|| {
            let vector = rt
                .block_on(llm.embed(DEFAULT_EMBEDDING_MODEL, &[paraphrase.to_string()]))
                .unwrap()
                .pop()
                .unwrap();
            assert!(
                cache
                    .semantic(&asked, &vector, &settings)
                    .unwrap()
                    .is_some()
            );
        })
    });
    group.sample_size(10);
    group.bench_function("model_load", |b| {
        b.iter(|| Embedding::load(&models_dir().join(DEFAULT_EMBEDDING_MODEL)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, ledger, calls, local, cache);
fn main() {
    // As the `baton` command does, before any thread starts.
    baton::llm::pin_thread_count();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

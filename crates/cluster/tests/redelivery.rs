//! What a worker answers for a step delivered again, against a real PostgreSQL server.

// Only starting a server is needed here.
#[allow(dead_code)]
#[path = "../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

use std::sync::Arc;

use baton_cluster::Answer;
use baton_cluster::worker::outcome;
use baton_orchestrator::remote::{StepOutcome, StepRequest, StepRunner};
use baton_postgres::PgStore;
use baton_runtime::{Host, HostOptions};

fn request() -> StepRequest {
    StepRequest {
        run: "01jredelivered0000000000000".into(),
        id: "s1".into(),
        tool: "calc".into(),
        input: r#"{"expression": "1 + 2"}"#.into(),
        replicates: 0,
        signatures: Default::default(),
        accounts: Vec::new(),
        labels: Default::default(),
    }
}

fn earlier() -> StepOutcome {
    StepOutcome {
        ok: true,
        output: Some(r#"{"value":3.0}"#.into()),
        error: None,
        out_of_budget: false,
        invocations: 1,
        fuel: 1234,
        tokens: 0,
        usd: 0,
        calls: 0,
        cache_hits: 0,
        semantic_hits: 0,
        chains: Vec::new(),
        worker: "the-worker-that-died".into(),
        notes: Vec::new(),
        labels: Default::default(),
    }
}

/// A worker that died after recording a step's outcome, before acknowledging it: the worker
/// the step is delivered to again answers the recorded outcome and runs nothing (its host
/// has no store, so running the step could only fail).
#[tokio::test(flavor = "multi_thread")]
async fn a_step_delivered_again_after_its_outcome_was_recorded_is_not_run_again() {
    let server = postgres::Postgres::start();
    let store = Arc::new(PgStore::open(&server.url()).unwrap());
    let request = request();
    let recorded = serde_json::to_string(&Ok::<_, String>(earlier())).unwrap();
    store
        .save_step_outcome(&request.run, &request.id, &recorded)
        .unwrap();
    let runner = StepRunner::new(
        Arc::new(Host::new(HostOptions::default()).unwrap()),
        "w2".into(),
    );
    let answered = outcome(&store, &runner, &request, true).await.unwrap();
    let answer: Answer = serde_json::from_slice(&answered).unwrap();
    assert_eq!(answer.id, "s1");
    assert_eq!(answer.outcome.unwrap(), earlier());

    // The same step not recorded yet is run: with no store to read the run from, it fails,
    // and that failure is what is recorded and answered.
    let mut fresh = request.clone();
    fresh.id = "s2".into();
    let answered = outcome(&store, &runner, &fresh, true).await.unwrap();
    let answer: Answer = serde_json::from_slice(&answered).unwrap();
    let error = answer.outcome.unwrap_err();
    assert!(error.contains("no store to read it from"), "{error}");
    let kept = store.step_outcome(&fresh.run, "s2").unwrap().unwrap();
    assert!(kept.contains("no store to read it from"), "{kept}");
}

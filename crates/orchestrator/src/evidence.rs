//! Evidence bundles: a step run several times, its outputs weighed against each other.
//!
//! The outputs (as compact JSON text) are embedded with the workflow's embedding model and
//! compared by cosine similarity. The consensus is the medoid, the output most similar to all
//! others (the first of equals); the confidence is its mean similarity to every other
//! replicate, a failed replicate counting as 0. Without the embedding model, outputs are
//! compared exactly (1 when equal, else 0) and the bundle says so.

use serde_json::{Value, json};

use baton_effects::Gate;
use baton_llm::embedding::cosine;
use baton_runtime::models;
use baton_runtime::run::RunContext;

pub(super) async fn weigh(
    ctx: &RunContext,
    gate: &dyn Gate,
    model: &str,
    replicates: u32,
    outputs: Vec<Value>,
    errors: Vec<String>,
) -> Value {
    let texts: Vec<String> = outputs.iter().map(Value::to_string).collect();
    let (measure, similarities, embedding_error) =
        match models::embed(gate, ctx.llm(), model, &texts).await {
            Ok(vectors) => (
                format!("embedding:{model}"),
                matrix(&vectors, |a, b| cosine(a, b) as f64),
                None,
            ),
            Err(e) => (
                "exact".into(),
                matrix(&texts, |a, b| f64::from(u8::from(a == b))),
                Some(e),
            ),
        };
    let n = outputs.len();
    let agreement =
        |i: usize| -> f64 { (0..n).filter(|&j| j != i).map(|j| similarities[i][j]).sum() };
    let consensus = (0..n)
        .max_by(|&i, &j| agreement(i).total_cmp(&agreement(j)).then(j.cmp(&i)))
        .expect("there is at least one output");
    let others = replicates.saturating_sub(1).max(1) as f64;
    let confidence = match replicates {
        0 | 1 => 1.0,
        _ => agreement(consensus) / others,
    };
    let mut bundle = json!({
        "replicates": replicates,
        "outputs": outputs,
        "errors": errors,
        "measure": measure,
        "similarities": similarities
            .iter()
            .map(|row| row.iter().map(|&s| round(s)).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "consensus": outputs[consensus],
        "consensus_index": consensus,
        "confidence": round(confidence),
    });
    if let Some(error) = embedding_error {
        bundle["embedding_error"] = Value::String(error);
    }
    bundle
}

/// `similarity` of every pair of `items` (1 on the diagonal).
fn matrix<T>(items: &[T], similarity: impl Fn(&T, &T) -> f64) -> Vec<Vec<f64>> {
    items
        .iter()
        .enumerate()
        .map(|(i, a)| {
            items
                .iter()
                .enumerate()
                .map(|(j, b)| if i == j { 1.0 } else { similarity(a, b) })
                .collect()
        })
        .collect()
}

/// Four decimal places: enough to rank, and stable to read.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

//! The LLM layer, reached through the gate: the only place a model is asked on a
//! component's (or the command line's) behalf. Live, the request goes to the providers and
//! the answer is journaled; in a replay, the recorded answer is served and no provider is
//! ever asked.

use std::sync::Arc;

use baton_budget::Ledger;
use baton_effects::Gate;
use baton_effects::http::{decode_body, encode_body};
use baton_journal::event::{EventKind, LlmOutcome, LlmRequest};
use baton_llm::{Llm, Requester, embedding};

/// What a caller gets when a replay has diverged before its answer.
const DIVERGED: &str = "the replay diverged";

/// Sends a completion request through `gate` to `llm`'s providers, spending from `ledger`
/// (live), or serves the recorded outcome (replay).
pub async fn complete(
    gate: &dyn Gate,
    llm: &Llm,
    requester: &Requester<'_>,
    request: LlmRequest,
    ledger: &Arc<Ledger>,
) -> LlmOutcome {
    answer(gate, llm, requester, request, ledger).await.outcome
}

/// A completion's outcome and where it came from.
#[derive(Debug, Clone)]
pub struct Answer {
    pub outcome: LlmOutcome,
    /// A provider, the idempotency store, or a cache tier (see `baton_llm::source` and
    /// `baton_llm::cache::tier`); empty when nothing answered.
    pub source: String,
}

/// `complete`, saying where the answer came from.
pub async fn answer(
    gate: &dyn Gate,
    llm: &Llm,
    requester: &Requester<'_>,
    request: LlmRequest,
    ledger: &Arc<Ledger>,
) -> Answer {
    let probe = EventKind::Llm {
        attempts: Vec::new(),
        committed: Default::default(),
        outcome: LlmOutcome::Failed {
            kind: "failed".into(),
            message: "the caller stopped waiting before the model answered".into(),
        },
        request: request.clone(),
        reserved: Default::default(),
        similarity: String::new(),
        source: String::new(),
    };
    let perform = async {
        let record = llm.perform(requester, &request, ledger).await;
        record.into_event(request.clone())
    };
    match gate.exchange(probe, perform).await {
        Some(EventKind::Llm {
            outcome, source, ..
        }) => Answer { outcome, source },
        _ => Answer {
            outcome: LlmOutcome::Failed {
                kind: "failed".into(),
                message: DIVERGED.into(),
            },
            source: String::new(),
        },
    }
}

/// Embeds `texts` with `model` (live), or serves the recorded vectors.
pub async fn embed(
    gate: &dyn Gate,
    llm: &Llm,
    model: &str,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, String> {
    let json = serde_json::to_vec(texts).expect("strings serialize");
    let (texts_digest, _) = encode_body(&json);
    let event = |dims, error, vectors| EventKind::LlmEmbed {
        dims,
        error,
        model: model.into(),
        texts_digest: texts_digest.clone(),
        vectors,
    };
    let perform = async {
        match llm.embed(model, texts).await {
            Ok(vectors) => {
                let dims = vectors.first().map_or(0, Vec::len) as u32;
                let bytes = embedding::to_bytes(vectors.iter().flatten());
                event(dims, String::new(), encode_body(&bytes).1)
            }
            Err(e) => event(0, e, String::new()),
        }
    };
    match gate
        .exchange(event(0, "abandoned".into(), String::new()), perform)
        .await
    {
        Some(EventKind::LlmEmbed {
            dims,
            error,
            vectors,
            ..
        }) if error.is_empty() => {
            let floats: Vec<f32> = embedding::from_bytes(&decode_body(&vectors)).collect();
            Ok(floats
                .chunks(dims.max(1) as usize)
                .map(<[f32]>::to_vec)
                .collect())
        }
        Some(EventKind::LlmEmbed { error, .. }) => Err(error),
        _ => Err(DIVERGED.into()),
    }
}

/// Counts `text`'s tokens with `model`'s tokenizer (live), or serves the recorded count.
pub async fn count_tokens(
    gate: &dyn Gate,
    llm: &Llm,
    model: &str,
    text: &str,
) -> Result<u32, String> {
    let (text_digest, _) = encode_body(text.as_bytes());
    let event = |count, error| EventKind::LlmTokens {
        count,
        error,
        model: model.into(),
        text_digest: text_digest.clone(),
    };
    let perform = async {
        match llm.count(model, text).await {
            Ok(n) => event(n, String::new()),
            Err(e) => event(0, e),
        }
    };
    match gate.exchange(event(0, "abandoned".into()), perform).await {
        Some(EventKind::LlmTokens { count, error, .. }) if error.is_empty() => Ok(count),
        Some(EventKind::LlmTokens { error, .. }) => Err(error),
        _ => Err(DIVERGED.into()),
    }
}

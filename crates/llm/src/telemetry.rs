//! What the LLM layer tells the process's metrics recorder (rendered by `baton serve` at
//! `/metrics`; nothing is recorded when no recorder is installed), and the span of each
//! request, with the OpenTelemetry GenAI semantic conventions' attributes (exported over
//! OTLP when `--otlp-endpoint` is given).

use baton_journal::event::{LlmOutcome, LlmRequest};

use baton_policy::llm::ModelRoute;
use tracing::field::Empty;

use crate::LlmRecord;
use crate::breaker::Transition;
use crate::cache::tier;

/// One completion request served: its outcome, where the answer came from, its tokens
/// and cost (spent only when a provider answered), and how the cache fared when asked.
pub fn completion(request: &LlmRequest, record: &LlmRecord, cache_asked: bool) {
    let model = request.model.clone();
    let (outcome, kind) = match &record.outcome {
        LlmOutcome::Completed { .. } => ("ok", String::new()),
        LlmOutcome::Failed { kind, .. } => ("failed", kind.clone()),
    };
    let source = match record.source.as_str() {
        "" => "none".to_string(),
        s => s.to_string(),
    };
    metrics::counter!(
        "baton_llm_requests_total",
        "model" => model.clone(),
        "outcome" => outcome,
        "source" => source
    )
    .increment(1);
    if kind == "budget-exceeded" {
        metrics::counter!("baton_budget_refusals_total", "what" => "llm").increment(1);
    }
    if cache_asked {
        let tier = match record.source.as_str() {
            tier::EXACT => "exact",
            tier::SEMANTIC => "semantic",
            _ => "miss",
        };
        metrics::counter!("baton_cache_lookups_total", "tier" => tier).increment(1);
    }
    let spent = &record.committed;
    if spent.tokens > 0 || spent.nano_usd > 0 {
        if let LlmOutcome::Completed {
            input_tokens,
            output_tokens,
            ..
        } = &record.outcome
        {
            metrics::counter!("baton_llm_tokens_total", "model" => model.clone(), "direction" => "input")
                .increment(u64::from(*input_tokens));
            metrics::counter!("baton_llm_tokens_total", "model" => model.clone(), "direction" => "output")
                .increment(u64::from(*output_tokens));
        }
        metrics::counter!("baton_llm_cost_nano_usd_total", "model" => model)
            .increment(spent.nano_usd);
    }
}

/// A breaker changed state: 0 closed, 1 half-open, 2 open.
pub fn breaker(provider: &str, transition: Transition) {
    let state = match transition.rsplit("->").next() {
        Some("open") => 2.0,
        Some("half_open") => 1.0,
        _ => 0.0,
    };
    metrics::gauge!("baton_breaker_state", "provider" => provider.to_string()).set(state);
    metrics::counter!(
        "baton_breaker_transitions_total",
        "provider" => provider.to_string(),
        "transition" => transition
    )
    .increment(1);
}

/// The span of one completion request (`route`: the model's route, when it has one).
pub fn span(request: &LlmRequest, route: Option<&ModelRoute>) -> tracing::Span {
    tracing::info_span!(
        "llm call",
        otel.name = format!("chat {}", request.model),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = route.map_or("", |r| r.provider.as_str()),
        gen_ai.request.model = request.model.as_str(),
        gen_ai.request.max_tokens = i64::from(request.max_tokens),
        gen_ai.request.temperature = request.temperature.as_str(),
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        baton.llm.source = Empty,
        error.type = Empty,
    )
}

/// Records on `span` how the request ended.
pub fn finish(span: &tracing::Span, record: &LlmRecord) {
    span.record("baton.llm.source", record.source.as_str());
    match &record.outcome {
        LlmOutcome::Completed {
            model,
            input_tokens,
            output_tokens,
            finish_reason,
            ..
        } => {
            span.record("gen_ai.response.model", model.as_str());
            span.record("gen_ai.response.finish_reasons", finish_reason.as_str());
            span.record("gen_ai.usage.input_tokens", i64::from(*input_tokens));
            span.record("gen_ai.usage.output_tokens", i64::from(*output_tokens));
        }
        LlmOutcome::Failed { kind, .. } => {
            span.record("error.type", kind.as_str());
        }
    }
}

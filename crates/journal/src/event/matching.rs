//! What each event kind means for replay: its name, what "the same call" is (for an effect,
//! the request, never the recorded answer), and what a replay takes over from the record
//! because it cannot reproduce it.

use super::EventKind;

impl EventKind {
    /// The snake_case name stored in the `kind` column and shown in messages.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted { .. } => "run_started",
            EventKind::Workflow { .. } => "workflow",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::InvocationStarted { .. } => "invocation_started",
            EventKind::WallClock { .. } => "wall_clock",
            EventKind::MonotonicClock { .. } => "monotonic_clock",
            EventKind::Random { .. } => "random",
            EventKind::RandomSeed { .. } => "random_seed",
            EventKind::Log { .. } => "log",
            EventKind::Denied { .. } => "denied",
            EventKind::Labels { .. } => "labels",
            EventKind::Http { .. } => "http",
            EventKind::Fs { .. } => "fs",
            EventKind::Llm { .. } => "llm",
            EventKind::LlmTokens { .. } => "llm_tokens",
            EventKind::LlmEmbed { .. } => "llm_embed",
            EventKind::ToolCall { .. } => "tool_call",
            EventKind::CacheHit { .. } => "cache_hit",
            EventKind::Verified { .. } => "verified",
            EventKind::Environment { .. } => "environment",
            EventKind::InvocationEnded { .. } => "invocation_ended",
            EventKind::Resumed { .. } => "resumed",
            EventKind::StepEnded { .. } => "step_ended",
            EventKind::RunEnded { .. } => "run_ended",
        }
    }

    /// Whether `self` (produced now) is the same as `recorded` for replay.
    pub fn same_as(&self, recorded: &EventKind) -> bool {
        use EventKind::*;
        match (self, recorded) {
            // Effects: the request is what must match; the response is served from the record.
            (WallClock { .. }, WallClock { .. })
            | (MonotonicClock { .. }, MonotonicClock { .. })
            | (RandomSeed { .. }, RandomSeed { .. })
            | (Environment { .. }, Environment { .. }) => true,
            (
                Random {
                    source: s,
                    bytes: b,
                },
                Random {
                    source: rs,
                    bytes: rb,
                },
            ) => s == rs && b.len() == rb.len(),
            // A request's body is not known when its place is reserved (empty digest); it is
            // compared once it is.
            (Http { request: a, .. }, Http { request: b, .. }) => {
                a.method == b.method
                    && a.url == b.url
                    && a.headers == b.headers
                    && (a.body_digest.is_empty() || a.body_digest == b.body_digest)
            }
            (Llm { request: a, .. }, Llm { request: b, .. }) => a == b,
            (
                LlmTokens {
                    model, text_digest, ..
                },
                LlmTokens {
                    model: rmodel,
                    text_digest: rdigest,
                    ..
                },
            ) => model == rmodel && text_digest == rdigest,
            (
                LlmEmbed {
                    model,
                    texts_digest,
                    ..
                },
                LlmEmbed {
                    model: rmodel,
                    texts_digest: rdigest,
                    ..
                },
            ) => model == rmodel && texts_digest == rdigest,
            (
                Fs { op, path, args, .. },
                Fs {
                    op: rop,
                    path: rpath,
                    args: rargs,
                    ..
                },
            ) => op == rop && path == rpath && args == rargs,
            _ => self == recorded,
        }
    }

    /// Takes over from `recorded` what replay cannot reproduce and must not compare: when
    /// the run started, which Baton recorded it, and how long an invocation took.
    pub fn adopt_recorded(&mut self, recorded: &EventKind) {
        match (self, recorded) {
            (
                EventKind::InvocationEnded { duration_us, .. },
                EventKind::InvocationEnded {
                    duration_us: recorded_us,
                    ..
                },
            ) => *duration_us = *recorded_us,
            (
                EventKind::RunStarted {
                    baton, started_at, ..
                },
                EventKind::RunStarted {
                    baton: recorded_baton,
                    started_at: recorded_at,
                    ..
                },
            ) => {
                baton.clone_from(recorded_baton);
                started_at.clone_from(recorded_at);
            }
            _ => {}
        }
    }
}

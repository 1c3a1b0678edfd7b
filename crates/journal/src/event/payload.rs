//! How much of an event is payload: the bytes it carries that its size depends on (a response
//! body, file bytes, a completion, vectors, a log line, an input or output), which a run's
//! journal allowance counts. Fixed-size fields are not counted.

use super::{EventKind, FsAnswer, HttpOutcome, InvocationOutcome, LlmOutcome, ToolCallOutcome};

impl EventKind {
    /// The payload bytes of this event.
    pub fn payload_bytes(&self) -> u64 {
        let text = |s: &str| s.len() as u64;
        let pairs = |p: &[(String, String)]| p.iter().map(|(a, b)| text(a) + text(b)).sum::<u64>();
        match self {
            EventKind::InvocationStarted { input, .. } => text(input),
            EventKind::Random { bytes, .. } => text(bytes),
            EventKind::Log { message, .. } => text(message),
            EventKind::Environment { vars } => pairs(vars),
            EventKind::Http { outcome, request } => {
                text(&request.body)
                    + match outcome {
                        HttpOutcome::Response { body, headers, .. } => text(body) + pairs(headers),
                        HttpOutcome::Failed { message, .. } => text(message),
                    }
            }
            EventKind::Fs { answer, args, .. } => {
                text(args)
                    + match answer {
                        FsAnswer::Bytes { data, .. } => text(data),
                        FsAnswer::Entries { entries } => pairs(entries),
                        FsAnswer::Text { text: target } => text(target),
                        _ => 0,
                    }
            }
            EventKind::Llm { outcome, .. } => match outcome {
                LlmOutcome::Completed { text: answer, .. } => text(answer),
                LlmOutcome::Failed { message, .. } => text(message),
            },
            EventKind::LlmEmbed { vectors, .. } => text(vectors),
            EventKind::ToolCall { input, outcome, .. } => {
                text(input)
                    + match outcome {
                        ToolCallOutcome::Returned { output } => text(output),
                        ToolCallOutcome::Failed { message, .. } => text(message),
                    }
            }
            EventKind::Resumed { output, .. } => text(output),
            EventKind::InvocationEnded { outcome, .. } => match outcome {
                InvocationOutcome::Returned { output } => text(output),
                InvocationOutcome::Limit { message, .. }
                | InvocationOutcome::ToolError { message, .. }
                | InvocationOutcome::Trap { message } => text(message),
                InvocationOutcome::Cancelled => 0,
            },
            _ => 0,
        }
    }
}

//! A run's journal allowance: how many bytes of what came from outside (response bodies, file
//! bytes, completions, vectors, log lines, outputs) the run's chains may record together. An
//! answer that would take the run past it is recorded, and given to the guest, as the error a
//! full journal is (so a replay serves the same error): parallel calls each fetching a large
//! response cannot grow one run's journal without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_core::limits::size;
use baton_journal::event::{EventKind, FsAnswer, HttpOutcome, LlmOutcome};

use crate::http;

/// What one run may record, and how much it has.
#[derive(Debug)]
pub struct JournalAllowance {
    max: u64,
    used: AtomicU64,
    /// Where the limit was set, as messages name it.
    source: String,
}

impl JournalAllowance {
    /// An allowance of `max` bytes, set in `source` (a policy file).
    pub fn new(max: u64, source: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicU64::new(0),
            source: source.into(),
        })
    }

    /// No limit: for chains nothing keeps (a component's `describe`, benchmarks).
    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX, "")
    }

    /// Bytes counted so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// Counts `kind` against the allowance. An answer from outside that does not fit is
    /// replaced by the error its asker gets instead, returned with the denial to report;
    /// everything else is counted and kept as it is.
    pub(crate) fn admit(&self, kind: EventKind) -> (EventKind, Option<String>) {
        let bytes = kind.payload_bytes();
        if bytes == 0 {
            return (kind, None);
        }
        if !refusable(&kind) {
            self.used.fetch_add(bytes, Ordering::SeqCst);
            return (kind, None);
        }
        let fits = |used: u64| used.checked_add(bytes).filter(|total| *total <= self.max);
        match self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, fits)
        {
            Ok(_) => (kind, None),
            Err(used) => {
                let message = format!(
                    "the run's journal holds {} of the {} it may ({}), too little for {} more; \
                     raise [journal] max_bytes, or have the tool fetch less",
                    size(used),
                    size(self.max),
                    self.source,
                    size(bytes)
                );
                let denial = format!("journal: {message}");
                (refused(kind, message), Some(denial))
            }
        }
    }
}

/// Whether `kind` is an answer from outside that can be refused: an HTTP response, file bytes
/// or a directory listing, a completion, vectors.
fn refusable(kind: &EventKind) -> bool {
    match kind {
        EventKind::Http { outcome, .. } => matches!(outcome, HttpOutcome::Response { .. }),
        EventKind::Fs { answer, .. } => {
            matches!(answer, FsAnswer::Bytes { .. } | FsAnswer::Entries { .. })
        }
        EventKind::Llm { outcome, .. } => matches!(outcome, LlmOutcome::Completed { .. }),
        EventKind::LlmEmbed { error, .. } => error.is_empty(),
        _ => false,
    }
}

/// The event recorded instead of the refusable `kind` when the journal cannot take it.
fn refused(mut kind: EventKind, message: String) -> EventKind {
    match &mut kind {
        EventKind::Http { outcome, .. } => {
            *outcome = http::failed(http::code::RESPONSE_TOO_LARGE, message);
        }
        EventKind::Fs { answer, .. } => {
            *answer = FsAnswer::Failed {
                code: "insufficient-space".into(),
            };
        }
        EventKind::Llm { outcome, .. } => {
            *outcome = LlmOutcome::Failed {
                kind: "budget-exceeded".into(),
                message,
            };
        }
        EventKind::LlmEmbed {
            dims,
            error,
            vectors,
            ..
        } => {
            *dims = 0;
            *error = message;
            vectors.clear();
        }
        _ => unreachable!("only refusable events are refused"),
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_journal::event::HttpRequestRecord;

    fn response(body: &str) -> EventKind {
        EventKind::Http {
            outcome: HttpOutcome::Response {
                address: "127.0.0.1:80".into(),
                body: body.into(),
                body_digest: String::new(),
                headers: Vec::new(),
                size: body.len() as u64,
                status: 200,
            },
            request: HttpRequestRecord {
                body: String::new(),
                body_digest: String::new(),
                headers: Vec::new(),
                method: "GET".into(),
                url: "http://127.0.0.1/".into(),
            },
        }
    }

    #[test]
    fn answers_past_the_allowance_become_errors_and_other_events_are_only_counted() {
        let allowance = JournalAllowance::new(10, "p.toml");
        let (kept, denial) = allowance.admit(response("12345678"));
        assert_eq!(kept, response("12345678"));
        assert!(denial.is_none());
        let (refused, denial) = allowance.admit(response("123"));
        let EventKind::Http {
            outcome: HttpOutcome::Failed { code, message },
            ..
        } = refused
        else {
            panic!("{refused:?}");
        };
        assert_eq!(code, http::code::RESPONSE_TOO_LARGE);
        assert!(
            message.contains("holds 8 B of the 10 B it may (p.toml)"),
            "{message}"
        );
        assert!(denial.unwrap().starts_with("journal: "));
        // A log line cannot be refused: it is counted.
        let log = EventKind::Log {
            level: "info".into(),
            message: "abc".into(),
        };
        assert_eq!(allowance.admit(log.clone()), (log, None));
        assert_eq!(allowance.used(), 11);
    }
}

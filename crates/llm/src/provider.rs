//! What every model provider offers: a completion, and token counts to reserve budget by.

use std::time::Duration;

use baton_journal::event::{LlmMessage, LlmRequest};

/// A provider's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    /// stop, length or content-filter.
    pub finish_reason: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No connection could be made (refused, reset, DNS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The attempt's deadline passed.
    #[error("no answer within {}", baton_core::text::duration(*.0))]
    Timeout(Duration),
    /// The provider answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// What the provider asked for in Retry-After (or retry-after-ms).
        retry_after: Option<Duration>,
    },
    /// An answer Baton cannot use, or a provider that cannot work (no model file, no key).
    #[error("{0}")]
    Broken(String),
}

impl ProviderError {
    /// Whether trying again may succeed: connection errors, timeouts, 408, 409, 429 and 5xx.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) => true,
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || (500..600).contains(status)
            }
            ProviderError::Broken(_) => false,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ProviderError::Status { status, .. } => *status,
            _ => 0,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The baton:plugin error variant a caller receives for it.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Connect(_) => "unavailable",
            e if e.retryable() => "unavailable",
            _ => "failed",
        }
    }
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Input tokens `messages` take, or an upper bound when the model's tokenizer is not
    /// known here (what a reservation is made with).
    fn count_input(&self, messages: &[LlmMessage]) -> u64;

    /// Tokens of `text` alone (or an upper bound, as `count_input`).
    fn count_text(&self, text: &str) -> u64;

    /// One attempt at a completion of `request` by the provider's model `model`, within
    /// `timeout`.
    async fn complete(
        &self,
        model: &str,
        request: &LlmRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError>;

    /// One embedding per text, in order; most providers here only complete.
    async fn embed(&self, _texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        Err(ProviderError::Broken(
            "this provider completes text; it does not embed".into(),
        ))
    }
}

/// Tokens a chat format adds around each message (role and delimiters), and once to prime
/// the answer: generous for the formats in use (ChatML adds 5 and 3).
pub const MESSAGE_OVERHEAD: u64 = 8;
pub const REPLY_OVERHEAD: u64 = 4;

/// An upper bound on the tokens of any byte-level BPE tokenizer (every token is at least one
/// byte), for providers whose tokenizer Baton does not have.
pub fn byte_bound(messages: &[LlmMessage]) -> u64 {
    messages
        .iter()
        .map(|m| m.content.len() as u64 + MESSAGE_OVERHEAD)
        .sum::<u64>()
        + REPLY_OVERHEAD
}

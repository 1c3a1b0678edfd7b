//! Helpers for tests of LLM applications, which must often check what an answer means
//! rather than how it is worded.

use std::sync::OnceLock;

use baton_llm::embedding::{Embedding, cosine};
use baton_policy::llm::{DEFAULT_EMBEDDING_MODEL, models_dir};

/// The default embedding model (all-MiniLM-L6-v2 from `$BATON_MODELS`), loaded once.
fn model() -> Result<&'static Embedding, String> {
    static MODEL: OnceLock<Result<Embedding, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| Embedding::load(&models_dir().join(DEFAULT_EMBEDDING_MODEL)))
        .as_ref()
        .map_err(Clone::clone)
}

/// How similar `a` and `b` are in meaning: the cosine similarity of their embeddings by the
/// default embedding model (1: the same, about 0: unrelated).
pub fn similarity(a: &str, b: &str) -> Result<f32, String> {
    let vectors = model()?.embed(&[a.to_string(), b.to_string()])?;
    Ok(cosine(&vectors[0], &vectors[1]))
}

/// Asserts that `actual` means what `expected` means: their similarity (see `similarity`) is
/// at least `min`. Panics naming both texts and the similarity otherwise.
///
/// ```no_run
/// baton_runtime::testing::fuzzy_assert("Paris is the capital.", "The capital is Paris.", 0.8);
/// ```
#[track_caller]
pub fn fuzzy_assert(actual: &str, expected: &str, min: f32) {
    let found = similarity(actual, expected).unwrap_or_else(|e| panic!("fuzzy_assert: {e}"));
    assert!(
        found >= min,
        "fuzzy_assert: {actual:?} and {expected:?} are only {found:.4} similar (at least {min} \
         expected)"
    );
}

//! The trust decision made on a component's bytes before anything compiles them.
//!
//! The loader calls a `TrustCheck` between hashing and compiling, so bytes that fail it never
//! reach the compiler. Signature verification plugs in here; until a policy can name trusted
//! signers, Baton accepts unsigned components and says so wherever it reports provenance.

use std::path::Path;

use super::digest::Digest;

/// What is known about who produced a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// No signature was checked.
    Unverified,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provenance::Unverified => f.write_str("unverified (no signature checked)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TrustError {
    pub reason: String,
}

pub trait TrustCheck: Send + Sync {
    fn check(&self, source: &Path, bytes: &[u8], digest: &Digest)
    -> Result<Provenance, TrustError>;
}

/// Accepts every component as unverified.
#[derive(Debug, Default)]
pub struct AcceptUnsigned;

impl TrustCheck for AcceptUnsigned {
    fn check(&self, _: &Path, _: &[u8], _: &Digest) -> Result<Provenance, TrustError> {
        Ok(Provenance::Unverified)
    }
}

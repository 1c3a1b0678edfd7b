//! What can go wrong with a registry, each error saying what to do.

use std::path::PathBuf;

use baton_core::text::{escape_controls, quote};

use oci_client::errors::{OciDistributionError, OciErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    // Both may quote what a workflow or a flag gave: on one line, controls escaped.
    #[error(
        "'{}' is not a component reference: {}",
        quote(.reference, 200),
        escape_controls(.reason)
    )]
    BadReference { reference: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a WebAssembly component ({reason}); push what `baton build` made", path.display())]
    NotAComponent { path: PathBuf, reason: String },
    #[error(
        "cannot {what} {reference}: {reason}; check the reference, that the registry is up, and \
         its credentials (BATON_REGISTRY_USERNAME, BATON_REGISTRY_PASSWORD)"
    )]
    Failed {
        what: String,
        reference: String,
        reason: String,
    },
    #[error(
        "the registry answered '{}' as the digest of {reference}, which is not a digest \
         (ALGORITHM:HEX); the registry is broken or not to be trusted",
        quote(.digest, 100)
    )]
    BadDigest { reference: String, digest: String },
    #[error("cannot cache the pulled component in {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether the registry did not answer at all (so a cached answer may stand in).
pub(crate) fn unreachable(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RequestError(e) => e.is_connect() || e.is_timeout(),
        _ => false,
    }
}

/// Whether the registry answered that there is no such manifest.
pub(crate) fn not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::ManifestUnknown)),
        _ => false,
    }
}

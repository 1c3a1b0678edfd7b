//! Offline verification of Sigstore bundles (`.sigstore.json`): keyless bundles against a
//! trusted root and a required signer identity and issuer, keyed bundles against a public key.
//! Verification is done by `sigstore-verify`, which checks certificate chains, transparency
//! log entries (checkpoints, inclusion proofs, SETs) and timestamps, never over the network.

use sigstore_trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_types::{Bundle, DerPublicKey};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, verify};

/// Who must have signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A keyless (Fulcio) signature by `identity` (the certificate's subject) from `issuer`.
    Keyless { identity: String, issuer: String },
    /// A signature by the holder of this PEM public key.
    Key { pem: String },
}

/// Why a bundle was not accepted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BundleError(pub String);

/// Verifies `bundle_json` over `artifact` for `signer`, under `trusted_root_json` (the
/// Sigstore public-good production root when `None`).
pub fn verify_bundle(
    artifact: &[u8],
    bundle_json: &str,
    signer: &Signer,
    trusted_root_json: Option<&str>,
) -> Result<(), BundleError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| BundleError(format!("{what}: {e}"));
    let root =
        TrustedRoot::from_json(trusted_root_json.unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT))
            .map_err(|e| fail("the trusted root is not valid", &e))?;
    let bundle = Bundle::from_json(bundle_json).map_err(|e| fail("not a Sigstore bundle", &e))?;
    match signer {
        Signer::Keyless { identity, issuer } => {
            let policy = VerificationPolicy::any_identity()
                .require_identity(identity.as_str())
                .require_issuer(issuer.as_str());
            verify(artifact, &bundle, &policy, &root)
        }
        Signer::Key { pem } => {
            let key = DerPublicKey::from_pem(pem).map_err(|e| fail("not a PEM public key", &e))?;
            verify(
                artifact,
                &bundle,
                &PublicKeyVerificationPolicy::new(key),
                &root,
            )
        }
    }
    .map(|_| ())
    .map_err(|e| fail("verification failed", &e))
}

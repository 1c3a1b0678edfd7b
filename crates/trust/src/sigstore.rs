//! Offline verification of Sigstore bundles (`.sigstore.json`): keyless bundles against a
//! trusted root and a required signer identity and issuer, keyed bundles against a public key.
//! Verification is done by `sigstore-verify`, which checks certificate chains, transparency
//! log entries (checkpoints, inclusion proofs, SETs) and timestamps, never over the network.

use sigstore_trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_types::{Bundle, DerPublicKey};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, verify};

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A keyless (Fulcio) signature by `identity` (the certificate's subject) from `issuer`.
    Keyless { identity: String, issuer: String },
    /// A keyless signature from `issuer` whose subject `pattern` matches.
    KeylessMatching {
        pattern: regex::Regex,
        issuer: String,
    },
    /// A signature by the holder of this PEM public key.
    Key { pem: String },
}

/// Why a bundle was not accepted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BundleError(pub String);

/// Verifies `bundle_json` over `artifact` for `signer`, under `trusted_root_json` (the
/// Sigstore public-good production root when `None`). Returns the certificate's subject for
/// a keyless signature.
pub fn verify_bundle(
    artifact: &[u8],
    bundle_json: &str,
    signer: &Signer,
    trusted_root_json: Option<&str>,
) -> Result<Option<String>, BundleError> {
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
        Signer::KeylessMatching { pattern, issuer } => {
            let policy = VerificationPolicy::any_identity().require_issuer(issuer.as_str());
            let result = verify(artifact, &bundle, &policy, &root)
                .map_err(|e| fail("verification failed", &e))?;
            let subject = result.identity().map(|i| i.as_str().to_string());
            return match subject {
                Some(subject) if pattern.is_match(&subject) => Ok(Some(subject)),
                Some(subject) => Err(BundleError(format!(
                    "the signer {subject} does not match {}",
                    pattern.as_str()
                ))),
                None => Err(BundleError("the certificate names no signer".into())),
            };
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
    .map(|result| result.identity().map(|i| i.as_str().to_string()))
    .map_err(|e| fail("verification failed", &e))
}

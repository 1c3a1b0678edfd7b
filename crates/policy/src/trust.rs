//! `[trust]`: whose signatures make a component loadable. The last policy file that sets a
//! key decides it; the built-in policy requires signatures and trusts Baton's development key
//! (embedded in the binary, so it resolves wherever Baton runs).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use baton_trust::policy::{Identity, SubjectMatch, TrustPolicy, TrustedKey};

use crate::PolicyError;
use crate::file::{Layer, relative_to};

/// The project's development public key, trusted by the built-in policy.
const DEV_KEY_PATH: &str = "../attestations/keys/baton-dev.pub";
const DEV_KEY: &str = include_str!("../../../attestations/keys/baton-dev.pub");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrustSpec {
    require_signatures: Option<bool>,
    /// Whether the policy files layered above this one must be signed.
    require_signed_policies: Option<bool>,
    /// PEM public keys, relative to the policy file.
    keys: Option<Vec<PathBuf>>,
    /// Keyless (Sigstore certificate) signers.
    identities: Option<Vec<Identity>>,
    /// A Sigstore trusted root (JSON) for keyless signatures; the public-good root if unset.
    trusted_root: Option<PathBuf>,
    /// Whether `baton replay` refuses a bundle whose run is not signed by a host key.
    require_signed_runs: Option<bool>,
    /// PEM public keys of the hosts whose signed runs are trusted, relative to the policy file.
    host_keys: Option<Vec<PathBuf>>,
}

/// Resolves `[trust]` across `layers` (built-in first), reading the files it names.
pub(super) fn resolve(layers: &[Layer], read_files: bool) -> Result<TrustPolicy, PolicyError> {
    let mut trust = TrustPolicy::default();
    for (index, layer) in layers.iter().enumerate() {
        let spec = &layer.file.trust;
        let builtin = index == 0 && layer.name == super::DEFAULT_POLICY_NAME;
        if let Some(require) = spec.require_signatures {
            trust.require_signatures = require;
        }
        if let Some(require) = spec.require_signed_policies {
            trust.require_signed_policies = require;
        }
        if let Some(keys) = &spec.keys {
            trust.keys = keys
                .iter()
                .map(|path| key(&layer.name, path, builtin, read_files))
                .collect::<Result<_, _>>()?;
        }
        if let Some(require) = spec.require_signed_runs {
            trust.require_signed_runs = require;
        }
        if let Some(keys) = &spec.host_keys {
            trust.host_keys = keys
                .iter()
                .map(|path| key(&layer.name, path, false, read_files))
                .collect::<Result<_, _>>()?;
        }
        if let Some(identities) = &spec.identities {
            trust.identities = identities.clone();
        }
        if let Some(root) = &spec.trusted_root {
            let path = relative_to(&layer.name, root);
            trust.trusted_root = match read_files {
                true => Some(read(&layer.name, &path)?),
                false => None,
            };
        }
    }
    Ok(trust)
}

fn key(
    policy: &str,
    path: &Path,
    builtin: bool,
    read_files: bool,
) -> Result<TrustedKey, PolicyError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if builtin && path == Path::new(DEV_KEY_PATH) {
        return Ok(TrustedKey {
            name,
            path: path.to_owned(),
            pem: DEV_KEY.into(),
        });
    }
    let path = relative_to(policy, path);
    let pem = match read_files {
        true => read(policy, &path)?,
        false => String::new(),
    };
    Ok(TrustedKey { name, path, pem })
}

/// Checks that the policy file at `path` (with `bytes`) is signed by a key or identity that
/// `trust` lists.
pub(super) fn check_policy_signature(
    path: &Path,
    bytes: &[u8],
    trust: &TrustPolicy,
) -> Result<(), String> {
    use baton_trust::check::{PolicyTrust, Sidecars, TrustCheck};
    let checker = PolicyTrust::new(&TrustPolicy {
        require_signatures: true,
        ..trust.clone()
    })
    .map_err(|e| e.reason)?;
    let digest = baton_core::Digest::of(bytes);
    checker
        .check(bytes, &digest, &Sidecars::beside(path))
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{} (a policy below it sets require_signed_policies; sign it with `baton sign`)",
                e.reason.replace("the component", "the policy")
            )
        })
}

fn read(policy: &str, path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::ReadTrust {
        path: path.to_owned(),
        policy: policy.into(),
        source,
    })
}

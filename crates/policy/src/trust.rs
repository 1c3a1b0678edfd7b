//! `[trust]`: whose signatures make a component loadable. Scalars (`require_signatures`, …)
//! are decided by the last policy file that sets them; the lists of trusted keys, identities
//! and host keys grow with each layer, unless a layer sets `replace = true` and so starts them
//! afresh. The built-in policy requires signatures and trusts nobody: a machine trusts the keys
//! its own policies name (`cargo xtask plugins` writes one for its development key).

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use baton_trust::policy::{Identity, SubjectMatch, TrustPolicy, TrustedKey};

use crate::PolicyError;
use crate::file::{Layer, relative_to};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrustSpec {
    /// Whether this layer's keys, identities and host keys replace those of the layers below
    /// it instead of adding to them.
    #[serde(default)]
    replace: bool,
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
    for layer in layers {
        let spec = &layer.file.trust;
        if spec.replace {
            trust.keys.clear();
            trust.identities.clear();
            trust.host_keys.clear();
        }
        if let Some(require) = spec.require_signatures {
            trust.require_signatures = require;
        }
        if let Some(require) = spec.require_signed_policies {
            trust.require_signed_policies = require;
        }
        if let Some(keys) = &spec.keys {
            for path in keys {
                let key = key(&layer.name, path, read_files)?;
                if !trust.keys.iter().any(|k| k.path == key.path) {
                    trust.keys.push(key);
                }
            }
        }
        if let Some(require) = spec.require_signed_runs {
            trust.require_signed_runs = require;
        }
        if let Some(keys) = &spec.host_keys {
            for path in keys {
                trust.host_keys.push(key(&layer.name, path, read_files)?);
            }
        }
        if let Some(identities) = &spec.identities {
            trust.identities.extend(identities.iter().cloned());
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

fn key(policy: &str, path: &Path, read_files: bool) -> Result<TrustedKey, PolicyError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = relative_to(policy, path);
    let pem = match read_files {
        true => read(policy, &path)?,
        false => String::new(),
    };
    Ok(TrustedKey {
        name,
        path,
        pem,
        policy: policy.into(),
    })
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

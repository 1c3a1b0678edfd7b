//! `[trust]`: whose signatures make a component loadable. The last policy file that sets a
//! key decides it; the built-in policy requires signatures and trusts Baton's development key
//! (embedded in the binary, so it resolves wherever Baton runs).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Layer, PolicyError, relative_to};

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
}

/// A keyless signer: the certificate's OIDC issuer, and its subject either exactly or as a
/// regular expression matched against the whole subject (as cosign's
/// `--certificate-identity` and `--certificate-identity-regexp`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawIdentity")]
pub struct Identity {
    pub issuer: String,
    pub subject: SubjectMatch,
}

#[derive(Debug, Clone)]
pub enum SubjectMatch {
    Exact(String),
    /// Anchored at both ends.
    Pattern(regex::Regex),
}

impl PartialEq for SubjectMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Pattern(a), Self::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for SubjectMatch {}

impl SubjectMatch {
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == subject,
            Self::Pattern(pattern) => pattern.is_match(subject),
        }
    }
}

impl std::fmt::Display for SubjectMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(exact),
            Self::Pattern(pattern) => write!(f, "/{}/", pattern.as_str()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    issuer: String,
    subject: Option<String>,
    subject_regexp: Option<String>,
}

impl TryFrom<RawIdentity> for Identity {
    type Error = String;

    fn try_from(raw: RawIdentity) -> Result<Self, String> {
        let subject = match (raw.subject, raw.subject_regexp) {
            (Some(exact), None) => SubjectMatch::Exact(exact),
            (None, Some(pattern)) => {
                SubjectMatch::Pattern(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(
                    |e| format!("subject_regexp '{pattern}' is not a regular expression: {e}"),
                )?)
            }
            _ => return Err("an identity needs exactly one of subject or subject_regexp".into()),
        };
        Ok(Identity {
            issuer: raw.issuer,
            subject,
        })
    }
}

/// A trusted public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its file name without extension (`baton-dev`): how a plugin's `signer` names it.
    pub name: String,
    pub path: PathBuf,
    pub pem: String,
}

/// The trust decision's inputs, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustPolicy {
    pub require_signatures: bool,
    pub require_signed_policies: bool,
    pub keys: Vec<TrustedKey>,
    pub identities: Vec<Identity>,
    /// The trusted root's JSON text, when a policy names one.
    pub trusted_root: Option<String>,
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
    use crate::loader::trust::{PolicyTrust, Sidecars, TrustCheck};
    let checker = PolicyTrust::new(&TrustPolicy {
        require_signatures: true,
        ..trust.clone()
    })
    .map_err(|e| e.reason)?;
    let digest = crate::loader::digest::Digest::of(bytes);
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

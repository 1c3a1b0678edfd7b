//! The trust decision's inputs as a policy resolves them: which keys and keyless identities
//! may sign what Baton loads, and whether signatures are required.

use std::path::PathBuf;

use serde::Deserialize;

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
    /// The policy file that named it, for messages.
    pub policy: String,
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
    /// Whether a replayed bundle must carry a run signed by one of `host_keys`.
    pub require_signed_runs: bool,
    /// The public keys of the hosts whose signed runs are trusted.
    pub host_keys: Vec<TrustedKey>,
}

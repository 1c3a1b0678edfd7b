//! The trust decision made on a component's bytes before anything compiles them.
//!
//! The loader calls a `TrustCheck` between hashing and compiling, so bytes that fail it never
//! reach the compiler. `PolicyTrust` decides by the policy's `[trust]`: a detached signature
//! (`FILE.sig`, as `baton sign` and `cosign sign-blob` write it) by a trusted key, or a
//! Sigstore bundle (`FILE.sigstore.json`) by a trusted key or keyless identity. A replay
//! decides with `RecordedTrust`: the bytes must verify with the signature and key its bundle
//! recorded.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::policy::{Identity, SubjectMatch, TrustPolicy};
use crate::signing::{Envelope, INTOTO_PAYLOAD_TYPE, PublicKey, STATEMENT_TYPE};
use crate::sigstore::{Signer, verify_bundle};
use baton_core::Digest;

/// What is known about who produced a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// No signature was required, and none was checked.
    Unverified,
    Verified(Verified),
}

/// A signature that verified, and what it is journaled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed: `key NAME (sha256:…)` or `keyless SUBJECT (ISSUER)`.
    pub signer: String,
    /// The name a plugin section's `signer` matches: the key's name or the keyless subject.
    pub name: String,
    /// The public key (PEM) for a keyed signature, empty for a keyless one.
    pub key: String,
    /// The detached signature (base64), or the Sigstore bundle (JSON).
    pub signature: String,
    /// `sha256:` of the attestation (FILE.intoto.json) when one verified with the same key.
    pub attestation: String,
    /// The Sigstore trusted root (JSON) a keyless or bundled signature was verified under, when
    /// the policy named one; empty for the public-good root or a detached signature.
    pub trusted_root: String,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provenance::Unverified => f.write_str("unverified (no signature required)"),
            Provenance::Verified(v) => write!(f, "signed by {}", v.signer),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct TrustError {
    pub reason: String,
}

fn refuse(reason: impl Into<String>) -> TrustError {
    TrustError {
        reason: reason.into(),
    }
}

/// The signature files found beside a component.
#[derive(Debug, Clone, Default)]
pub struct Sidecars {
    /// `FILE.sig` (base64 DER).
    pub sig: Option<String>,
    /// `FILE.sigstore.json`.
    pub bundle: Option<String>,
    /// `FILE.intoto.json` (a DSSE envelope).
    pub attestation: Option<String>,
    /// Where they were looked for, for messages.
    pub base: PathBuf,
}

impl Sidecars {
    /// Reads whichever of `FILE.sig`, `FILE.sigstore.json` and `FILE.intoto.json` exist.
    pub fn beside(path: &Path) -> Self {
        let read = |suffix: &str| std::fs::read_to_string(with_suffix(path, suffix)).ok();
        Self {
            sig: read(".sig"),
            bundle: read(".sigstore.json"),
            attestation: read(".intoto.json"),
            base: path.to_owned(),
        }
    }
}

/// `path` with `suffix` appended to its file name (`calc.wasm` → `calc.wasm.sig`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub trait TrustCheck: Send + Sync {
    fn check(
        &self,
        bytes: &[u8],
        digest: &Digest,
        sidecars: &Sidecars,
    ) -> Result<Provenance, TrustError>;
}

/// Decides by a policy's `[trust]`.
pub struct PolicyTrust {
    /// Accept everything unverified, without looking at signatures.
    accept_all: bool,
    require: bool,
    keys: Vec<(String, PublicKey, String)>,
    identities: Vec<Identity>,
    trusted_root: Option<String>,
    /// Who is trusted and which policy file said so, for messages.
    trusted: String,
}

impl PolicyTrust {
    /// `Err` names a trusted key that is not a usable public key.
    pub fn new(policy: &TrustPolicy) -> Result<Self, TrustError> {
        let keys = policy
            .keys
            .iter()
            .map(|k| {
                let key = PublicKey::parse(&k.pem, &k.path.display().to_string())
                    .map_err(|e| refuse(format!("trusted key {}: {e}", k.path.display())))?;
                Ok((k.name.clone(), key, k.pem.clone()))
            })
            .collect::<Result<_, TrustError>>()?;
        Ok(Self {
            accept_all: false,
            require: policy.require_signatures,
            keys,
            identities: policy.identities.clone(),
            trusted_root: policy.trusted_root.clone(),
            trusted: trusted(policy),
        })
    }

    fn trusts_nobody(&self) -> bool {
        self.keys.is_empty() && self.identities.is_empty()
    }

    /// Accepts everything as unverified, whatever signatures lie beside it (for `baton
    /// sign`, which signs what is not signed yet or signs again what changed, and for
    /// embedders that check elsewhere).
    pub fn accept_unsigned() -> Self {
        Self {
            accept_all: true,
            require: false,
            keys: Vec::new(),
            identities: Vec::new(),
            trusted_root: None,
            trusted: String::new(),
        }
    }
}

/// Why a signature cannot verify when no policy trusts anyone, and what to do.
const NOBODY: &str = "cannot be checked: no policy trusts any key or identity (the built-in \
    policy trusts nobody); trust the signer's public key with `[trust] keys = [\"KEY.pub\"]` \
    in a policy given with --policy or BATON_POLICY, or make a key with `baton keygen` and sign \
    with `baton sign`";

/// Who `policy` trusts, each key with the policy file that named it.
fn trusted(policy: &TrustPolicy) -> String {
    let mut names: Vec<String> = policy
        .keys
        .iter()
        .map(|k| format!("key {} from {}", k.name, k.policy))
        .collect();
    names.extend(
        policy
            .identities
            .iter()
            .map(|i| format!("identity {}", i.subject)),
    );
    names.join(", ")
}

impl TrustCheck for PolicyTrust {
    fn check(
        &self,
        bytes: &[u8],
        digest: &Digest,
        sidecars: &Sidecars,
    ) -> Result<Provenance, TrustError> {
        if self.accept_all {
            return Ok(Provenance::Unverified);
        }
        let base = sidecars.base.display();
        if let Some(sig) = &sidecars.sig {
            let signature = BASE64
                .decode(sig.trim())
                .map_err(|_| refuse(format!("{base}.sig is not a base64 signature")))?;
            let found = self
                .keys
                .iter()
                .find(|(_, key, _)| key.verifies(bytes, &signature));
            let Some((name, key, pem)) = found else {
                if self.trusts_nobody() {
                    return Err(refuse(format!("its signature {base}.sig {NOBODY}")));
                }
                return Err(refuse(format!(
                    "its signature {base}.sig does not verify with any trusted key (trusted: {}); \
                     the component was changed after signing, or someone else signed it",
                    self.trusted
                )));
            };
            return Ok(Provenance::Verified(Verified {
                signer: format!("key {name} ({})", key.fingerprint),
                name: name.clone(),
                key: pem.clone(),
                signature: sig.trim().into(),
                attestation: attestation_digest(sidecars, digest, key, &format!("key {name}"))?,
                trusted_root: String::new(),
            }));
        }
        if let Some(bundle) = &sidecars.bundle {
            let root = self.trusted_root.as_deref();
            for Identity { issuer, subject } in &self.identities {
                let signer = match subject {
                    SubjectMatch::Exact(identity) => Signer::Keyless {
                        identity: identity.clone(),
                        issuer: issuer.clone(),
                    },
                    SubjectMatch::Pattern(pattern) => Signer::KeylessMatching {
                        pattern: pattern.clone(),
                        issuer: issuer.clone(),
                    },
                };
                if let Ok(Some(subject)) = verify_bundle(bytes, bundle, &signer, root) {
                    return Ok(Provenance::Verified(Verified {
                        signer: format!("keyless {subject} ({issuer})"),
                        name: subject.clone(),
                        key: String::new(),
                        signature: bundle.clone(),
                        attestation: String::new(),
                        trusted_root: self.trusted_root.clone().unwrap_or_default(),
                    }));
                }
            }
            for (name, key, pem) in &self.keys {
                let signer = Signer::Key { pem: pem.clone() };
                if verify_bundle(bytes, bundle, &signer, root).is_ok() {
                    return Ok(Provenance::Verified(Verified {
                        signer: format!("key {name} ({})", key.fingerprint),
                        name: name.clone(),
                        key: pem.clone(),
                        signature: bundle.clone(),
                        attestation: String::new(),
                        trusted_root: self.trusted_root.clone().unwrap_or_default(),
                    }));
                }
            }
            if self.trusts_nobody() {
                return Err(refuse(format!(
                    "its Sigstore bundle {base}.sigstore.json {NOBODY}"
                )));
            }
            return Err(refuse(format!(
                "its Sigstore bundle {base}.sigstore.json does not verify for any trusted signer \
                 (trusted: {})",
                self.trusted
            )));
        }
        if self.require {
            return Err(refuse(format!(
                "it is unsigned (no {base}.sig or {base}.sigstore.json) and the policy requires \
                 signatures; sign it with `baton sign`, or see [trust] in docs/policy.md"
            )));
        }
        Ok(Provenance::Unverified)
    }
}

/// `sha256:` of the attestation beside a component signed by `key` (named `signer`), or
/// empty when there is none. A present attestation must be an in-toto statement about exactly
/// the bytes with `digest`, signed by the same key: otherwise the component is refused, as
/// `baton verify` refuses it.
fn attestation_digest(
    sidecars: &Sidecars,
    digest: &Digest,
    key: &PublicKey,
    signer: &str,
) -> Result<String, TrustError> {
    let Some(text) = &sidecars.attestation else {
        return Ok(String::new());
    };
    check_attestation(text, digest, key, signer).map_err(|why| {
        refuse(format!(
            "its attestation {}.intoto.json {why}",
            sidecars.base.display()
        ))
    })?;
    Ok(Digest::of(text.as_bytes()).to_string())
}

/// The in-toto statement in the attestation `text`, which must be a DSSE envelope signed by
/// `key` (named `signer`) about exactly the bytes with `digest`; `Err` says what it is not.
pub fn check_attestation(
    text: &str,
    digest: &Digest,
    key: &PublicKey,
    signer: &str,
) -> Result<serde_json::Value, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|_| "is not a DSSE envelope".to_string())?;
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE {
        return Err("is not an in-toto attestation".into());
    }
    let payload = envelope
        .open(key)
        .ok_or_else(|| format!("is not signed by {signer}"))?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| "holds no in-toto statement".to_string())?;
    let attested = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["digest"]["sha256"].as_str() == Some(digest.hex().as_str()));
    if statement["_type"] != STATEMENT_TYPE || !attested {
        return Err("is about another file".into());
    }
    Ok(statement)
}

/// A replay's trust: the bytes must verify with what the recorded run says signed them (its
/// key and detached signature), or have been unverified when recorded.
pub struct RecordedTrust {
    /// (component digest, recorded provenance).
    pub recorded: Vec<(String, Verified)>,
}

impl TrustCheck for RecordedTrust {
    fn check(&self, bytes: &[u8], digest: &Digest, _: &Sidecars) -> Result<Provenance, TrustError> {
        let digest = digest.to_string();
        let Some((_, verified)) = self.recorded.iter().find(|(d, _)| *d == digest) else {
            return Ok(Provenance::Unverified);
        };
        if verified.key.is_empty() {
            // A keyless bundle carries its own certificate; re-verify it offline.
            let subject_issuer = verified
                .signer
                .strip_prefix("keyless ")
                .and_then(|rest| rest.rsplit_once(" ("))
                .map(|(s, i)| (s.to_string(), i.trim_end_matches(')').to_string()));
            let Some((identity, issuer)) = subject_issuer else {
                return Err(refuse("its recorded signer is malformed"));
            };
            verify_bundle(
                bytes,
                &verified.signature,
                &Signer::Keyless { identity, issuer },
                recorded_root(verified),
            )
            .map_err(|e| refuse(format!("its recorded Sigstore bundle does not verify: {e}")))?;
            return Ok(Provenance::Verified(verified.clone()));
        }
        let key = PublicKey::parse(&verified.key, "the recorded key")
            .map_err(|e| refuse(e.to_string()))?;
        let verifies = BASE64
            .decode(verified.signature.trim())
            .is_ok_and(|sig| key.verifies(bytes, &sig))
            || verify_bundle(
                bytes,
                &verified.signature,
                &Signer::Key {
                    pem: verified.key.clone(),
                },
                recorded_root(verified),
            )
            .is_ok();
        if !verifies {
            return Err(refuse(format!(
                "the signature recorded for it does not verify with the recorded key ({})",
                verified.signer
            )));
        }
        Ok(Provenance::Verified(verified.clone()))
    }
}

/// The trusted root a recorded signature was verified under (`None`: the public-good root).
fn recorded_root(verified: &Verified) -> Option<&str> {
    Some(verified.trusted_root.as_str()).filter(|root| !root.is_empty())
}

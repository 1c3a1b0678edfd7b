//! Signed runs: when a run ends, the host signs an in-toto Statement v1 (in a DSSE envelope)
//! whose subject is the run's root hash, with a SLSA-provenance-shaped predicate naming what
//! the run was: its id, command, components and their signers, policies, times, outcome and
//! event count. The envelope is kept with the run and travels in its bundle.
//!
//! A hash chain alone proves nothing to someone who distrusts the machine: whoever holds a
//! bundle can change an event and recompute every hash. A signature over the root, by a key
//! the forger does not hold, can then no longer match. Everything the predicate says is
//! derived from the record itself ([`RunFacts::of`]), so a verifier derives it again from the
//! bundle and compares it with what was signed.
//!
//! The signer is a key (`[journal] signing_key`); the envelope is the DSSE form Sigstore's
//! bundles carry, so a keyless (Fulcio) signature could replace the key without changing what
//! is signed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use baton_core::Digest;
use baton_journal::event::{Event, EventKind, PolicyRef};
use baton_journal::store::{BlobRow, Recorder, Store};

use crate::checkpoint::Checkpoint;
use baton_policy::journal::{KeyPassword, RunSigning};
use baton_trust::policy::TrustPolicy;
use baton_trust::signing::{Envelope, PublicKey, SigningKey};
use serde_json::{Value, json};

mod background;
mod inclusion;
pub use background::BackgroundSigner;
pub use inclusion::{check_in_checkpoint, check_inclusion};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What kind of "build" a Baton run is, in SLSA's terms.
const BUILD_TYPE: &str = "urn:baton:run:v1";

/// What a run was, as its record says: what the host signs, and what a verifier derives again
/// from a bundle to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub run: String,
    /// The run chain's last hash.
    pub root: String,
    pub command: String,
    pub status: String,
    pub started_at: String,
    /// Events in every chain of the run.
    pub events: u64,
    /// Each component the run loaded, by digest, with who signed it (`unsigned` if nobody).
    pub components: BTreeMap<String, String>,
    pub policies: Vec<PolicyRef>,
}

impl RunFacts {
    /// The facts of run `run` from its events and blobs; `root` is its run chain's last hash.
    pub fn of(run: &str, root: &str, events: &[Event], blobs: &[BlobRow]) -> Self {
        let mut facts = RunFacts {
            run: run.into(),
            root: root.into(),
            command: String::new(),
            status: String::new(),
            started_at: String::new(),
            events: events.len() as u64,
            components: BTreeMap::new(),
            policies: Vec::new(),
        };
        for blob in blobs.iter().filter(|b| b.role == "component") {
            facts
                .components
                .insert(blob.digest.clone(), "unsigned".into());
        }
        for event in events {
            match &event.kind {
                EventKind::RunStarted {
                    command,
                    started_at,
                    policies,
                    ..
                } => {
                    facts.command = command.clone();
                    facts.started_at = started_at.clone();
                    facts.policies = policies.clone();
                }
                EventKind::Verified { digest, signer, .. } => {
                    facts.components.insert(digest.clone(), signer.clone());
                }
                EventKind::RunEnded { status } => facts.status = status.clone(),
                _ => {}
            }
        }
        facts
    }

    /// The in-toto statement over these facts, by the host `builder`, ended at `finished`.
    pub fn statement(&self, builder: &str, finished: &str) -> Value {
        let components: Vec<Value> = self
            .components
            .iter()
            .map(|(digest, signer)| {
                json!({
                    "name": "component",
                    "digest": sha256(digest),
                    "annotations": {"signer": signer},
                })
            })
            .collect();
        let policies: Vec<Value> = self
            .policies
            .iter()
            .map(|p| json!({"name": p.name, "digest": sha256(&p.digest)}))
            .collect();
        json!({
            "_type": STATEMENT_TYPE,
            "subject": [{"name": format!("run:{}", self.run), "digest": {"sha256": self.root}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": {"command": self.command, "policies": policies},
                    "resolvedDependencies": components,
                },
                "runDetails": {
                    "builder": {"id": builder},
                    "metadata": {
                        "invocationId": self.run,
                        "startedOn": self.started_at,
                        "finishedOn": finished,
                    },
                    "byproducts": [{
                        "name": "outcome",
                        "annotations": {"status": self.status, "events": self.events},
                    }],
                },
            },
        })
    }

    /// The facts a signed statement claims.
    pub fn claimed(statement: &Value) -> Result<Self, String> {
        let text = |value: &Value, what: &str| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the statement has no {what}"))
        };
        if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PREDICATE_TYPE {
            return Err("it is not a Baton run statement (in-toto v1, SLSA provenance)".into());
        }
        let subject = &statement["subject"][0];
        let predicate = &statement["predicate"];
        let details = &predicate["runDetails"];
        let outcome = &details["byproducts"][0]["annotations"];
        let run = text(&details["metadata"]["invocationId"], "run id")?;
        if subject["name"] != format!("run:{run}") {
            return Err("its subject names another run".into());
        }
        let digest = |value: &Value, what: &str| {
            text(&value["sha256"], what).map(|hex| format!("sha256:{hex}"))
        };
        let definition = &predicate["buildDefinition"];
        let mut components = BTreeMap::new();
        for c in definition["resolvedDependencies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            components.insert(
                digest(&c["digest"], "component digest")?,
                text(&c["annotations"]["signer"], "component signer")?,
            );
        }
        let mut policies = Vec::new();
        for p in definition["externalParameters"]["policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            policies.push(PolicyRef {
                name: text(&p["name"], "policy name")?,
                digest: digest(&p["digest"], "policy digest")?,
            });
        }
        Ok(RunFacts {
            run,
            root: text(&subject["digest"]["sha256"], "root")?,
            command: text(&definition["externalParameters"]["command"], "command")?,
            status: text(&outcome["status"], "outcome")?,
            started_at: text(&details["metadata"]["startedOn"], "start time")?,
            events: outcome["events"]
                .as_u64()
                .ok_or("the statement has no event count")?,
            components,
            policies,
        })
    }

    /// The first fact in which `self` (what was signed) and `recorded` differ, named.
    fn difference(&self, recorded: &RunFacts) -> Option<String> {
        let pairs = [
            ("run id", &self.run, &recorded.run),
            ("command", &self.command, &recorded.command),
            ("outcome", &self.status, &recorded.status),
            ("start time", &self.started_at, &recorded.started_at),
        ];
        if let Some((what, signed, found)) = pairs.into_iter().find(|(_, a, b)| a != b) {
            return Some(format!(
                "its {what} ('{found}') differs from the signed '{signed}'"
            ));
        }
        if self.events != recorded.events {
            return Some(format!(
                "it holds {} events where the signed run had {}",
                recorded.events, self.events
            ));
        }
        if self.components != recorded.components {
            return Some("its components or their signers differ from the signed ones".into());
        }
        if self.policies != recorded.policies {
            return Some("its policies differ from the signed ones".into());
        }
        None
    }
}

/// `{"sha256": HEX}` of a `sha256:HEX` digest.
fn sha256(digest: &str) -> Value {
    json!({"sha256": digest.strip_prefix("sha256:").unwrap_or(digest)})
}

/// Why a run's proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the run is unsigned: it carries no host signature over its root")]
    Unsigned,
    #[error("its signature is unreadable: {0}")]
    Unreadable(String),
    #[error(
        "its signature does not verify with {keys}: it was not signed by that host, or the statement was changed"
    )]
    BadSignature { keys: String },
    #[error(
        "its root {recorded} differs from the signed root {signed}: the record was rewritten after it was signed"
    )]
    RootDiffers { signed: String, recorded: String },
    #[error("the record differs from what was signed: {0}")]
    Differs(String),
    #[error("its place in the transparency log does not hold: {0}")]
    NotInLog(String),
    #[error("{0}")]
    Inconsistent(String),
}

/// A run's signature, checked: the envelope `envelope` must verify with one of `keys` (by
/// name), and what it signed must be `recorded` (the facts derived from the record). Returns
/// the name of the key that signed it.
pub fn check(
    envelope: Option<&str>,
    keys: &[(String, PublicKey)],
    recorded: &RunFacts,
) -> Result<String, ProofError> {
    let envelope = envelope.ok_or(ProofError::Unsigned)?;
    let envelope: Envelope =
        serde_json::from_str(envelope).map_err(|e| ProofError::Unreadable(e.to_string()))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(ProofError::Unreadable(format!(
            "payload type '{}', not {PAYLOAD_TYPE}",
            envelope.payload_type
        )));
    }
    let (name, payload) = keys
        .iter()
        .find_map(|(name, key)| envelope.open(key).map(|payload| (name, payload)))
        .ok_or_else(|| ProofError::BadSignature {
            keys: keys
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|e| ProofError::Unreadable(e.to_string()))?;
    let signed = RunFacts::claimed(&statement).map_err(ProofError::Unreadable)?;
    if signed.root != recorded.root {
        return Err(ProofError::RootDiffers {
            signed: signed.root,
            recorded: recorded.root.clone(),
        });
    }
    if let Some(difference) = signed.difference(recorded) {
        return Err(ProofError::Differs(difference));
    }
    Ok(name.clone())
}

/// The host keys `trust` accepts signed runs from (`[trust] host_keys`), parsed.
pub fn trusted_hosts(trust: &TrustPolicy) -> Result<Vec<(String, PublicKey)>, String> {
    if trust.host_keys.is_empty() {
        return Err(
            "[trust] require_signed_runs is set but host_keys names no host's public key; add \
             the key from `baton keygen --host` (host.pub)"
                .into(),
        );
    }
    trust
        .host_keys
        .iter()
        .map(|key| {
            PublicKey::parse(&key.pem, &key.path.display().to_string())
                .map(|parsed| (key.name.clone(), parsed))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Every blob's bytes against its digest: the first that differs, named.
pub fn check_blobs(blobs: &[BlobRow]) -> Result<(), String> {
    match blobs
        .iter()
        .find(|b| Digest::of(&b.bytes).to_string() != b.digest)
    {
        Some(blob) => Err(format!(
            "its {} blob {} does not hash to its digest (its bytes were changed)",
            blob.role, blob.digest
        )),
        None => Ok(()),
    }
}

/// The host's key, signing the runs it records.
pub struct RunSigner {
    key: SigningKey,
    /// Its public half (PEM), which names the log it checkpoints.
    public: String,
    /// How statements name the host: its public key's digest.
    builder: String,
    store: Arc<dyn Store>,
}

impl RunSigner {
    /// Opens the key `signing` names (reading its password where it says) to sign the runs
    /// kept in `store`.
    pub fn open(signing: &RunSigning, store: Arc<dyn Store>) -> Result<Self, String> {
        let named = |e: &dyn std::fmt::Display| {
            format!(
                "the host key {} (set in {}): {e}",
                signing.key.display(),
                signing.policy
            )
        };
        let text = std::fs::read_to_string(&signing.key).map_err(|e| named(&e))?;
        let password = password(&signing.password).map_err(|e| named(&e))?;
        let key = SigningKey::open(
            &text,
            &signing.key.display().to_string(),
            password.as_bytes(),
        )
        .map_err(|e| named(&e))?;
        let public = key.public_pem().map_err(|e| named(&e))?;
        Ok(Self {
            key,
            builder: host_id(&public),
            public,
            store,
        })
    }

    /// Signs the statement over the ended run `run`, read back from the store, and keeps it
    /// with the run.
    pub fn sign(&self, recorder: &Recorder, run: &str) -> Result<(), String> {
        recorder.flush().map_err(|e| e.to_string())?;
        let summary = self
            .store
            .find_run(run)
            .map_err(|e| e.to_string())?
            .ok_or("it is not in the store")?;
        if summary.status == "running" {
            return Err("it has not ended".into());
        }
        let events = self.store.events(run).map_err(|e| e.to_string())?;
        let blobs = self.store.all_blobs(run).map_err(|e| e.to_string())?;
        let root = summary.root.unwrap_or_default();
        let facts = RunFacts::of(run, &root, &events, &blobs);
        let finished = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let statement = facts.statement(&self.builder, &finished);
        let payload = serde_json::to_vec(&statement).expect("a statement serializes");
        let envelope =
            Envelope::sign(PAYLOAD_TYPE, &payload, &self.key).map_err(|e| e.to_string())?;
        recorder.attest(
            run,
            &serde_json::to_string(&envelope).expect("envelopes serialize"),
        );
        // The envelope is now a leaf of the store's log: checkpoint the log as it stands.
        recorder.flush().map_err(|e| e.to_string())?;
        let (size, root) = self.store.log().log_head().map_err(|e| e.to_string())?;
        let note = Checkpoint::of(&self.public, size, root)?.sign(&self.key, &self.public)?;
        recorder.checkpoint(size, &note);
        Ok(())
    }
}

/// How a statement names the host whose key signed it.
pub fn host_id(public_pem: &str) -> String {
    format!(
        "urn:baton:host:{}",
        Digest::of(public_pem.trim().as_bytes())
    )
}

fn password(source: &KeyPassword) -> Result<String, String> {
    match source {
        KeyPassword::Env(name) => std::env::var(name).map_err(|_| {
            format!("its password is read from ${name}, which is not set; set it, or name a password_file in [journal]")
        }),
        KeyPassword::File(path) => read_first_line(path),
    }
}

fn read_first_line(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().next().unwrap_or_default().to_owned())
        .map_err(|e| format!("cannot read its password file {}: {e}", path.display()))
}

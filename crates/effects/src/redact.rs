//! Secrets kept out of the journal: every event a live chain records passes through a
//! `Redactor` before it is hashed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use baton_journal::event::{EventKind, FsAnswer, HttpOutcome};

use crate::http;

/// Keeps secrets out of the journal: every event passes through it before it is hashed.
pub trait Redactor: Send + Sync {
    fn redact(&self, event: &mut EventKind);

    /// The (name, value) of each secret it keeps out.
    fn secrets(&self) -> &[(String, String)] {
        &[]
    }
}

/// Replaces every secret value, wherever it appears in an event (HTTP bodies included), with
/// `[secret:NAME]`, the value a replay gives the guest in its place, so that live and
/// replayed events are identical and no journal holds a secret.
#[derive(Debug, Default)]
pub struct SecretRedactor {
    /// (name, value), longest value first so that no secret is replaced inside another.
    secrets: Vec<(String, String)>,
}

impl SecretRedactor {
    pub fn new(secrets: &[(String, String)]) -> Self {
        let mut secrets: Vec<(String, String)> = secrets
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .cloned()
            .collect();
        secrets.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Self { secrets }
    }

    pub fn placeholder(name: &str) -> String {
        format!("[secret:{name}]")
    }

    fn scrub(&self, text: &str) -> Option<String> {
        let mut out = None::<String>;
        for (name, value) in &self.secrets {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(value.as_str()) {
                out = Some(current.replace(value.as_str(), &Self::placeholder(name)));
            }
        }
        out
    }

    fn scrub_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Some(clean) = self.scrub(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.scrub_json(v)),
            _ => {}
        }
    }

    /// Scrubs a base64 body, returning the new body and digest if it held a secret.
    fn scrub_body(&self, body: &str) -> Option<(String, String)> {
        let bytes = http::decode_body(body);
        let clean = self.scrub(&String::from_utf8_lossy(&bytes))?;
        let (digest, encoded) = http::encode_body(clean.as_bytes());
        Some((encoded, digest))
    }
}

impl Redactor for SecretRedactor {
    fn secrets(&self) -> &[(String, String)] {
        &self.secrets
    }

    fn redact(&self, event: &mut EventKind) {
        if self.secrets.is_empty() {
            return;
        }
        if let EventKind::Http { request, outcome } = event {
            if let Some((body, digest)) = self.scrub_body(&request.body) {
                (request.body, request.body_digest) = (body, digest);
            }
            if let HttpOutcome::Response {
                body, body_digest, ..
            } = outcome
                && let Some((clean, digest)) = self.scrub_body(body)
            {
                (*body, *body_digest) = (clean, digest);
            }
        }
        if let EventKind::Fs {
            answer: FsAnswer::Bytes { data, .. },
            ..
        } = event
            && let Some((clean, _)) = self.scrub_body(data)
        {
            *data = clean;
        }
        let mut json = serde_json::to_value(&*event).expect("events serialize");
        self.scrub_json(&mut json);
        if let Ok(clean) = serde_json::from_value(json) {
            *event = clean;
        }
    }
}

/// Every secret of a run, for every chain of it: a secret granted to one plugin can reach
/// another's events (a callee's returned to its caller, a step's output in a later step's
/// input), so each chain keeps out the secrets of every plugin the run has granted any to so
/// far.
#[derive(Debug, Default)]
pub struct RunRedactor {
    /// Whether any secret is known yet (events are then passed through untouched, unlocked).
    any: AtomicBool,
    current: RwLock<Arc<SecretRedactor>>,
}

impl RunRedactor {
    /// Adds the secrets `redactor` keeps out (one plugin's) to the run's.
    pub fn include(&self, redactor: &dyn Redactor) {
        let added = redactor.secrets();
        if added.is_empty() {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let known = current.secrets();
        if added.iter().all(|s| known.contains(s)) {
            return;
        }
        let mut all = known.to_vec();
        all.extend(added.iter().filter(|s| !known.contains(s)).cloned());
        *current = Arc::new(SecretRedactor::new(&all));
        self.any.store(true, Ordering::Release);
    }
}

impl Redactor for RunRedactor {
    fn secrets(&self) -> &[(String, String)] {
        // The set changes as the run goes on; callers include it whole through `include`.
        &[]
    }

    fn redact(&self, event: &mut EventKind) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        current.redact(event);
    }
}

/// The redactor used while no policy defines secrets: changes nothing.
#[derive(Debug, Default)]
pub struct NoSecrets;

impl Redactor for NoSecrets {
    fn redact(&self, _: &mut EventKind) {}
}

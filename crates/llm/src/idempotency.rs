//! Idempotency keys, with Stripe's semantics: the first call with a key that reaches the
//! provider stores its outcome (an error too); a repeat with the same parameters gets the
//! stored outcome without a request; the same key with different parameters is an error; a
//! repeat while the first is still running is refused. Keys are scoped by caller (the plugin's
//! name, or `cli`) and kept 24 hours, in `llm-idempotency.db` beside the journal.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{OptionalExtension, params};

use baton_journal::event::LlmOutcome;

const KEEP_SECONDS: i64 = 24 * 60 * 60;

/// The store is opened when a key is first used, so calls without keys never touch it.
pub struct Idempotency {
    db: crate::Store,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

/// What a key has seen before.
#[derive(Debug)]
pub enum Prior {
    /// Nothing: this call owns the key until the claim is settled or dropped.
    Fresh(Claim),
    Stored(LlmOutcome),
    /// Used before with other parameters.
    Mismatch,
    /// A call with this key is still running.
    InFlight,
}

/// The right to store a key's outcome; dropping it unsettled frees the key again.
#[derive(Debug)]
pub struct Claim {
    scope: String,
    key: String,
    fingerprint: String,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.scope.clone(), self.key.clone()));
    }
}

impl Idempotency {
    /// The store at `path` (created on first use), or one in memory.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            db: crate::Store::new(path, SCHEMA),
            in_flight: Arc::default(),
        }
    }

    /// Looks `key` up for `scope`; `fingerprint` identifies the call's parameters.
    pub fn begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<Prior, String> {
        let db = self.db.lock()?;
        let stored: Option<(String, String)> = db
            .query_row(
                "SELECT fingerprint, outcome FROM idempotency
                 WHERE scope = ?1 AND key = ?2 AND created > ?3",
                params![scope, key, now() - KEEP_SECONDS],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        drop(db);
        if let Some((stored_fingerprint, outcome)) = stored {
            if stored_fingerprint != fingerprint {
                return Ok(Prior::Mismatch);
            }
            let outcome = serde_json::from_str(&outcome)
                .map_err(|e| format!("the stored outcome is unreadable: {e}"))?;
            return Ok(Prior::Stored(outcome));
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !in_flight.insert((scope.to_string(), key.to_string())) {
            return Ok(Prior::InFlight);
        }
        Ok(Prior::Fresh(Claim {
            scope: scope.into(),
            key: key.into(),
            fingerprint: fingerprint.into(),
            in_flight: self.in_flight.clone(),
        }))
    }

    /// Stores the outcome of a claimed key.
    pub fn store(&self, claim: Claim, outcome: &LlmOutcome) -> Result<(), String> {
        let text = serde_json::to_string(outcome).expect("outcomes serialize");
        let db = self.db.lock()?;
        db.execute(
            "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, outcome, created)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![claim.scope, claim.key, claim.fingerprint, text, now()],
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The store's tables.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS idempotency (
                    scope TEXT NOT NULL,
                    key TEXT NOT NULL,
                    fingerprint TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    created INTEGER NOT NULL,
                    PRIMARY KEY (scope, key)
                )";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> LlmOutcome {
        LlmOutcome::Failed {
            kind: "unavailable".into(),
            message: "HTTP 500".into(),
        }
    }

    #[test]
    fn a_stored_outcome_survives_reopening_and_binds_its_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        let store = Idempotency::new(Some(&path));
        let Prior::Fresh(claim) = store.begin("cli", "k", "f1").unwrap() else {
            panic!("a new key is fresh");
        };
        assert!(matches!(store.begin("cli", "k", "f1"), Ok(Prior::InFlight)));
        store.store(claim, &failed()).unwrap();
        drop(store);

        let store = Idempotency::new(Some(&path));
        match store.begin("cli", "k", "f1").unwrap() {
            Prior::Stored(outcome) => assert_eq!(outcome, failed()),
            other => panic!("expected the stored error, got {other:?}"),
        }
        assert!(matches!(store.begin("cli", "k", "f2"), Ok(Prior::Mismatch)));
        // Another caller's key of the same name is its own.
        assert!(matches!(
            store.begin("calc", "k", "f2"),
            Ok(Prior::Fresh(_))
        ));
    }

    #[test]
    fn a_dropped_claim_frees_the_key() {
        let store = Idempotency::new(None);
        let claim = store.begin("cli", "k", "f").unwrap();
        drop(claim);
        assert!(matches!(store.begin("cli", "k", "f"), Ok(Prior::Fresh(_))));
    }
}

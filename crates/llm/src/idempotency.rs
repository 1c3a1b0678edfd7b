//! Idempotency keys, with Stripe's semantics: the first call with a key that reaches the
//! provider stores its outcome (an error too); a repeat with the same parameters gets the
//! stored outcome without a request; the same key with different parameters is an error; a
//! repeat while the first is still running is refused. Keys are scoped by caller (the plugin's
//! name, or `cli`) and kept 24 hours: in `llm-idempotency.db` beside a SQLite journal, or in
//! the PostgreSQL store, where a call running on one host holds its key against every other.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_postgres::Database;
use rusqlite::{OptionalExtension, params};

use baton_journal::event::LlmOutcome;

const KEEP_SECONDS: i64 = 24 * 60 * 60;

/// How long a key claimed in PostgreSQL by a call that never ended (its host died) stays
/// claimed.
const CLAIM_SECONDS: i64 = 10 * 60;

/// The store is opened when a key is first used, so calls without keys never touch it.
pub struct Idempotency {
    backend: Backend,
}

enum Backend {
    /// Claims are this process's own.
    Sqlite {
        db: crate::Store,
        in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    },
    /// Claims are rows, seen by every host.
    Postgres(Database),
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
    held: Held,
}

enum Held {
    InProcess(Arc<Mutex<HashSet<(String, String)>>>),
    /// Released by deleting the claimed row; `None` once the outcome is stored.
    Row(Option<Database>),
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InProcess(_) => "in process",
            Self::Row(_) => "row",
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        match &mut self.held {
            Held::InProcess(in_flight) => {
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(self.scope.clone(), self.key.clone()));
            }
            Held::Row(db) => {
                let Some(db) = db.take() else { return };
                let (scope, key) = (self.scope.clone(), self.key.clone());
                let released = db.query(move |client| async move {
                    client
                        .execute(
                            "DELETE FROM idempotency
                             WHERE scope = $1 AND key = $2 AND outcome IS NULL",
                            &[&scope, &key],
                        )
                        .await
                });
                if let Err(e) = released {
                    tracing::warn!("cannot release idempotency key {}: {e}", self.key);
                }
            }
        }
    }
}

impl Idempotency {
    /// The store at `path` (created on first use), or one in memory.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            backend: Backend::Sqlite {
                db: crate::Store::new(path, SCHEMA),
                in_flight: Arc::default(),
            },
        }
    }

    /// The keys in the PostgreSQL database `db`.
    pub fn in_postgres(db: Database) -> Self {
        Self {
            backend: Backend::Postgres(db),
        }
    }

    /// Looks `key` up for `scope`; `fingerprint` identifies the call's parameters.
    pub fn begin(&self, scope: &str, key: &str, fingerprint: &str) -> Result<Prior, String> {
        match &self.backend {
            Backend::Sqlite { db, in_flight } => {
                begin_sqlite(db, in_flight, (scope, key), fingerprint)
            }
            Backend::Postgres(db) => begin_postgres(db, (scope, key), fingerprint),
        }
    }

    /// Stores the outcome of a claimed key.
    pub fn store(&self, mut claim: Claim, outcome: &LlmOutcome) -> Result<(), String> {
        let text = serde_json::to_string(outcome).expect("outcomes serialize");
        match &self.backend {
            Backend::Sqlite { db, .. } => {
                db.lock()?
                    .execute(
                        "INSERT OR REPLACE INTO idempotency
                         (scope, key, fingerprint, outcome, created)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![claim.scope, claim.key, claim.fingerprint, text, now()],
                    )
                    .map_err(|e| e.to_string())?;
            }
            Backend::Postgres(db) => {
                // Stored, the row is no longer the claim's to release.
                claim.held = Held::Row(None);
                let (scope, key, fingerprint) = (
                    claim.scope.clone(),
                    claim.key.clone(),
                    claim.fingerprint.clone(),
                );
                db.query(move |client| async move {
                    client
                        .execute(
                            "INSERT INTO idempotency (scope, key, fingerprint, outcome, created)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = $3,
                                 outcome = $4, created = $5",
                            &[&scope, &key, &fingerprint, &text, &now()],
                        )
                        .await
                })?;
            }
        }
        Ok(())
    }
}

/// What a stored row says of a call with `fingerprint`.
fn prior(stored_fingerprint: &str, outcome: &str, fingerprint: &str) -> Result<Prior, String> {
    if stored_fingerprint != fingerprint {
        return Ok(Prior::Mismatch);
    }
    let outcome = serde_json::from_str(outcome)
        .map_err(|e| format!("the stored outcome is unreadable: {e}"))?;
    Ok(Prior::Stored(outcome))
}

fn begin_sqlite(
    db: &crate::Store,
    in_flight: &Arc<Mutex<HashSet<(String, String)>>>,
    (scope, key): (&str, &str),
    fingerprint: &str,
) -> Result<Prior, String> {
    let stored: Option<(String, String)> = db
        .lock()?
        .query_row(
            "SELECT fingerprint, outcome FROM idempotency
             WHERE scope = ?1 AND key = ?2 AND created > ?3",
            params![scope, key, now() - KEEP_SECONDS],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if let Some((stored_fingerprint, outcome)) = stored {
        return prior(&stored_fingerprint, &outcome, fingerprint);
    }
    let mut claimed = in_flight.lock().unwrap_or_else(|e| e.into_inner());
    if !claimed.insert((scope.to_string(), key.to_string())) {
        return Ok(Prior::InFlight);
    }
    Ok(Prior::Fresh(Claim {
        scope: scope.into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        held: Held::InProcess(in_flight.clone()),
    }))
}

/// Claims the key's row (new, or expired, or a claim whose host never ended it), or reads
/// what it holds. A claim released between the two statements is tried again.
fn begin_postgres(
    db: &Database,
    (scope, key): (&str, &str),
    fingerprint: &str,
) -> Result<Prior, String> {
    for _ in 0..3 {
        let (row_scope, row_key, asked) =
            (scope.to_owned(), key.to_owned(), fingerprint.to_owned());
        let now = now();
        let looked = db.query(move |client| async move {
            let claimed = client
                .query_opt(
                    "INSERT INTO idempotency (scope, key, fingerprint, outcome, created)
                     VALUES ($1, $2, $3, NULL, $4)
                     ON CONFLICT (scope, key) DO UPDATE
                     SET fingerprint = $3, outcome = NULL, created = $4
                     WHERE (idempotency.outcome IS NOT NULL AND idempotency.created <= $5)
                        OR (idempotency.outcome IS NULL AND idempotency.created <= $6)
                     RETURNING 1",
                    &[
                        &row_scope,
                        &row_key,
                        &asked,
                        &now,
                        &(now - KEEP_SECONDS),
                        &(now - CLAIM_SECONDS),
                    ],
                )
                .await?;
            if claimed.is_some() {
                return Ok(None);
            }
            let row = client
                .query_opt(
                    "SELECT fingerprint, outcome FROM idempotency WHERE scope = $1 AND key = $2",
                    &[&row_scope, &row_key],
                )
                .await?;
            Ok(Some(row.map(|row| {
                (row.get::<_, String>(0), row.get::<_, Option<String>>(1))
            })))
        })?;
        match looked {
            None => {
                return Ok(Prior::Fresh(Claim {
                    scope: scope.into(),
                    key: key.into(),
                    fingerprint: fingerprint.into(),
                    held: Held::Row(Some(db.clone())),
                }));
            }
            Some(Some((_, None))) => return Ok(Prior::InFlight),
            Some(Some((stored_fingerprint, Some(outcome)))) => {
                return prior(&stored_fingerprint, &outcome, fingerprint);
            }
            Some(None) => continue,
        }
    }
    Ok(Prior::InFlight)
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

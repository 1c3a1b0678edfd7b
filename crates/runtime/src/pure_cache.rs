//! The cache of pure calls. A tool whose policy lets it reach nothing outside its sandbox (no
//! network, files, environment, secrets, models or other tools) and whose call read no clock
//! and no randomness computed its result from its component and its input alone; the same
//! call again is served from here, journaled as a `cache_hit` followed by the events the first
//! call recorded, and a replay runs the component again and checks them.
//!
//! Entries live where the LLM layer keeps its stores: `pure-calls.db` beside a SQLite journal,
//! the PostgreSQL store (shared by its hosts), or memory.

use std::sync::Arc;

use baton_journal::event::EventKind;
use baton_llm::{Store, Stores};
use baton_postgres::Database;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest as _, Sha256};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS pure_calls (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL,
    events TEXT NOT NULL,
    created INTEGER NOT NULL
);";

/// Where pure calls' events are kept.
pub struct PureCache {
    backend: Backend,
}

enum Backend {
    Sqlite(Store),
    Postgres(Database),
}

/// A pure call as it was recorded: the run that made it and its events after its signature
/// check (the random seed its instance was given, its logs, `invocation_ended`).
#[derive(Debug, Clone, PartialEq)]
pub struct PureCall {
    pub run: String,
    pub events: Vec<EventKind>,
}

impl PureCall {
    /// Its `invocation_ended` (the last event).
    pub fn ended(&self) -> Option<&EventKind> {
        self.events
            .last()
            .filter(|e| matches!(e, EventKind::InvocationEnded { .. }))
    }
}

impl PureCache {
    /// The cache kept in `stores`.
    pub fn new(stores: &Stores) -> Arc<Self> {
        let backend = match stores {
            Stores::Memory => Backend::Sqlite(Store::new(None, SCHEMA)),
            Stores::Beside(journal) => Backend::Sqlite(Store::new(
                Some(&journal.with_file_name("pure-calls.db")),
                SCHEMA,
            )),
            Stores::Postgres { db, .. } => Backend::Postgres(db.clone()),
        };
        Arc::new(Self { backend })
    }

    /// The key of a call of the component `digest` with `input` (JSON text, as given).
    pub fn key(digest: &str, input: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(b"baton pure call v1\0");
        hash.update(digest.as_bytes());
        hash.update(b"\0");
        hash.update(input.as_bytes());
        hex::encode(hash.finalize())
    }

    /// The call kept under `key`, if any. A store that cannot be read is a miss (and a
    /// warning): the call then runs.
    pub fn get(&self, key: &str) -> Option<PureCall> {
        let found = match &self.backend {
            Backend::Sqlite(store) => store.lock().and_then(|db| {
                db.prepare_cached("SELECT run, events FROM pure_calls WHERE key = ?1")
                    .and_then(|mut s| {
                        s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(|e| e.to_string())
            }),
            Backend::Postgres(db) => {
                let key = key.to_owned();
                db.query(move |client| async move {
                    let row = client
                        .query_opt("SELECT run, events FROM pure_calls WHERE key = $1", &[&key])
                        .await?;
                    Ok(row.map(|r| (r.get(0), r.get(1))))
                })
            }
        };
        let (run, events): (String, String) = match found {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!("the cache of pure calls cannot be read: {e}");
                return None;
            }
        };
        match serde_json::from_str(&events) {
            Ok(events) => Some(PureCall { run, events }),
            Err(e) => {
                tracing::warn!("the cache of pure calls holds an entry that is not events: {e}");
                None
            }
        }
    }

    /// Removes the entries kept before `before` (seconds since the Unix epoch; its own second
    /// too, since entries are kept to the second), as `baton
    /// trace prune` removes the runs that made them; returns how many.
    pub fn prune(&self, before: i64) -> Result<usize, String> {
        match &self.backend {
            // A cache file never made holds nothing (and is not made now).
            Backend::Sqlite(store) if !store.exists() => Ok(0),
            Backend::Sqlite(store) => store.lock().and_then(|db| {
                db.execute("DELETE FROM pure_calls WHERE created <= ?1", [before])
                    .map_err(|e| e.to_string())
            }),
            Backend::Postgres(db) => db
                .query(move |client| async move {
                    client
                        .execute("DELETE FROM pure_calls WHERE created <= $1", &[&before])
                        .await
                })
                .map(|n| n as usize)
                .map_err(|e| e.to_string()),
        }
    }

    /// Keeps `call` under `key` (the first call kept under a key stays).
    pub fn put(&self, key: &str, call: &PureCall) {
        let events = serde_json::to_string(&call.events).expect("events serialize");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let kept = match &self.backend {
            Backend::Sqlite(store) => store.lock().and_then(|db| {
                db.prepare_cached(
                    "INSERT OR IGNORE INTO pure_calls (key, run, events, created)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![key, call.run, events, now]))
                .map(drop)
                .map_err(|e| e.to_string())
            }),
            Backend::Postgres(db) => {
                let (key, run) = (key.to_owned(), call.run.clone());
                db.query(move |client| async move {
                    client
                        .execute(
                            "INSERT INTO pure_calls (key, run, events, created)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                            &[&key, &run, &events, &now],
                        )
                        .await
                        .map(drop)
                })
            }
        };
        if let Err(e) = kept {
            tracing::warn!("the cache of pure calls cannot keep a result: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_journal::event::InvocationOutcome;

    fn call(output: &str) -> PureCall {
        PureCall {
            run: "01run".into(),
            events: vec![
                EventKind::RandomSeed { value: "7".into() },
                EventKind::InvocationEnded {
                    duration_us: 10,
                    fuel: 99,
                    outcome: InvocationOutcome::Returned {
                        output: output.into(),
                    },
                    peak_memory: 65536,
                },
            ],
        }
    }

    #[test]
    fn a_kept_call_is_found_by_its_key_and_the_first_stays() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        let cache = PureCache::new(&Stores::Beside(journal.clone()));
        let key = PureCache::key("sha256:aa", r#"{"x":1}"#);
        assert_eq!(cache.get(&key), None);
        cache.put(&key, &call("1"));
        cache.put(&key, &call("2"));
        // Another host process opening the same store finds it.
        let reopened = PureCache::new(&Stores::Beside(journal));
        assert_eq!(reopened.get(&key), Some(call("1")));
        assert!(dir.path().join("pure-calls.db").exists());
    }

    #[test]
    fn the_key_is_the_component_and_the_exact_input() {
        let key = PureCache::key("sha256:aa", r#"{"x":1}"#);
        assert_ne!(key, PureCache::key("sha256:ab", r#"{"x":1}"#));
        assert_ne!(key, PureCache::key("sha256:aa", r#"{"x": 1}"#));
        // The separator keeps digest and input apart.
        assert_ne!(
            PureCache::key("sha256:a", "a{}"),
            PureCache::key("sha256:aa", "{}")
        );
    }
}

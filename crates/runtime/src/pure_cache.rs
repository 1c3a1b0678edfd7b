//! The cache of pure calls. A tool whose policy lets it reach nothing outside its sandbox (no
//! network, files, environment, secrets, models or other tools) and whose call read no clock
//! and no randomness computed its result from its component and its input alone; the same
//! call again is served from here, journaled as a `cache_hit` followed by the events the first
//! call recorded, and a replay runs the component again and checks them.
//!
//! Entries live where the LLM layer keeps its stores: `pure-calls.db` beside a SQLite journal,
//! the PostgreSQL store (shared by its hosts), or memory. A call kept is queued to a thread of
//! the cache's own ([`writer`]), so the call that made it never waits for a store; until it is
//! committed it is answered from the queue.

mod writer;

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

/// Where pure calls' events are kept. Dropping it waits for the calls queued to be kept.
pub struct PureCache {
    backend: Arc<Backend>,
    /// Calls queued to be kept and not yet committed, by key.
    queued: writer::Queued,
    writer: writer::Writer,
}

// One per cache, so its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    /// Read through `reads`; written through `writes`, a connection of its own to the same
    /// file, so that a lookup never waits for the writer's commit (in memory, where another
    /// connection would be another database, `reads` too).
    Sqlite {
        reads: Store,
        writes: Option<Store>,
    },
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
            Stores::Memory => Backend::Sqlite {
                reads: Store::new(None, SCHEMA),
                writes: None,
            },
            Stores::Beside(journal) => {
                let path = journal.with_file_name("pure-calls.db");
                Backend::Sqlite {
                    reads: Store::new(Some(&path), SCHEMA),
                    writes: Some(Store::new(Some(&path), SCHEMA)),
                }
            }
            Stores::Postgres { db, .. } => Backend::Postgres(db.clone()),
        };
        let backend = Arc::new(backend);
        let queued = writer::Queued::default();
        let writer = writer::Writer::start(backend.clone(), queued.clone());
        Arc::new(Self {
            backend,
            queued,
            writer,
        })
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
        if let Some(call) = self.queued.get(key) {
            return Some(call);
        }
        let found = match &*self.backend {
            Backend::Sqlite { reads, .. } => reads.lock().and_then(|db| {
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
        match &*self.backend {
            // A cache file never made holds nothing (and is not made now).
            Backend::Sqlite { reads, .. } if !reads.exists() => Ok(0),
            Backend::Sqlite { reads, .. } => reads.lock().and_then(|db| {
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

    /// Keeps `call` under `key` (the first call kept under a key stays): queued at once,
    /// committed by the cache's writer. A store that cannot keep it logs a warning; the call
    /// then runs again next time.
    pub fn put(&self, key: &str, call: PureCall) {
        if self.writer.running() && self.queued.insert(key, call) {
            self.writer.wake(key);
        }
    }
}

impl Backend {
    /// Keeps `calls` (key and call) in one transaction, each unless its key is kept already.
    fn keep(&self, calls: &[(String, PureCall)]) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let events =
            |call: &PureCall| serde_json::to_string(&call.events).expect("events serialize");
        match self {
            Backend::Sqlite { reads, writes } => {
                let mut db = writes.as_ref().unwrap_or(reads).lock()?;
                let tx = db.transaction().map_err(|e| e.to_string())?;
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO pure_calls (key, run, events, created)
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(|e| e.to_string())?;
                    for (key, call) in calls {
                        insert
                            .execute(params![key, call.run, events(call), now])
                            .map_err(|e| e.to_string())?;
                    }
                }
                tx.commit().map_err(|e| e.to_string())
            }
            Backend::Postgres(db) => {
                // One statement, so one transaction: the batch as arrays, unnested.
                let keys: Vec<String> = calls.iter().map(|(key, _)| key.clone()).collect();
                let runs: Vec<String> = calls.iter().map(|(_, call)| call.run.clone()).collect();
                let events: Vec<String> = calls.iter().map(|(_, call)| events(call)).collect();
                let created = vec![now; calls.len()];
                db.query(move |client| async move {
                    client
                        .execute(
                            "INSERT INTO pure_calls (key, run, events, created)
                             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
                             ON CONFLICT (key) DO NOTHING",
                            &[&keys, &runs, &events, &created],
                        )
                        .await
                        .map(drop)
                })
            }
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
        cache.put(&key, call("1"));
        cache.put(&key, call("2"));
        // Found at once, whether the writer has committed it yet or not.
        assert_eq!(cache.get(&key), Some(call("1")));
        // Dropped, the cache has committed what it queued: another host process opening the
        // same store finds it, and keeps the first call kept under a key.
        drop(cache);
        let reopened = PureCache::new(&Stores::Beside(journal.clone()));
        assert_eq!(reopened.get(&key), Some(call("1")));
        reopened.put(&key, call("3"));
        drop(reopened);
        let again = PureCache::new(&Stores::Beside(journal));
        assert_eq!(again.get(&key), Some(call("1")));
        assert!(dir.path().join("pure-calls.db").exists());
    }

    #[test]
    fn calls_kept_from_many_threads_are_all_committed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.db");
        let cache = PureCache::new(&Stores::Beside(journal.clone()));
        let keys: Vec<Vec<String>> = (0..4)
            .map(|t| {
                (0..250)
                    .map(|i| PureCache::key("sha256:aa", &format!("{t}-{i}")))
                    .collect()
            })
            .collect();
        std::thread::scope(|scope| {
            for keys in &keys {
                let cache = &cache;
                scope.spawn(move || {
                    for (i, key) in keys.iter().enumerate() {
                        cache.put(key, call(&i.to_string()));
                    }
                });
            }
        });
        drop(cache);
        let reopened = PureCache::new(&Stores::Beside(journal));
        for keys in &keys {
            for (i, key) in keys.iter().enumerate() {
                assert_eq!(reopened.get(key), Some(call(&i.to_string())), "{key}");
            }
        }
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

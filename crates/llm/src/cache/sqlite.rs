//! The cache's tables in SQLite (`llm-cache.db` beside the journal, or in memory).

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::index::{Namespace, Trim};
use super::tables::{Candidate, NewEntry, Rows, Tables};
use super::{Entry, Stats};

pub(crate) struct Sqlite {
    db: crate::Store,
}

impl Sqlite {
    pub(crate) fn new(path: Option<&Path>) -> Self {
        Self {
            db: crate::Store::new(path, SCHEMA),
        }
    }
}

fn failed(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Tables for Sqlite {
    fn exact(&self, key: &str, oldest: i64, now: i64) -> Result<Option<(i64, Vec<u8>)>, String> {
        let db = self.db.lock()?;
        // The lookup's writes (counters, the entry's use) are committed together: one commit
        // on the request's path rather than three.
        let db = db.unchecked_transaction().map_err(failed)?;
        count(&db, "lookups")?;
        let found: Option<(i64, Vec<u8>)> = db
            .prepare_cached("SELECT id, response FROM entries WHERE key = ?1 AND created > ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![key, oldest], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(failed)?;
        if let Some((id, _)) = &found {
            touch(&db, *id, now, "exact_hits")?;
        }
        db.commit().map_err(failed)?;
        Ok(found)
    }

    fn read(&self, read: &mut dyn FnMut(&dyn Rows) -> Result<(), String>) -> Result<(), String> {
        let mut db = self.db.lock()?;
        let snapshot = db.transaction().map_err(failed)?;
        read(&SqliteRows(&snapshot))?;
        snapshot.finish().map_err(failed)
    }

    fn hit(&self, id: i64, now: i64) -> Result<Vec<u8>, String> {
        let db = self.db.lock()?;
        let response = db
            .query_row("SELECT response FROM entries WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .map_err(failed)?;
        touch(&db, id, now, "semantic_hits")?;
        Ok(response)
    }

    fn trim(&self, trim: &Trim) -> Result<(), String> {
        apply_trim(&*self.db.lock()?, trim)
    }

    fn store(
        &self,
        entry: NewEntry<'_>,
        max_entries: u64,
        index_above: u64,
    ) -> Result<Namespace, String> {
        let mut db = self.db.lock()?;
        let write = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        // A delete and an insert rather than `INSERT OR REPLACE`, whose implicit delete would
        // not reach the triggers that log changes for the vector index.
        write
            .execute("DELETE FROM entries WHERE key = ?1", [entry.key])
            .and_then(|_| {
                write.execute(
                    "INSERT INTO entries (key, namespace, query, vector, response, created, used)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![
                        entry.key,
                        entry.namespace,
                        entry.query,
                        entry.vector,
                        entry.response,
                        entry.now
                    ],
                )
            })
            .map_err(failed)?;
        let total: i64 = write
            .query_row(
                "SELECT coalesce(sum(entries), 0) FROM namespaces",
                [],
                |r| r.get(0),
            )
            .map_err(failed)?;
        let excess = total.saturating_sub(max_entries.min(i64::MAX as u64) as i64);
        if excess > 0 {
            write
                .execute(
                    "DELETE FROM entries WHERE id IN
                     (SELECT id FROM entries ORDER BY used, id LIMIT ?1)",
                    [excess],
                )
                .map_err(failed)?;
        }
        // A namespace no vector index covers keeps no log of its changes.
        let state = SqliteRows(&write).namespace(entry.namespace)?;
        if state.entries <= index_above {
            let trim = Trim {
                namespace: entry.namespace.into(),
                through: state.head,
            };
            apply_trim(&write, &trim)?;
        }
        write.commit().map_err(failed)?;
        Ok(state)
    }

    fn stats(&self) -> Result<Stats, String> {
        let db = self.db.lock()?;
        let (entries, namespaces, bytes) = db
            .query_row(
                "SELECT count(*), count(DISTINCT namespace), coalesce(sum(length(response)), 0)
                 FROM entries",
                [],
                |row| {
                    let n = |i| row.get::<_, i64>(i).map(|v| v as u64);
                    Ok((n(0)?, n(1)?, n(2)?))
                },
            )
            .map_err(failed)?;
        let counter = |name: &str| -> Result<u64, String> {
            db.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(failed)
        };
        Ok(Stats {
            entries,
            namespaces,
            bytes,
            lookups: counter("lookups")?,
            exact_hits: counter("exact_hits")?,
            semantic_hits: counter("semantic_hits")?,
        })
    }

    fn list(&self, limit: usize) -> Result<Vec<Entry>, String> {
        let db = self.db.lock()?;
        let mut statement = db
            .prepare(
                "SELECT id, namespace, query, length(response), created, used FROM entries
                 ORDER BY used DESC, id DESC LIMIT ?1",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok(Entry {
                    id: row.get(0)?,
                    namespace: row.get(1)?,
                    query: row.get(2)?,
                    bytes: row.get::<_, i64>(3)? as u64,
                    created: row.get(4)?,
                    used: row.get(5)?,
                })
            })
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    fn clear(&self, namespace: Option<&str>) -> Result<u64, String> {
        let mut db = self.db.lock()?;
        let write = db.transaction().map_err(failed)?;
        let removed = match namespace {
            Some(ns) => write
                .execute("DELETE FROM entries WHERE namespace = ?1", [ns])
                .and_then(|n| {
                    write.execute("DELETE FROM changes WHERE namespace = ?1", [ns])?;
                    write.execute("DELETE FROM namespaces WHERE namespace = ?1", [ns])?;
                    Ok(n)
                }),
            None => write.execute("DELETE FROM entries", []).and_then(|n| {
                write.execute_batch("DELETE FROM changes; DELETE FROM namespaces;")?;
                Ok(n)
            }),
        }
        .map_err(failed)?;
        write.commit().map_err(failed)?;
        Ok(removed as u64)
    }

    fn remove(&self, id: i64) -> Result<bool, String> {
        let db = self.db.lock()?;
        db.execute("DELETE FROM entries WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(failed)
    }
}

/// A lookup's snapshot: a transaction.
struct SqliteRows<'a>(&'a Connection);

impl Rows for SqliteRows<'_> {
    fn namespace(&self, namespace: &str) -> Result<Namespace, String> {
        self.0
            .query_row(
                "SELECT entries, head, trimmed FROM namespaces WHERE namespace = ?1",
                [namespace],
                |row| {
                    Ok(Namespace {
                        entries: row.get::<_, i64>(0)?.max(0) as u64,
                        head: row.get(1)?,
                        trimmed: row.get(2)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(failed)
    }

    fn scan(&self, namespace: &str, oldest: i64) -> Result<Vec<Candidate>, String> {
        let mut statement = self
            .0
            .prepare_cached(
                "SELECT id, query, vector FROM entries WHERE namespace = ?1 AND created > ?2",
            )
            .map_err(failed)?;
        statement
            .query_map(params![namespace, oldest], candidate)
            .and_then(|rows| rows.collect())
            .map_err(failed)
    }

    fn fetch(&self, namespace: &str, ids: &[i64], oldest: i64) -> Result<Vec<Candidate>, String> {
        let mut statement = self
            .0
            .prepare_cached(
                "SELECT id, query, vector FROM entries
                 WHERE id = ?1 AND namespace = ?2 AND created > ?3",
            )
            .map_err(failed)?;
        let mut found = Vec::new();
        for id in ids {
            let candidate = statement
                .query_row(params![id, namespace, oldest], candidate)
                .optional()
                .map_err(failed)?;
            found.extend(candidate);
        }
        Ok(found)
    }

    fn changes(&self, namespace: &str, seq: i64) -> Result<BTreeSet<i64>, String> {
        let mut statement = self
            .0
            .prepare_cached("SELECT entry FROM changes WHERE namespace = ?1 AND seq > ?2")
            .map_err(failed)?;
        statement
            .query_map(params![namespace, seq], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(failed)
    }

    fn vectors(
        &self,
        namespace: &str,
        ids: Option<&BTreeSet<i64>>,
    ) -> Result<Vec<(i64, Vec<u8>)>, String> {
        let Some(ids) = ids else {
            let mut statement = self
                .0
                .prepare("SELECT id, vector FROM entries WHERE namespace = ?1")
                .map_err(failed)?;
            return statement
                .query_map([namespace], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(failed);
        };
        let mut statement = self
            .0
            .prepare_cached("SELECT vector FROM entries WHERE id = ?1 AND namespace = ?2")
            .map_err(failed)?;
        let mut found = Vec::new();
        for id in ids {
            let vector: Option<Vec<u8>> = statement
                .query_row(params![id, namespace], |row| row.get(0))
                .optional()
                .map_err(failed)?;
            found.extend(vector.map(|v| (*id, v)));
        }
        Ok(found)
    }
}

fn candidate(row: &rusqlite::Row) -> rusqlite::Result<Candidate> {
    Ok(Candidate {
        id: row.get(0)?,
        query: row.get(1)?,
        vector: row.get(2)?,
    })
}

/// Deletes the merged changes and marks indexes older than them stale.
fn apply_trim(db: &Connection, trim: &Trim) -> Result<(), String> {
    db.execute(
        "UPDATE namespaces SET trimmed = max(trimmed, ?2) WHERE namespace = ?1",
        params![trim.namespace, trim.through],
    )
    .and_then(|_| {
        db.execute(
            "DELETE FROM changes WHERE namespace = ?1 AND seq <= ?2",
            params![trim.namespace, trim.through],
        )
    })
    .map(|_| ())
    .map_err(failed)
}

// Lookups run these on every call: their statements stay prepared.
fn count(db: &Connection, name: &str) -> Result<(), String> {
    db.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )
    .and_then(|mut statement| statement.execute([name]))
    .map(|_| ())
    .map_err(failed)
}

/// Marks an entry used at `now` and counts the hit.
fn touch(db: &Connection, id: i64, now: i64, counter: &str) -> Result<(), String> {
    db.prepare_cached("UPDATE entries SET used = ?1 WHERE id = ?2")
        .and_then(|mut statement| statement.execute(params![now, id]))
        .map_err(failed)?;
    count(db, counter)
}

/// The store's tables. `namespaces` and `changes` are kept by triggers for the vector
/// indexes (see `index`); `user_version` 1 marks a store whose `namespaces` counts are filled.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS entries (
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    namespace TEXT NOT NULL,
                    query TEXT NOT NULL,
                    vector BLOB NOT NULL,
                    response BLOB NOT NULL,
                    created INTEGER NOT NULL,
                    used INTEGER NOT NULL
                );
                CREATE INDEX IF NOT EXISTS entries_namespace ON entries (namespace);
                CREATE TABLE IF NOT EXISTS counters (
                    name TEXT PRIMARY KEY,
                    value INTEGER NOT NULL
                );
                CREATE TABLE IF NOT EXISTS namespaces (
                    namespace TEXT PRIMARY KEY,
                    entries INTEGER NOT NULL,
                    head INTEGER NOT NULL DEFAULT 0,
                    trimmed INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE IF NOT EXISTS changes (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    namespace TEXT NOT NULL,
                    entry INTEGER NOT NULL
                );
                CREATE INDEX IF NOT EXISTS changes_namespace ON changes (namespace, seq);
                CREATE TRIGGER IF NOT EXISTS entry_added AFTER INSERT ON entries BEGIN
                    INSERT INTO changes (namespace, entry) VALUES (new.namespace, new.id);
                    INSERT INTO namespaces (namespace, entries, head)
                        VALUES (new.namespace, 1, (SELECT max(seq) FROM changes))
                        ON CONFLICT (namespace) DO UPDATE
                        SET entries = entries + 1, head = excluded.head;
                END;
                CREATE TRIGGER IF NOT EXISTS entry_removed AFTER DELETE ON entries BEGIN
                    INSERT INTO changes (namespace, entry) VALUES (old.namespace, old.id);
                    UPDATE namespaces SET entries = entries - 1, head = (SELECT max(seq) FROM changes)
                        WHERE namespace = old.namespace;
                END;
                INSERT OR IGNORE INTO namespaces (namespace, entries)
                    SELECT namespace, count(*) FROM entries
                    WHERE (SELECT user_version FROM pragma_user_version) < 1
                    GROUP BY namespace;
                PRAGMA user_version = 1;";

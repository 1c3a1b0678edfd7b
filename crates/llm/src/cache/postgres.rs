//! The cache's tables in the PostgreSQL store, shared by every host (the schema is the
//! store's migration V3). Each host keeps its own vector indexes, in step with the shared
//! log of changes, as hosts sharing a SQLite file do.

use std::collections::BTreeSet;

use baton_postgres::tokio_postgres::Row;
use baton_postgres::{Database, Session};

use super::index::{Namespace, Trim};
use super::tables::{Candidate, NewEntry, Rows, Tables};
use super::{Entry, Stats};

/// A lookup reads from one snapshot.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

pub(crate) struct Postgres {
    db: Database,
}

impl Postgres {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

const COUNT: &str = "INSERT INTO cache_counters (name, value) VALUES ($1, 1)
                     ON CONFLICT (name) DO UPDATE SET value = cache_counters.value + 1";

/// Deletes the changes of namespace `$1` up to `$2`, merged into an index, and marks indexes
/// older than them stale.
const TRIM: &str = "WITH marked AS (UPDATE cache_namespaces
                                    SET trimmed = greatest(trimmed, $2) WHERE namespace = $1)
                    DELETE FROM cache_changes WHERE namespace = $1 AND seq <= $2";

impl Tables for Postgres {
    fn exact(&self, key: &str, oldest: i64, now: i64) -> Result<Option<(i64, Vec<u8>)>, String> {
        let key = key.to_owned();
        self.db.query(move |client| async move {
            // One statement: the lookup is counted, and a hit marked used and counted.
            let row = client
                .query_opt(
                    "WITH counted AS (INSERT INTO cache_counters (name, value)
                                      VALUES ('lookups', 1) ON CONFLICT (name)
                                      DO UPDATE SET value = cache_counters.value + 1),
                          hit AS (UPDATE cache_entries SET used = $3
                                  WHERE key = $1 AND created > $2
                                  RETURNING id, response)
                     SELECT id, response FROM hit",
                    &[&key, &oldest, &now],
                )
                .await?;
            let Some(row) = row else { return Ok(None) };
            client.execute(COUNT, &[&"exact_hits"]).await?;
            Ok(Some((row.get(0), row.get(1))))
        })
    }

    fn read(&self, read: &mut dyn FnMut(&dyn Rows) -> Result<(), String>) -> Result<(), String> {
        let session = self.db.session(SNAPSHOT)?;
        read(&PostgresRows(&session))?;
        session.commit()
    }

    fn hit(&self, id: i64, now: i64) -> Result<Vec<u8>, String> {
        self.db.query(move |client| async move {
            let row = client
                .query_one(
                    "UPDATE cache_entries SET used = $2 WHERE id = $1 RETURNING response",
                    &[&id, &now],
                )
                .await?;
            client.execute(COUNT, &[&"semantic_hits"]).await?;
            Ok(row.get(0))
        })
    }

    fn trim(&self, trim: &Trim) -> Result<(), String> {
        let (namespace, through) = (trim.namespace.clone(), trim.through);
        self.db.query(move |client| async move {
            client
                .execute(TRIM, &[&namespace, &through])
                .await
                .map(drop)
        })
    }

    fn store(
        &self,
        entry: NewEntry<'_>,
        max_entries: u64,
        index_above: u64,
    ) -> Result<Namespace, String> {
        let (key, namespace, query) = (
            entry.key.to_owned(),
            entry.namespace.to_owned(),
            entry.query.to_owned(),
        );
        let (vector, response, now) = (entry.vector, entry.response, entry.now);
        let max_entries = max_entries.min(i64::MAX as u64) as i64;
        let index_above = index_above.min(i64::MAX as u64) as i64;
        self.db.transaction("BEGIN", move |client| async move {
            // Another host storing the same request at once keeps its answer.
            client
                .execute("DELETE FROM cache_entries WHERE key = $1", &[&key])
                .await?;
            client
                .execute(
                    "INSERT INTO cache_entries
                     (key, namespace, query, vector, response, created, used)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)
                     ON CONFLICT (key) DO NOTHING",
                    &[&key, &namespace, &query, &vector, &response, &now],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM cache_entries WHERE id IN
                     (SELECT id FROM cache_entries ORDER BY used, id
                      LIMIT greatest(
                          (SELECT coalesce(sum(entries), 0) FROM cache_namespaces)::BIGINT - $1,
                          0))",
                    &[&max_entries],
                )
                .await?;
            let state = client
                .query_opt(
                    "SELECT entries, head, trimmed FROM cache_namespaces WHERE namespace = $1",
                    &[&namespace],
                )
                .await?
                .map(|row| namespace_of(&row))
                .unwrap_or_default();
            // A namespace no vector index covers keeps no log of its changes.
            if state.entries as i64 <= index_above {
                client.execute(TRIM, &[&namespace, &state.head]).await?;
            }
            Ok(state)
        })
    }

    fn stats(&self) -> Result<Stats, String> {
        self.db.query(|client| async move {
            let row = client
                .query_one(
                    "SELECT count(*), count(DISTINCT namespace),
                            coalesce(sum(length(response)), 0)::BIGINT,
                            coalesce((SELECT value FROM cache_counters WHERE name = 'lookups'), 0),
                            coalesce((SELECT value FROM cache_counters WHERE name = 'exact_hits'), 0),
                            coalesce((SELECT value FROM cache_counters WHERE name = 'semantic_hits'), 0)
                     FROM cache_entries",
                    &[],
                )
                .await?;
            let n = |i| row.get::<_, i64>(i).max(0) as u64;
            Ok(Stats {
                entries: n(0),
                namespaces: n(1),
                bytes: n(2),
                lookups: n(3),
                exact_hits: n(4),
                semantic_hits: n(5),
            })
        })
    }

    fn list(&self, limit: usize) -> Result<Vec<Entry>, String> {
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db.query(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, namespace, query, length(response)::BIGINT, created, used
                     FROM cache_entries ORDER BY used DESC, id DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| Entry {
                    id: row.get(0),
                    namespace: row.get(1),
                    query: row.get(2),
                    bytes: row.get::<_, i64>(3).max(0) as u64,
                    created: row.get(4),
                    used: row.get(5),
                })
                .collect())
        })
    }

    fn clear(&self, namespace: Option<&str>) -> Result<u64, String> {
        let namespace = namespace.map(str::to_owned);
        self.db.transaction("BEGIN", move |client| async move {
            // NULL: every namespace.
            let removed = client
                .execute(
                    "DELETE FROM cache_entries WHERE $1::TEXT IS NULL OR namespace = $1",
                    &[&namespace],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM cache_changes WHERE $1::TEXT IS NULL OR namespace = $1",
                    &[&namespace],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM cache_namespaces WHERE $1::TEXT IS NULL OR namespace = $1",
                    &[&namespace],
                )
                .await?;
            Ok(removed)
        })
    }

    fn remove(&self, id: i64) -> Result<bool, String> {
        self.db.query(move |client| async move {
            client
                .execute("DELETE FROM cache_entries WHERE id = $1", &[&id])
                .await
                .map(|n| n > 0)
        })
    }
}

fn namespace_of(row: &Row) -> Namespace {
    Namespace {
        entries: row.get::<_, i64>(0).max(0) as u64,
        head: row.get(1),
        trimmed: row.get(2),
    }
}

fn candidates(rows: Vec<Row>) -> Vec<Candidate> {
    rows.iter()
        .map(|row| Candidate {
            id: row.get(0),
            query: row.get(1),
            vector: row.get(2),
        })
        .collect()
}

/// A lookup's snapshot: a read-only repeatable-read transaction.
struct PostgresRows<'a>(&'a Session);

impl Rows for PostgresRows<'_> {
    fn namespace(&self, namespace: &str) -> Result<Namespace, String> {
        let namespace = namespace.to_owned();
        self.0.query(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT entries, head, trimmed FROM cache_namespaces WHERE namespace = $1",
                    &[&namespace],
                )
                .await?;
            Ok(row.map(|row| namespace_of(&row)).unwrap_or_default())
        })
    }

    fn scan(&self, namespace: &str, oldest: i64) -> Result<Vec<Candidate>, String> {
        let namespace = namespace.to_owned();
        self.0.query(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, query, vector FROM cache_entries
                     WHERE namespace = $1 AND created > $2",
                    &[&namespace, &oldest],
                )
                .await?;
            Ok(candidates(rows))
        })
    }

    fn fetch(&self, namespace: &str, ids: &[i64], oldest: i64) -> Result<Vec<Candidate>, String> {
        let (namespace, ids) = (namespace.to_owned(), ids.to_vec());
        self.0.query(move |client| async move {
            let rows = client
                .query(
                    "SELECT id, query, vector FROM cache_entries
                     WHERE id = ANY($1) AND namespace = $2 AND created > $3",
                    &[&ids, &namespace, &oldest],
                )
                .await?;
            Ok(candidates(rows))
        })
    }

    fn changes(&self, namespace: &str, seq: i64) -> Result<BTreeSet<i64>, String> {
        let namespace = namespace.to_owned();
        self.0.query(move |client| async move {
            let rows = client
                .query(
                    "SELECT entry FROM cache_changes WHERE namespace = $1 AND seq > $2",
                    &[&namespace, &seq],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn vectors(
        &self,
        namespace: &str,
        ids: Option<&BTreeSet<i64>>,
    ) -> Result<Vec<(i64, Vec<u8>)>, String> {
        let namespace = namespace.to_owned();
        let ids: Option<Vec<i64>> = ids.map(|ids| ids.iter().copied().collect());
        self.0.query(move |client| async move {
            // NULL: every entry of the namespace.
            let rows = client
                .query(
                    "SELECT id, vector FROM cache_entries
                     WHERE namespace = $1 AND ($2::BIGINT[] IS NULL OR id = ANY($2))",
                    &[&namespace, &ids],
                )
                .await?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }
}

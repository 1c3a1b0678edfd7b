//! The completion cache: an exact tier and a semantic tier, in `llm-cache.db` beside the
//! journal.
//!
//! - Exact: the key is the sha256 of the canonical request (everything but the idempotency
//!   key). Same request, same answer.
//! - Semantic: a *namespace* is the sha256 of everything that must match for an answer to be
//!   reusable: the model, `max_tokens`, temperature, stop sequences, seed, every message but
//!   the last user turn (the system prompt and the conversation so far), the calling
//!   component's digest and the policy's version. Within a namespace the last user turn is
//!   embedded and compared by cosine similarity with the stored ones. A candidate at or
//!   above the threshold must also agree on its numbers and negations (a cheap second check
//!   against near-misses such as "3 apples" vs "4 apples", "is" vs "is not"). Requests with
//!   temperature above 0 are served semantically only when the policy opts in.
//!
//! Responses are stored zstd-compressed; entries expire after the TTL and the least recently
//! used are evicted past `max_entries`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

mod facts;
mod index;

pub use index::VectorIndex;
use index::{Indexes, Namespace};

use facts::Facts;
pub use facts::same_facts;

use super::embedding::{from_bytes, to_bytes};
use baton_journal::event::{LlmOutcome, LlmRequest};
use baton_policy::llm::CacheSettings;

/// Most changes a lookup scans beside a namespace's vector index before merging them in.
const MERGE_AT: u64 = 1024;

/// Which tier answered.
pub mod tier {
    pub const EXACT: &str = "cache:exact";
    pub const SEMANTIC: &str = "cache:semantic";
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: i64,
    pub tier: &'static str,
    /// Cosine similarity of the user turns (1 for an exact hit).
    pub similarity: f32,
    pub outcome: LlmOutcome,
}

/// What identifies a request for the cache.
pub struct Keys {
    pub exact: String,
    pub namespace: String,
    /// The varying part: the last user turn.
    pub query: String,
}

/// One stored answer, as `baton cache ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub namespace: String,
    /// The user turn it answered.
    pub query: String,
    /// Size of the compressed response.
    pub bytes: u64,
    /// Unix milliseconds.
    pub created: i64,
    pub used: i64,
}

/// Counts and sizes, for `baton cache stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub namespaces: u64,
    /// Bytes of compressed responses.
    pub bytes: u64,
    pub lookups: u64,
    pub exact_hits: u64,
    pub semantic_hits: u64,
}

pub struct Cache {
    db: crate::Store,
    indexes: Indexes,
}

impl Cache {
    /// The cache at `path` (created on first use), or one in memory. The vector indexes of
    /// large namespaces live beside it, in `<path>.index/`.
    pub fn new(path: Option<&Path>) -> Self {
        let dir = path.map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".index");
            PathBuf::from(name)
        });
        Self {
            db: crate::Store::new(path, SCHEMA),
            indexes: Indexes::new(dir),
        }
    }

    /// The answer stored for exactly this request, if fresh.
    pub fn exact(&self, keys: &Keys, settings: &CacheSettings) -> Result<Option<Hit>, String> {
        let db = self.db.lock()?;
        // The lookup's writes (counters, the entry's use) are committed together: one commit
        // on the request's path rather than three.
        let db = db.unchecked_transaction().map_err(|e| e.to_string())?;
        count(&db, "lookups")?;
        let found: Option<(i64, Vec<u8>)> = db
            .prepare_cached("SELECT id, response FROM entries WHERE key = ?1 AND created > ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![keys.exact, oldest(settings)], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()
            })
            .map_err(|e| e.to_string())?;
        let Some((id, response)) = found else {
            db.commit().map_err(|e| e.to_string())?;
            return Ok(None);
        };
        touch(&db, id, "exact_hits")?;
        db.commit().map_err(|e| e.to_string())?;
        Ok(Some(Hit {
            id,
            tier: tier::EXACT,
            similarity: 1.0,
            outcome: decode(&response)?,
        }))
    }

    /// The closest stored answer in the request's namespace whose user turn is at least
    /// `settings.threshold` similar to `vector` and agrees on numbers and negations. A
    /// namespace of up to `settings.index_above` entries is scanned; a larger one is searched
    /// through its vector index (see `index`), and the similarity of each candidate is then
    /// computed exactly from its stored vector.
    pub fn semantic(
        &self,
        keys: &Keys,
        vector: &[f32],
        settings: &CacheSettings,
    ) -> Result<Option<Hit>, String> {
        let mut db = self.db.lock()?;
        // One snapshot for the whole lookup (see `index`).
        let snapshot = db.transaction().map_err(|e| e.to_string())?;
        let state = Namespace::of(&snapshot, &keys.namespace)?;
        let (candidates, trim) = match state.entries > settings.index_above {
            true => {
                let merge_at = settings.index_above.clamp(1, MERGE_AT);
                let (nearest, trim) =
                    self.indexes
                        .candidates(&snapshot, &keys.namespace, state, vector, merge_at)?;
                (fetch(&snapshot, keys, &nearest, settings)?, trim)
            }
            false => (scan(&snapshot, keys, settings)?, None),
        };
        snapshot.finish().map_err(|e| e.to_string())?;
        if let Some(trim) = trim {
            trim.apply(&db)?;
        }
        let facts = Facts::of(&keys.query);
        let best = candidates
            .into_iter()
            .map(|c| (cosine_bytes(vector, &c.vector), c))
            .filter(|(similarity, c)| {
                *similarity >= settings.threshold && Facts::of(&c.query).agrees_with(&facts)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(similarity, c)| (c.id, similarity));
        let Some((id, similarity)) = best else {
            return Ok(None);
        };
        let response: Vec<u8> = db
            .query_row("SELECT response FROM entries WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .map_err(|e| e.to_string())?;
        touch(&db, id, "semantic_hits")?;
        Ok(Some(Hit {
            id,
            tier: tier::SEMANTIC,
            similarity,
            outcome: decode(&response)?,
        }))
    }

    /// Stores a completed answer (with the user turn's embedding, when there is one), then
    /// evicts the least recently used entries past `max_entries`.
    pub fn store(
        &self,
        keys: &Keys,
        vector: Option<&[f32]>,
        outcome: &LlmOutcome,
        settings: &CacheSettings,
    ) -> Result<(), String> {
        let json = serde_json::to_vec(outcome).expect("outcomes serialize");
        let response = zstd::encode_all(json.as_slice(), 3).map_err(|e| e.to_string())?;
        let vector = to_bytes(vector.unwrap_or_default());
        let mut db = self.db.lock()?;
        let write = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let now = now();
        // A delete and an insert rather than `INSERT OR REPLACE`, whose implicit delete would
        // not reach the triggers that log changes for the vector index.
        write
            .execute("DELETE FROM entries WHERE key = ?1", [&keys.exact])
            .and_then(|_| {
                write.execute(
                    "INSERT INTO entries (key, namespace, query, vector, response, created, used)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![
                        keys.exact,
                        keys.namespace,
                        keys.query,
                        vector,
                        response,
                        now
                    ],
                )
            })
            .map_err(|e| e.to_string())?;
        let total: i64 = write
            .query_row(
                "SELECT coalesce(sum(entries), 0) FROM namespaces",
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        let excess = total.saturating_sub(settings.max_entries.min(i64::MAX as u64) as i64);
        if excess > 0 {
            write
                .execute(
                    "DELETE FROM entries WHERE id IN
                     (SELECT id FROM entries ORDER BY used, id LIMIT ?1)",
                    [excess],
                )
                .map_err(|e| e.to_string())?;
        }
        // A namespace no vector index covers keeps no log of its changes.
        let state = Namespace::of(&write, &keys.namespace)?;
        let unindexed = state.entries <= settings.index_above;
        if unindexed {
            let trim = index::Trim {
                namespace: keys.namespace.clone(),
                through: state.head,
            };
            trim.apply(&write)?;
        }
        write.commit().map_err(|e| e.to_string())?;
        if unindexed && state.trimmed < state.head {
            self.indexes.remove(Some(&keys.namespace))?;
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<Stats, String> {
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
            .map_err(|e| e.to_string())?;
        let counter = |name: &str| -> Result<u64, String> {
            db.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| e.to_string())
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

    /// The most recently used entries, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<Entry>, String> {
        let db = self.db.lock()?;
        let mut statement = db
            .prepare(
                "SELECT id, namespace, query, length(response), created, used FROM entries
                 ORDER BY used DESC, id DESC LIMIT ?1",
            )
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    /// Removes every entry, or those of one namespace, with their vector indexes; returns
    /// how many.
    pub fn clear(&self, namespace: Option<&str>) -> Result<u64, String> {
        let mut db = self.db.lock()?;
        let write = db.transaction().map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
        write.commit().map_err(|e| e.to_string())?;
        self.indexes.remove(namespace)?;
        Ok(removed as u64)
    }

    /// Removes one entry; whether it existed.
    pub fn remove(&self, id: i64) -> Result<bool, String> {
        let db = self.db.lock()?;
        db.execute("DELETE FROM entries WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| e.to_string())
    }
}

impl Keys {
    /// The keys of `request` from the component `caller_digest` under the policy `policy`.
    pub fn of(request: &LlmRequest, caller_digest: &str, policy: &str) -> Self {
        let bare = LlmRequest {
            idempotency_key: None,
            ..request.clone()
        };
        let exact = hash(&serde_json::to_vec(&bare).expect("requests serialize"));
        let last_user = request.messages.iter().rposition(|m| m.role == "user");
        let query = last_user.map_or(String::new(), |i| request.messages[i].content.clone());
        let context: Vec<_> = request
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != last_user)
            .map(|(_, m)| (&m.role, &m.content))
            .collect();
        let namespace = serde_json::json!({
            "caller": caller_digest,
            "context": context,
            "max_tokens": request.max_tokens,
            "model": request.model,
            "policy": policy,
            "seed": request.seed,
            "stop": request.stop,
            "temperature": request.temperature,
        });
        Keys {
            exact,
            namespace: hash(namespace.to_string().as_bytes()),
            query,
        }
    }
}

/// A stored user turn that may answer a lookup.
struct Candidate {
    id: i64,
    query: String,
    vector: Vec<u8>,
}

impl Candidate {
    fn of(row: &rusqlite::Row) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            query: row.get(1)?,
            vector: row.get(2)?,
        })
    }
}

/// Every fresh entry of the request's namespace.
fn scan(db: &Connection, keys: &Keys, settings: &CacheSettings) -> Result<Vec<Candidate>, String> {
    let mut statement = db
        .prepare_cached(
            "SELECT id, query, vector FROM entries WHERE namespace = ?1 AND created > ?2",
        )
        .map_err(|e| e.to_string())?;
    statement
        .query_map(params![keys.namespace, oldest(settings)], Candidate::of)
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())
}

/// The fresh entries among `nearest`, which the vector index found.
fn fetch(
    db: &Connection,
    keys: &Keys,
    nearest: &[i64],
    settings: &CacheSettings,
) -> Result<Vec<Candidate>, String> {
    let mut statement = db
        .prepare_cached(
            "SELECT id, query, vector FROM entries
             WHERE id = ?1 AND namespace = ?2 AND created > ?3",
        )
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    for id in nearest {
        let candidate = statement
            .query_row(params![id, keys.namespace, oldest(settings)], Candidate::of)
            .optional()
            .map_err(|e| e.to_string())?;
        found.extend(candidate);
    }
    Ok(found)
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn cosine_bytes(vector: &[f32], stored: &[u8]) -> f32 {
    if stored.len() != vector.len() * 4 {
        return f32::MIN;
    }
    from_bytes(stored).zip(vector).map(|(a, b)| a * b).sum()
}

fn decode(response: &[u8]) -> Result<LlmOutcome, String> {
    let json = zstd::decode_all(response).map_err(|e| format!("a cached response: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("a cached response: {e}"))
}

/// The creation time before which entries have expired.
fn oldest(settings: &CacheSettings) -> i64 {
    now() - settings.ttl.as_millis().min(i64::MAX as u128) as i64
}

// Lookups run these on every call: their statements stay prepared.
fn count(db: &Connection, name: &str) -> Result<(), String> {
    db.prepare_cached(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )
    .and_then(|mut statement| statement.execute([name]))
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Marks an entry used now and counts the hit.
fn touch(db: &Connection, id: i64, counter: &str) -> Result<(), String> {
    db.prepare_cached("UPDATE entries SET used = ?1 WHERE id = ?2")
        .and_then(|mut statement| statement.execute(params![now(), id]))
        .map_err(|e| e.to_string())?;
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

/// Unix time in milliseconds (fine enough to tell uses apart for eviction).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;

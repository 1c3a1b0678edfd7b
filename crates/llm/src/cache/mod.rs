//! The completion cache: an exact tier and a semantic tier, in `llm-cache.db` beside a SQLite
//! journal or in the PostgreSQL store (`tables`).
//!
//! - Exact: the key is the sha256 of the canonical request (everything but the idempotency
//!   key). Same request, same answer.
//! - Semantic: a *namespace* is the sha256 of everything that must match for an answer to be
//!   reusable: the model, `max_tokens`, temperature, stop sequences, seed, every message but
//!   the last user turn (the system prompt and the conversation so far), the pattern the
//!   reply must match, the calling component's digest and the policy's version. Within a namespace the last user turn is
//!   embedded and compared by cosine similarity with the stored ones. A candidate at or
//!   above the threshold must also agree on its numbers and negations (a cheap second check
//!   against near-misses such as "3 apples" vs "4 apples", "is" vs "is not"). Requests with
//!   temperature above 0 are served semantically only when the policy opts in.
//!
//! Responses are stored zstd-compressed; entries expire after the TTL and the least recently
//! used are evicted past `max_entries`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod facts;
mod index;
mod postgres;
mod sqlite;
mod tables;

use index::Indexes;
pub use index::VectorIndex;
use tables::{Candidate, NewEntry, Tables};

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
    tables: Box<dyn Tables>,
    indexes: Indexes,
}

impl Cache {
    /// The cache at `path` (created on first use), or one in memory. The vector indexes of
    /// large namespaces live beside it, in `<path>.index/`.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            tables: Box::new(sqlite::Sqlite::new(path)),
            indexes: Indexes::new(path.map(|p| beside(p, ".index"))),
        }
    }

    /// The cache in the PostgreSQL database `db`, with this host's vector indexes in
    /// `index_dir` (in memory when `None`).
    pub fn in_postgres(db: baton_postgres::Database, index_dir: Option<PathBuf>) -> Self {
        Self {
            tables: Box::new(postgres::Postgres::new(db)),
            indexes: Indexes::new(index_dir),
        }
    }

    /// The answer stored for exactly this request, if fresh.
    pub fn exact(&self, keys: &Keys, settings: &CacheSettings) -> Result<Option<Hit>, String> {
        let Some((id, response)) = self.tables.exact(&keys.exact, oldest(settings), now())? else {
            return Ok(None);
        };
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
        let (mut candidates, mut trim) = (Vec::new(), None);
        // One snapshot for the whole lookup (see `index`).
        self.tables.read(&mut |rows| {
            let state = rows.namespace(&keys.namespace)?;
            if state.entries > settings.index_above {
                let merge_at = settings.index_above.clamp(1, MERGE_AT);
                let (nearest, merged) =
                    self.indexes
                        .candidates(rows, &keys.namespace, state, vector, merge_at)?;
                candidates = rows.fetch(&keys.namespace, &nearest, oldest(settings))?;
                trim = merged;
            } else {
                candidates = rows.scan(&keys.namespace, oldest(settings))?;
            }
            Ok(())
        })?;
        if let Some(trim) = trim {
            self.tables.trim(&trim)?;
        }
        let facts = Facts::of(&keys.query);
        let best = candidates
            .into_iter()
            .map(|c| (cosine_bytes(vector, &c.vector), c))
            .filter(|(similarity, c)| {
                *similarity >= settings.threshold && Facts::of(&c.query).agrees_with(&facts)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(similarity, c): (f32, Candidate)| (c.id, similarity));
        let Some((id, similarity)) = best else {
            return Ok(None);
        };
        let response = self.tables.hit(id, now())?;
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
        let entry = NewEntry {
            key: &keys.exact,
            namespace: &keys.namespace,
            query: &keys.query,
            vector: to_bytes(vector.unwrap_or_default()),
            response: zstd::encode_all(json.as_slice(), 3).map_err(|e| e.to_string())?,
            now: now(),
        };
        let state = self
            .tables
            .store(entry, settings.max_entries, settings.index_above)?;
        // A namespace no vector index covers keeps no index either.
        if state.entries <= settings.index_above && state.trimmed < state.head {
            self.indexes.remove(Some(&keys.namespace))?;
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<Stats, String> {
        self.tables.stats()
    }

    /// The most recently used entries, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<Entry>, String> {
        self.tables.list(limit)
    }

    /// Removes every entry, or those of one namespace, with their vector indexes; returns
    /// how many.
    pub fn clear(&self, namespace: Option<&str>) -> Result<u64, String> {
        let removed = self.tables.clear(namespace)?;
        self.indexes.remove(namespace)?;
        Ok(removed)
    }

    /// Removes one entry; whether it existed.
    pub fn remove(&self, id: i64) -> Result<bool, String> {
        self.tables.remove(id)
    }
}

/// The path `path` with `suffix` added to its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
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
        let mut namespace = serde_json::json!({
            "caller": caller_digest,
            "context": context,
            "max_tokens": request.max_tokens,
            "model": request.model,
            "policy": policy,
            "seed": request.seed,
            "stop": request.stop,
            "temperature": request.temperature,
        });
        // Only where there is one, so that namespaces without stay as they were.
        if let Some(pattern) = &request.pattern {
            namespace["pattern"] = pattern.as_str().into();
        }
        Keys {
            exact,
            namespace: hash(namespace.to_string().as_bytes()),
            query,
        }
    }
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

/// Unix time in milliseconds (fine enough to tell uses apart for eviction).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;

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

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::embedding::{from_bytes, to_bytes};
use crate::journal::event::{LlmOutcome, LlmRequest};
use crate::policy::llm::CacheSettings;

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
    db: super::Store,
}

impl Cache {
    /// The cache at `path` (created on first use), or one in memory.
    pub fn new(path: Option<&Path>) -> Self {
        Self {
            db: super::Store::new(path, SCHEMA),
        }
    }

    /// The answer stored for exactly this request, if fresh.
    pub fn exact(&self, keys: &Keys, settings: &CacheSettings) -> Result<Option<Hit>, String> {
        let db = self.db.lock()?;
        count(&db, "lookups")?;
        let found: Option<(i64, Vec<u8>)> = db
            .query_row(
                "SELECT id, response FROM entries WHERE key = ?1 AND created > ?2",
                params![keys.exact, oldest(settings)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let Some((id, response)) = found else {
            return Ok(None);
        };
        touch(&db, id, "exact_hits")?;
        Ok(Some(Hit {
            id,
            tier: tier::EXACT,
            similarity: 1.0,
            outcome: decode(&response)?,
        }))
    }

    /// The closest stored answer in the request's namespace whose user turn is at least
    /// `settings.threshold` similar to `vector` and agrees on numbers and negations.
    pub fn semantic(
        &self,
        keys: &Keys,
        vector: &[f32],
        settings: &CacheSettings,
    ) -> Result<Option<Hit>, String> {
        let db = self.db.lock()?;
        let mut statement = db
            .prepare_cached(
                "SELECT id, query, vector FROM entries WHERE namespace = ?1 AND created > ?2",
            )
            .map_err(|e| e.to_string())?;
        let rows = statement
            .query_map(params![keys.namespace, oldest(settings)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let facts = Facts::of(&keys.query);
        let mut best: Option<(i64, f32)> = None;
        for row in rows {
            let (id, query, stored) = row.map_err(|e| e.to_string())?;
            let similarity = cosine_bytes(vector, &stored);
            if similarity >= settings.threshold
                && best.is_none_or(|(_, s)| similarity > s)
                && Facts::of(&query).agrees_with(&facts)
            {
                best = Some((id, similarity));
            }
        }
        drop(statement);
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
        let db = self.db.lock()?;
        let now = now();
        db.execute(
            "INSERT OR REPLACE INTO entries
                 (key, namespace, query, vector, response, created, used)
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
        .map_err(|e| e.to_string())?;
        db.execute(
            "DELETE FROM entries WHERE id IN (SELECT id FROM entries ORDER BY used DESC, id DESC
             LIMIT -1 OFFSET ?1)",
            [settings.max_entries.min(i64::MAX as u64) as i64],
        )
        .map_err(|e| e.to_string())?;
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

    /// Removes every entry, or those of one namespace; returns how many.
    pub fn clear(&self, namespace: Option<&str>) -> Result<u64, String> {
        let db = self.db.lock()?;
        let removed = match namespace {
            Some(ns) => db.execute("DELETE FROM entries WHERE namespace = ?1", [ns]),
            None => db.execute("DELETE FROM entries", []),
        };
        removed.map(|n| n as u64).map_err(|e| e.to_string())
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

/// Whether an answer to `a` may be served for `b` as far as a cheap check can tell: the
/// second check on a semantic candidate (see `Facts`).
pub fn same_facts(a: &str, b: &str) -> bool {
    Facts::of(a).agrees_with(&Facts::of(b))
}

/// What two questions must share to have the same answer, beyond similar wording: their
/// numbers (digits and number words), their names (capitalized words past the first), whether
/// they are negated, and the order of the content words they have in common ("from Paris to
/// London" is not "from London to Paris").
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    numbers: BTreeSet<String>,
    names: BTreeSet<String>,
    negated: bool,
    /// Content words (lowercase, not function words), in order.
    words: Vec<String>,
}

const NUMBER_WORDS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "hundred", "thousand",
];
const NEGATIONS: [&str; 9] = [
    "not", "no", "never", "none", "nor", "without", "neither", "cannot", "nothing",
];
/// Function words: their order says little.
const FUNCTION_WORDS: [&str; 58] = [
    "a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did", "i", "me", "my",
    "you", "your", "it", "its", "to", "of", "in", "on", "for", "with", "at", "by", "from", "and",
    "or", "what", "what's", "which", "who", "how", "why", "when", "where", "can", "could", "would",
    "should", "will", "say", "tell", "give", "please", "this", "that", "these", "those", "some",
    "any", "there", "about", "than", "as", "so", "if",
];

impl Facts {
    fn of(text: &str) -> Self {
        let mut numbers = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut words = Vec::new();
        let mut negated = text.to_lowercase().contains("n't");
        let raw = text.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '\''));
        for (index, raw) in raw.filter(|w| !w.is_empty()).enumerate() {
            let raw = raw.trim_matches(|c| c == '.' || c == '\'');
            // A possessive names the same thing: "France's" is "France".
            let raw = raw.strip_suffix("'s").unwrap_or(raw);
            let word = raw.to_lowercase();
            if word.is_empty() {
                continue;
            }
            if word.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&word.as_str()) {
                numbers.insert(word.clone());
            } else if NEGATIONS.contains(&word.as_str()) {
                negated = true;
            }
            if index > 0 && raw.len() > 1 && raw.starts_with(|c: char| c.is_uppercase()) {
                names.insert(word.clone());
            }
            if !FUNCTION_WORDS.contains(&word.as_str()) && !words.contains(&word) {
                words.push(word);
            }
        }
        Facts {
            numbers,
            names,
            negated,
            words,
        }
    }

    fn agrees_with(&self, other: &Facts) -> bool {
        let common = |words: &[String], with: &[String]| -> Vec<String> {
            words.iter().filter(|w| with.contains(w)).cloned().collect()
        };
        self.numbers == other.numbers
            && self.names == other.names
            && self.negated == other.negated
            && !self.negates_a_word_of(other)
            && !other.negates_a_word_of(self)
            && common(&self.words, &other.words) == common(&other.words, &self.words)
    }

    /// Whether one of these words is a word of `other` with a negating prefix ("illegal"
    /// for "legal", "unhealthy" for "healthy").
    fn negates_a_word_of(&self, other: &Facts) -> bool {
        const PREFIXES: [&str; 7] = ["un", "in", "im", "il", "ir", "dis", "non"];
        self.words.iter().any(|word| {
            PREFIXES.iter().any(|prefix| {
                word.strip_prefix(prefix)
                    .is_some_and(|stem| stem.len() > 2 && other.words.iter().any(|w| w == stem))
            })
        })
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

fn count(db: &Connection, name: &str) -> Result<(), String> {
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?1, 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
        [name],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Marks an entry used now and counts the hit.
fn touch(db: &Connection, id: i64, counter: &str) -> Result<(), String> {
    db.execute(
        "UPDATE entries SET used = ?1 WHERE id = ?2",
        params![now(), id],
    )
    .map_err(|e| e.to_string())?;
    count(db, counter)
}

/// The store's tables.
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
                );";

/// Unix time in milliseconds (fine enough to tell uses apart for eviction).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_differ_in_their_facts() {
        assert!(same_facts("Is Paris big?", "is Paris large"));
        assert!(same_facts(
            "What is the capital of France?",
            "what's the capital city of France?"
        ));
        assert!(!same_facts("Buy 3 apples", "Buy 4 apples"));
        assert!(!same_facts("Is it safe?", "Isn't it safe?"));
        assert!(!same_facts("with sugar", "without sugar"));
        assert!(!same_facts("two days", "three days"));
        assert!(same_facts("Version 2.5.", "version 2.5"));
        assert!(!same_facts(
            "The capital of France",
            "The capital of Germany"
        ));
        assert!(!same_facts(
            "Flights from Paris to Rome",
            "Flights from Rome to Paris"
        ));
        assert!(!same_facts(
            "Why is tea better than coffee?",
            "Why is coffee better than tea?"
        ));
        assert!(!same_facts("Is it legal?", "Is it illegal?"));
        assert!(same_facts("Is it legal?", "Is this legal?"));
    }
}

//! What the cache asks of the database holding it (SQLite beside the journal, or the
//! PostgreSQL store): the same tables and the same operations in both.

use std::collections::BTreeSet;

use super::index::{Namespace, Trim};
use super::{Entry, Stats};

/// A stored user turn that may answer a lookup.
pub(crate) struct Candidate {
    pub id: i64,
    pub query: String,
    pub vector: Vec<u8>,
}

/// An answer to store.
pub(crate) struct NewEntry<'a> {
    pub key: &'a str,
    pub namespace: &'a str,
    pub query: &'a str,
    pub vector: Vec<u8>,
    pub response: Vec<u8>,
    pub now: i64,
}

/// What one lookup reads, all of it from one snapshot of the database (see `index`).
pub(crate) trait Rows {
    fn namespace(&self, namespace: &str) -> Result<Namespace, String>;
    /// Every entry of `namespace` created after `oldest`.
    fn scan(&self, namespace: &str, oldest: i64) -> Result<Vec<Candidate>, String>;
    /// The entries among `ids` of `namespace` created after `oldest`.
    fn fetch(&self, namespace: &str, ids: &[i64], oldest: i64) -> Result<Vec<Candidate>, String>;
    /// The entries of `namespace` added or removed after the change `seq`.
    fn changes(&self, namespace: &str, seq: i64) -> Result<BTreeSet<i64>, String>;
    /// The vectors of the entries of `namespace` that exist now: those among `ids`, or all.
    fn vectors(
        &self,
        namespace: &str,
        ids: Option<&BTreeSet<i64>>,
    ) -> Result<Vec<(i64, Vec<u8>)>, String>;
}

/// The cache's tables in one database.
pub(crate) trait Tables: Send + Sync {
    /// Counts a lookup; the response of the entry stored under `key` after `oldest`, if
    /// any, marked used at `now` and counted as an exact hit.
    fn exact(&self, key: &str, oldest: i64, now: i64) -> Result<Option<(i64, Vec<u8>)>, String>;
    /// Runs `read` in one snapshot.
    fn read(&self, read: &mut dyn FnMut(&dyn Rows) -> Result<(), String>) -> Result<(), String>;
    /// The response of entry `id`, marked used at `now` and counted as a semantic hit.
    fn hit(&self, id: i64, now: i64) -> Result<Vec<u8>, String>;
    fn trim(&self, trim: &Trim) -> Result<(), String>;
    /// Stores `entry` in place of any under its key and evicts the least recently used past
    /// `max_entries`; trims the namespace's log when it has at most `index_above` entries.
    /// Returns the namespace as it was before that trim.
    fn store(
        &self,
        entry: NewEntry<'_>,
        max_entries: u64,
        index_above: u64,
    ) -> Result<Namespace, String>;
    fn stats(&self) -> Result<Stats, String>;
    /// The most recently used entries, newest first.
    fn list(&self, limit: usize) -> Result<Vec<Entry>, String>;
    /// Removes every entry, or those of one namespace, with their logs; returns how many.
    fn clear(&self, namespace: Option<&str>) -> Result<u64, String>;
    /// Removes one entry; whether it existed.
    fn remove(&self, id: i64) -> Result<bool, String>;
}

//! The cache's vector index kept in step with its store (SQLite, PostgreSQL), through
//! changes, restarts and other hosts.

use rusqlite::Connection;

use super::*;

#[allow(dead_code)]
#[path = "../../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

/// Unit vectors of 16 dimensions from a fixed xorshift sequence.
struct Vectors(u64);

impl Vectors {
    fn next(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..16)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// `of` moved a little.
    fn near(&mut self, of: &[f32]) -> Vec<f32> {
        let v: Vec<f32> = of
            .iter()
            .zip(self.next())
            .map(|(a, b)| a + 0.2 * b)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn keys(n: usize) -> Keys {
    Keys {
        exact: format!("key {n}"),
        namespace: "ns".into(),
        query: "the same question".into(),
    }
}

fn answer(n: usize) -> LlmOutcome {
    LlmOutcome::Completed {
        finish_reason: "stop".into(),
        input_tokens: 1,
        model: "test".into(),
        output_tokens: 1,
        text: format!("answer {n}"),
    }
}

fn settings(index_above: u64) -> CacheSettings {
    CacheSettings {
        threshold: -1.0,
        index_above,
        ..CacheSettings::default()
    }
}

fn nearest(cache: &Cache, query: &[f32], settings: &CacheSettings) -> Option<i64> {
    let hit = cache.semantic(&keys(usize::MAX), query, settings).unwrap();
    hit.map(|h| h.id)
}

/// The namespace "ns" as the cache's tables hold it, and how many of its changes are
/// logged.
fn state(cache: &Cache) -> (index::Namespace, usize) {
    let mut found = (index::Namespace::default(), 0);
    cache
        .tables
        .read(&mut |rows| {
            found = (rows.namespace("ns")?, rows.changes("ns", i64::MIN)?.len());
            Ok(())
        })
        .unwrap();
    found
}

/// Through adds, removals, merges and a second cache on the same store (another process,
/// or another host when `open(true)` gives it an index directory of its own), the index of
/// `first` (whose files are in `index_dir`) finds what an exact scan finds.
fn the_index_agrees_with_a_scan(open: &dyn Fn(bool) -> Cache, index_dir: &Path) {
    let (indexed, scanned) = (settings(4), settings(u64::MAX));
    let mut vectors = Vectors(0x9e37_79b9_7f4a_7c15);
    let mut stored = Vec::new();
    let first = open(false);
    for n in 0..60 {
        // Another process each time, writing every other entry.
        let cache = open(n % 4 == 1);
        let writer = if n % 2 == 0 { &first } else { &cache };
        let vector = vectors.next();
        writer
            .store(&keys(n), Some(&vector), &answer(n), &indexed)
            .unwrap();
        stored.push(vector);
        if n % 7 == 3 {
            let oldest = writer.list(usize::MAX).unwrap();
            let id = oldest.iter().map(|e| e.id).min().unwrap();
            assert!(writer.remove(id).unwrap());
        }
        let query = vectors.near(&stored[n / 2]);
        let expected = nearest(&first, &query, &scanned);
        assert_eq!(nearest(&first, &query, &indexed), expected, "step {n}");
        assert_eq!(nearest(&cache, &query, &indexed), expected, "step {n}");
    }
    let files: Vec<_> = std::fs::read_dir(index_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "one index file per namespace: {files:?}");
    assert!(files[0].starts_with("ns-") && files[0].ends_with(".usearch"));
    // Merged changes leave the log.
    let (_, logged) = state(&first);
    assert!(logged <= 8, "{logged} changes logged");

    first.clear(Some("ns")).unwrap();
    assert!(std::fs::read_dir(index_dir).unwrap().next().is_none());
    assert_eq!(nearest(&first, &stored[0], &indexed), None);
    assert_eq!(first.stats().unwrap().entries, 0);
}

#[test]
fn the_vector_index_agrees_with_a_scan_through_changes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llm-cache.db");
    the_index_agrees_with_a_scan(
        &|_| Cache::new(Some(&path)),
        &dir.path().join("llm-cache.db.index"),
    );
}

/// The same against a real PostgreSQL server (see `tests/e2e/cluster/postgres.rs`), with
/// hosts of separate index directories.
#[test]
fn in_postgres_the_vector_index_agrees_with_a_scan_across_hosts() {
    let server = postgres::Postgres::start();
    let store = baton_postgres::PgStore::open(&server.url()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (here, there) = (dir.path().join("here"), dir.path().join("there"));
    the_index_agrees_with_a_scan(
        &|other_host| {
            let index_dir = if other_host { &there } else { &here };
            Cache::in_postgres(store.database(), Some(index_dir.clone()))
        },
        &here,
    );
}

/// Hosts sharing a PostgreSQL store share answers: one stores, another finds it by either
/// tier, and the counters and listing are the store's.
#[test]
fn in_postgres_one_host_finds_what_another_stored() {
    let server = postgres::Postgres::start();
    let (a, b) = (
        baton_postgres::PgStore::open(&server.url()).unwrap(),
        baton_postgres::PgStore::open(&server.url()).unwrap(),
    );
    let (one, other) = (
        Cache::in_postgres(a.database(), None),
        Cache::in_postgres(b.database(), None),
    );
    let settings = CacheSettings {
        threshold: 0.9,
        ..CacheSettings::default()
    };
    let mut vectors = Vectors(11);
    let vector = vectors.next();
    assert_eq!(other.exact(&keys(1), &settings).unwrap(), None);
    one.store(&keys(1), Some(&vector), &answer(1), &settings)
        .unwrap();
    let exact = other.exact(&keys(1), &settings).unwrap().unwrap();
    assert_eq!((exact.tier, exact.outcome), (tier::EXACT, answer(1)));
    let near = other
        .semantic(&keys(2), &vectors.near(&vector), &settings)
        .unwrap()
        .unwrap();
    assert_eq!((near.tier, near.outcome), (tier::SEMANTIC, answer(1)));
    let far = vectors.next();
    assert_eq!(other.semantic(&keys(2), &far, &settings).unwrap(), None);
    let stats = one.stats().unwrap();
    assert_eq!(
        (
            stats.entries,
            stats.lookups,
            stats.exact_hits,
            stats.semantic_hits
        ),
        (1, 2, 1, 1)
    );
    let listed = other.list(10).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].query, "the same question");
    // Storing the same request again replaces the answer.
    one.store(&keys(1), Some(&vector), &answer(3), &settings)
        .unwrap();
    let exact = other.exact(&keys(1), &settings).unwrap().unwrap();
    assert_eq!(exact.outcome, answer(3));
    assert_eq!(other.stats().unwrap().entries, 1);
    // Eviction holds across hosts: past max_entries the least recently used go.
    let small = CacheSettings {
        max_entries: 2,
        ..settings.clone()
    };
    for n in 10..14 {
        other
            .store(&keys(n), Some(&vectors.next()), &answer(n), &small)
            .unwrap();
    }
    let kept: Vec<_> = one.list(10).unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(kept.len(), 2);
    assert!(other.remove(kept[0]).unwrap());
    assert_eq!(one.clear(None).unwrap(), 1);
    assert_eq!(other.stats().unwrap().entries, 0);
}

/// A store written before the vector index gets its namespace counts on first open.
#[test]
fn an_older_store_is_counted_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llm-cache.db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
             namespace TEXT NOT NULL, query TEXT NOT NULL, vector BLOB NOT NULL,
             response BLOB NOT NULL, created INTEGER NOT NULL, used INTEGER NOT NULL);
         INSERT INTO entries VALUES (1, 'a', 'ns', 'q', x'', x'', 0, 0);
         INSERT INTO entries VALUES (2, 'b', 'ns', 'q', x'', x'', 0, 0);",
    )
    .unwrap();
    drop(old);
    let cache = Cache::new(Some(&path));
    let mut vectors = Vectors(3);
    let settings = settings(2);
    cache
        .store(&keys(3), Some(&vectors.next()), &answer(3), &settings)
        .unwrap();
    assert_eq!(state(&cache).0.entries, 3);
    // Reopening does not count the entries again.
    drop(cache);
    let cache = Cache::new(Some(&path));
    assert_eq!(state(&cache).0.entries, 3);
    assert_eq!(cache.stats().unwrap().entries, 3);
}

/// A cache in memory keeps its index in memory.
#[test]
fn a_cache_in_memory_indexes_in_memory() {
    let cache = Cache::new(None);
    let mut vectors = Vectors(7);
    let stored: Vec<_> = (0..20).map(|_| vectors.next()).collect();
    for (n, vector) in stored.iter().enumerate() {
        cache
            .store(&keys(n), Some(vector), &answer(n), &settings(5))
            .unwrap();
    }
    for vector in &stored {
        let query = vectors.near(vector);
        assert_eq!(
            nearest(&cache, &query, &settings(5)),
            nearest(&cache, &query, &settings(u64::MAX))
        );
    }
}

//! The cache's vector index kept in step with SQLite, through changes and restarts.

use super::*;

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

/// Through adds, removals, merges and a second cache on the same file (another
/// process), the index finds what an exact scan finds.
#[test]
fn the_vector_index_agrees_with_a_scan_through_changes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llm-cache.db");
    let (indexed, scanned) = (settings(4), settings(u64::MAX));
    let mut vectors = Vectors(0x9e37_79b9_7f4a_7c15);
    let mut stored = Vec::new();
    let first = Cache::new(Some(&path));
    for n in 0..60 {
        // Another process each time, writing every other entry.
        let cache = Cache::new(Some(&path));
        let writer = if n % 2 == 0 { &first } else { &cache };
        let vector = vectors.next();
        writer
            .store(&keys(n), Some(&vector), &answer(n), &indexed)
            .unwrap();
        stored.push(vector);
        if n % 7 == 3 {
            let db = writer.db.lock().unwrap();
            let id: i64 = db
                .query_row("SELECT min(id) FROM entries", [], |r| r.get(0))
                .unwrap();
            drop(db);
            assert!(writer.remove(id).unwrap());
        }
        let query = vectors.near(&stored[n / 2]);
        let expected = nearest(&first, &query, &scanned);
        assert_eq!(nearest(&first, &query, &indexed), expected, "step {n}");
        assert_eq!(nearest(&cache, &query, &indexed), expected, "step {n}");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("llm-cache.db.index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "one index file per namespace: {files:?}");
    assert!(files[0].starts_with("ns-") && files[0].ends_with(".usearch"));
    // Merged changes leave the log.
    let logged: i64 = first
        .db
        .lock()
        .unwrap()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    assert!(logged <= 8, "{logged} changes logged");

    first.clear(Some("ns")).unwrap();
    assert!(
        std::fs::read_dir(dir.path().join("llm-cache.db.index"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(nearest(&first, &stored[0], &indexed), None);
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
    let state = Namespace::of(&cache.db.lock().unwrap(), "ns").unwrap();
    assert_eq!(state.entries, 3);
    // Reopening does not count the entries again.
    drop(cache);
    let cache = Cache::new(Some(&path));
    let state = Namespace::of(&cache.db.lock().unwrap(), "ns").unwrap();
    assert_eq!(state.entries, 3);
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

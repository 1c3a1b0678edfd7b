//! The vector index of large namespaces: an HNSW graph (usearch, f16, cosine) per namespace
//! with more entries than `index_above`, kept in step with the database (SQLite or
//! PostgreSQL) without rebuilding it.
//!
//! The database stays the truth. Triggers log every entry added to or removed from a namespace in
//! `changes` (`seq` grows by one per change) and keep `namespaces.head`, the last change. An
//! index reflects the namespace as of some `seq`; it is saved as
//! `<index dir>/<namespace>-<seq>.usearch` and memory-mapped by the next process. A lookup
//! searches the index, leaving out every entry changed since its `seq`, and scans the vectors
//! of entries added since then exactly. When more than `merge_at` changes have gathered, they
//! are merged into the graph, which is saved under the new `seq`; the changes it now holds are
//! then deleted from the log (`namespaces.trimmed` records how far), and an index older than
//! that is never used again. With no usable index at all (the first time a namespace grows
//! past `index_above`, or the files were removed), the index is built from the entries, in
//! parallel.
//!
//! Every step reads inside one snapshot of the database, taken before the directory is
//! listed, so a file written and a log trimmed by another process at the same time can never
//! make a lookup miss a change. (In PostgreSQL, the changes of one namespace also commit in
//! the order of their `seq`: see the store's migration V3.)

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::super::embedding::from_bytes;
use super::tables::Rows;

/// How many nearest entries the graph offers as candidates.
const CANDIDATES: usize = 8;
/// The graph's parameters, chosen on the benchmark in BENCHMARKS.md ("Semantic cache index").
const CONNECTIVITY: usize = 16;
const EXPANSION_ADD: usize = 64;
const EXPANSION_SEARCH: usize = 96;

/// An HNSW graph of unit vectors of one dimension, searched by cosine similarity.
pub struct VectorIndex {
    graph: Index,
}

impl VectorIndex {
    /// An empty index for vectors of `dimensions`, with room for `capacity`.
    pub fn new(dimensions: usize, capacity: usize) -> Result<Self, String> {
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F16,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        let graph = Index::new(&options).map_err(|e| format!("a vector index: {e}"))?;
        let index = Self { graph };
        index.reserve(capacity)?;
        Ok(index)
    }

    /// The index in `path`: memory-mapped when `view`, else read into memory (to change it).
    pub fn open(path: &Path, view: bool) -> Result<Self, String> {
        let name = path.to_string_lossy();
        let graph = match view {
            true => Index::restore_view(&name),
            false => Index::restore(&name),
        }
        .map_err(|e| format!("cannot read the vector index {name}: {e}"))?;
        graph.change_expansion_search(EXPANSION_SEARCH);
        Ok(Self { graph })
    }

    /// Writes the index to `path`, through a temporary file so no reader sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let fail = |e: &dyn std::fmt::Display| {
            format!("cannot write the vector index {}: {e}", path.display())
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let temporary = tempfile::Builder::new()
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| fail(&e))?;
        self.graph
            .save(&temporary.path().to_string_lossy())
            .map_err(|e| fail(&e))?;
        temporary.persist(path).map_err(|e| fail(&e))?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.graph.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dimensions(&self) -> usize {
        self.graph.dimensions()
    }

    /// Adds `vectors` (by key), on every core. Vectors of another dimension are left out
    /// (usearch would read past their end).
    pub fn add_all(&self, vectors: &[(u64, Vec<f32>)]) -> Result<(), String> {
        let vectors: Vec<_> = vectors
            .iter()
            .filter(|(_, v)| v.len() == self.dimensions())
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.graph
            .reserve_capacity_and_threads(self.len() + vectors.len(), threads)
            .map_err(|e| format!("a vector index: {e}"))?;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    let vectors = &vectors;
                    scope.spawn(move || {
                        vectors
                            .iter()
                            .skip(first)
                            .step_by(threads)
                            .try_for_each(|(key, vector)| self.graph.add(*key, vector))
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    .map_err(|e| format!("a vector index: {e}"))
            })
        })
    }

    pub fn remove(&self, key: u64) -> Result<(), String> {
        if self.graph.contains(key) {
            self.graph
                .remove(key)
                .map_err(|e| format!("a vector index: {e}"))?;
        }
        Ok(())
    }

    /// The `count` keys nearest to `query` by cosine similarity, most similar first, among
    /// those `keep` accepts. The similarities are approximate (the graph holds f16).
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>, String> {
        if query.len() != self.dimensions() || self.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .graph
            .filtered_search(query, count, keep)
            .map_err(|e| format!("a vector index search: {e}"))?;
        Ok(found
            .keys
            .into_iter()
            .zip(found.distances)
            .map(|(key, distance)| (key, 1.0 - distance))
            .collect())
    }

    fn reserve(&self, capacity: usize) -> Result<(), String> {
        self.graph
            .reserve(capacity.max(1))
            .map_err(|e| format!("a vector index: {e}"))
    }
}

/// What the database says of a namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespace {
    pub entries: u64,
    /// The last change to it.
    pub head: i64,
    /// Changes up to here are no longer logged: an index older than this is stale.
    pub trimmed: i64,
}

/// The log up to `seq` is merged into an index on disk: what the caller trims once its
/// snapshot is over.
#[must_use]
pub struct Trim {
    pub namespace: String,
    pub through: i64,
}

/// An index held by this process, as of the change `seq`.
struct Held {
    seq: i64,
    index: VectorIndex,
    /// Memory-mapped from its file (read-only) rather than read into memory.
    viewed: bool,
}

/// The indexes of the namespaces past `index_above`, on disk in `dir` (or only in memory,
/// for a cache in memory).
pub struct Indexes {
    dir: Option<PathBuf>,
    held: Mutex<HashMap<String, Held>>,
}

impl Indexes {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            held: Mutex::default(),
        }
    }

    /// The ids of the (at most `CANDIDATES`) entries of `namespace` nearest to `vector`, by
    /// approximate similarity, and a trim for the caller to apply after the snapshot `db` is
    /// in.
    pub fn candidates(
        &self,
        db: &dyn Rows,
        namespace: &str,
        state: Namespace,
        vector: &[f32],
        merge_at: u64,
    ) -> Result<(Vec<i64>, Option<Trim>), String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = held.remove(namespace).filter(|h| h.seq >= state.trimmed);
        // A newer file, merged by another process, replaces what this one holds.
        if let Some((seq, path)) = self.newest_file(namespace, state.trimmed)?
            && current.as_ref().is_none_or(|h| h.seq < seq)
        {
            current = Some(Held {
                seq,
                index: VectorIndex::open(&path, true)?,
                viewed: true,
            });
        }
        let since = current.as_ref().map_or(i64::MIN, |h| h.seq);
        let changes = Changes {
            touched: db.changes(namespace, since)?,
        };
        let (current, changes, trim) = match current {
            Some(held) if changes.touched.len() as u64 <= merge_at => (held, changes, None),
            held => {
                let merged = self.merge(db, namespace, held, &changes, state.head, vector.len())?;
                let trim = Trim {
                    namespace: namespace.into(),
                    through: state.head,
                };
                (merged, Changes::default(), Some(trim))
            }
        };
        let touched = &changes.touched;
        let mut found: Vec<(i64, f32)> = current
            .index
            .search(vector, CANDIDATES, |key| !touched.contains(&(key as i64)))?
            .into_iter()
            .map(|(key, similarity)| (key as i64, similarity))
            .collect();
        for (id, stored) in changes.added_vectors(db, namespace)? {
            if stored.len() == vector.len() {
                found.push((id, super::super::embedding::cosine(vector, &stored)));
            }
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        held.insert(namespace.into(), current);
        Ok((
            found
                .into_iter()
                .take(CANDIDATES)
                .map(|(id, _)| id)
                .collect(),
            trim,
        ))
    }

    /// Forgets the indexes of `namespace` (or all), on disk too.
    pub fn remove(&self, namespace: Option<&str>) -> Result<(), String> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match namespace {
            Some(namespace) => drop(held.remove(namespace)),
            None => held.clear(),
        }
        for (file_namespace, _, path) in self.files()? {
            if namespace.is_none_or(|n| n == file_namespace) {
                remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// `current` (or a new index) with `changes` merged in, as of `head`; saved to disk.
    fn merge(
        &self,
        db: &dyn Rows,
        namespace: &str,
        current: Option<Held>,
        changes: &Changes,
        head: i64,
        dimensions: usize,
    ) -> Result<Held, String> {
        // A viewed index is read-only: merging needs its file read into memory. Should another
        // process have replaced that file meanwhile, the index is built anew.
        let current = current.and_then(|held| match held.viewed {
            true => VectorIndex::open(&self.path(namespace, held.seq), false).ok(),
            false => Some(held.index),
        });
        let (index, added) = match current {
            Some(index) => {
                for id in &changes.touched {
                    index.remove(*id as u64)?;
                }
                (index, changes.added_vectors(db, namespace)?)
            }
            None => {
                let all = vectors(db, namespace, None)?;
                tracing::info!(
                    "indexing {} cached answers of namespace {namespace}",
                    all.len()
                );
                (VectorIndex::new(dimensions, all.len())?, all)
            }
        };
        let added: Vec<_> = added.into_iter().map(|(id, v)| (id as u64, v)).collect();
        index.add_all(&added)?;
        if self.dir.is_some() {
            let path = self.path(namespace, head);
            index.save(&path)?;
            for (file_namespace, seq, older) in self.files()? {
                if file_namespace == namespace && seq < head {
                    remove_file(&older)?;
                }
            }
        }
        Ok(Held {
            seq: head,
            index,
            viewed: false,
        })
    }

    /// The newest index file of `namespace` that is not stale.
    fn newest_file(&self, namespace: &str, trimmed: i64) -> Result<Option<(i64, PathBuf)>, String> {
        Ok(self
            .files()?
            .into_iter()
            .filter(|(n, seq, _)| n == namespace && *seq >= trimmed)
            .max_by_key(|(_, seq, _)| *seq)
            .map(|(_, seq, path)| (seq, path)))
    }

    /// Every index file: namespace, seq and path.
    fn files(&self) -> Result<Vec<(String, i64, PathBuf)>, String> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
        };
        Ok(listing
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (namespace, seq) = name.strip_suffix(".usearch")?.rsplit_once('-')?;
                Some((namespace.to_owned(), seq.parse().ok()?, entry.path()))
            })
            .collect())
    }

    fn path(&self, namespace: &str, seq: i64) -> PathBuf {
        let dir = self.dir.as_deref().unwrap_or(Path::new("."));
        dir.join(format!("{namespace}-{seq}.usearch"))
    }
}

/// The entries of a namespace changed since an index was saved.
#[derive(Default)]
struct Changes {
    /// Every entry added or removed.
    touched: BTreeSet<i64>,
}

impl Changes {
    /// The vectors of the touched entries that exist now (an id SQLite reused after a removal
    /// is a new entry).
    fn added_vectors(
        &self,
        db: &dyn Rows,
        namespace: &str,
    ) -> Result<Vec<(i64, Vec<f32>)>, String> {
        vectors(db, namespace, Some(&self.touched))
    }
}

/// The vectors of entries of `namespace`: those among `ids`, or all.
fn vectors(
    db: &dyn Rows,
    namespace: &str,
    ids: Option<&BTreeSet<i64>>,
) -> Result<Vec<(i64, Vec<f32>)>, String> {
    Ok(db
        .vectors(namespace, ids)?
        .into_iter()
        .map(|(id, vector)| (id, from_bytes(&vector).collect()))
        .collect())
}

fn remove_file(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

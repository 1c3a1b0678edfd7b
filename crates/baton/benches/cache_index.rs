//! The semantic cache's vector index at scale.
//!
//! - `index/search_N`: one lookup in the HNSW index (`VectorIndex`, usearch, f16, cosine) of
//!   N vectors, against `index/scan_N`, an exact scan of the same N f32 vectors in native
//!   code. Before measuring, it prints how long building the index took and its recall@1
//!   against the exact scan.
//! - `cache/semantic_index_100000` / `cache/semantic_scan_100000`: `Cache::semantic` on a
//!   namespace of 100,000 stored answers (SQLite in memory), through the index and by a scan:
//!   the lookup after the question is embedded, candidates fetched and checked, the answer
//!   decompressed.
//!
//! The vectors are 384-dimensional like all-MiniLM-L6-v2's and clustered as questions are: N /
//! 100 topics, each vector its topic plus noise (cosine about 0.55 within a topic, 0 across).
//! Recall is measured for three kinds of query: a new question on a known topic, a paraphrase
//! of a stored question (what the cache serves), and a uniformly random vector (near nothing,
//! the hardest case for a graph and one the cache never serves).
//!
//! `BATON_INDEX_SIZES=10000,100000,1000000` sets the sizes (default 10,000 and 100,000).
//! Run with `cargo bench -p baton --bench cache_index`.

use std::time::Instant;

use baton::journal::event::LlmOutcome;
use baton::llm::cache::{Cache, Keys, VectorIndex};
use baton::policy::llm::CacheSettings;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const DIMENSIONS: usize = 384;
const RECALL_QUERIES: usize = 300;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn random(rng: &mut StdRng) -> Vec<f32> {
    unit((0..DIMENSIONS).map(|_| rng.random::<f32>() - 0.5).collect())
}

/// `of` plus noise of `weight`.
fn near(rng: &mut StdRng, of: &[f32], weight: f32) -> Vec<f32> {
    let noise = random(rng);
    unit(of.iter().zip(noise).map(|(a, b)| a + weight * b).collect())
}

struct Data {
    topics: Vec<Vec<f32>>,
    vectors: Vec<Vec<f32>>,
}

impl Data {
    fn new(rng: &mut StdRng, n: usize) -> Self {
        let topics: Vec<_> = (0..(n / 100).max(10)).map(|_| random(rng)).collect();
        let vectors = (0..n)
            .map(|_| {
                let topic = &topics[rng.random_range(0..topics.len())];
                near(rng, topic, 0.9)
            })
            .collect();
        Self { topics, vectors }
    }

    /// The queries of each kind.
    fn queries(&self, rng: &mut StdRng) -> Vec<(&'static str, Vec<Vec<f32>>)> {
        let fresh = (0..RECALL_QUERIES)
            .map(|_| {
                let topic = &self.topics[rng.random_range(0..self.topics.len())];
                near(rng, topic, 0.9)
            })
            .collect();
        let paraphrases = (0..RECALL_QUERIES)
            .map(|_| {
                let stored = &self.vectors[rng.random_range(0..self.vectors.len())];
                near(rng, stored, 0.5)
            })
            .collect();
        let uniform = (0..RECALL_QUERIES).map(|_| random(rng)).collect();
        vec![
            ("new question on a known topic", fresh),
            ("paraphrase of a stored question", paraphrases),
            ("uniformly random", uniform),
        ]
    }

    /// The key of the nearest vector, by an exact scan.
    fn nearest(&self, query: &[f32]) -> u64 {
        let mut best = (0, f32::MIN);
        for (key, vector) in self.vectors.iter().enumerate() {
            let similarity = dot(vector, query);
            if similarity > best.1 {
                best = (key, similarity);
            }
        }
        best.0 as u64
    }
}

/// A dot product the compiler vectorizes: eight independent sums.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for ((sum, a), b) in sums.iter_mut().zip(a).zip(b) {
            *sum += a * b;
        }
    }
    sums.iter().sum()
}

fn sizes() -> Vec<usize> {
    std::env::var("BATON_INDEX_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BATON_INDEX_SIZES: sizes, comma-separated")
        })
        .collect()
}

fn index(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    let mut rng = StdRng::seed_from_u64(384);
    for n in sizes() {
        let data = Data::new(&mut rng, n);
        let keyed: Vec<_> = (0..n as u64).zip(data.vectors.iter().cloned()).collect();
        let index = VectorIndex::new(DIMENSIONS, n).unwrap();
        let started = Instant::now();
        index.add_all(&keyed).unwrap();
        let took = started.elapsed().as_secs_f64();
        eprintln!(
            "index of {n}: built in {took:.1} s ({:.0} vectors/s on all cores)",
            n as f64 / took
        );
        let queries = data.queries(&mut rng);
        for (kind, queries) in &queries {
            let found = queries
                .iter()
                .filter(|q| {
                    let top = index.search(q, 1, |_| true).unwrap();
                    top.first().map(|(key, _)| *key) == Some(data.nearest(q))
                })
                .count();
            eprintln!(
                "index of {n}: recall@1 {:.3} for a {kind}",
                found as f64 / queries.len() as f64
            );
        }
        let lookups: Vec<_> = queries[..2].iter().flat_map(|(_, q)| q).collect();
        let mut next = 0;
        group.bench_function(format!("search_{n}"), |b| {
            b.iter(|| {
                next = (next + 1) % lookups.len();
                index.search(lookups[next], 1, |_| true).unwrap()
            })
        });
        group.bench_function(format!("scan_{n}"), |b| {
            b.iter(|| {
                next = (next + 1) % lookups.len();
                data.nearest(lookups[next])
            })
        });
    }
    group.finish();
}

/// `Cache::semantic` on a namespace of 100,000 answers.
fn cache(c: &mut Criterion) {
    const N: usize = 100_000;
    let mut group = c.benchmark_group("cache");
    group.sample_size(20);
    let mut rng = StdRng::seed_from_u64(100);
    let data = Data::new(&mut rng, N);
    let indexed = CacheSettings {
        max_entries: N as u64,
        ..CacheSettings::default()
    };
    let scanned = CacheSettings {
        index_above: u64::MAX,
        ..indexed.clone()
    };
    let keys = |n: usize| Keys {
        exact: format!("question {n}"),
        namespace: "bench".into(),
        query: "How long does the delivery take?".into(),
    };
    let answer = LlmOutcome::Completed {
        finish_reason: "stop".into(),
        input_tokens: 12,
        model: "bench".into(),
        output_tokens: 40,
        text: "Delivery takes three to five working days. ".repeat(8),
    };
    let cache = Cache::new(None);
    let started = Instant::now();
    for (n, vector) in data.vectors.iter().enumerate() {
        cache
            .store(&keys(n), Some(vector), &answer, &indexed)
            .unwrap();
    }
    eprintln!(
        "cache of {N}: stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let paraphrases: Vec<_> = (0..100)
        .map(|i| near(&mut rng, &data.vectors[i * 997], 0.3))
        .collect();
    let asking = keys(usize::MAX);
    let started = Instant::now();
    assert!(
        cache
            .semantic(&asking, &paraphrases[0], &indexed)
            .unwrap()
            .is_some()
    );
    eprintln!(
        "cache of {N}: first lookup, building the index, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (name, settings) in [("index", &indexed), ("scan", &scanned)] {
        let mut next = 0;
        group.bench_function(format!("semantic_{name}_{N}"), |b| {
            b.iter(|| {
                next = (next + 1) % paraphrases.len();
                let hit = cache
                    .semantic(&asking, &paraphrases[next], settings)
                    .unwrap();
                assert!(hit.is_some());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, index, cache);
criterion_main!(benches);

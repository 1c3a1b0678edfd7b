//! The semantic cache's correctness benchmark: on the labelled pairs of
//! `data/cache-pairs.jsonl` (see `data/make_cache_pairs.py`), how many paraphrases each
//! threshold serves from the cache (true hits) and how many near-misses it would wrongly
//! serve (false hits), by similarity alone and with the second check (`same_facts`). Prints
//! a table and the lowest threshold whose false-hit rate is at most 1%.
//!
//! Run with `cargo xtask models && BATON_MODELS=target/models cargo bench -p baton --bench
//! cache_eval` (or as part of `cargo xtask bench`).

use baton::llm::Llm;
use baton::llm::cache::same_facts;
use baton::llm::embedding::cosine;
use baton::policy::Policy;
use serde::Deserialize;

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    hit: bool,
    kind: String,
}

fn main() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/cache-pairs.jsonl"
    );
    let pairs: Vec<Pair> = std::fs::read_to_string(data)
        .expect("the evaluation set")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a pair"))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let llm = Llm::new(Policy::builtin().llm(), &baton_llm::Stores::Memory);
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    let vectors = rt
        .block_on(llm.embed("all-minilm-l6-v2", &texts))
        .expect("the embedding model (run `cargo xtask models`)");
    let scored: Vec<(f32, bool, &Pair)> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let similarity = cosine(&vectors[2 * i], &vectors[2 * i + 1]);
            (similarity, same_facts(&p.a, &p.b), p)
        })
        .collect();
    let positives = scored.iter().filter(|(_, _, p)| p.hit).count() as f64;
    let negatives = scored.len() as f64 - positives;
    println!(
        "{} pairs: {positives} paraphrases, {negatives} near-misses",
        scored.len()
    );
    println!("threshold  true hits  false hits | with the second check: true hits  false hits");
    let mut chosen = None;
    for step in 0..=30 {
        let t = 0.70 + step as f32 * 0.01;
        let rate = |checked: bool, hit: bool| {
            let n = scored
                .iter()
                .filter(|(s, facts, p)| p.hit == hit && *s >= t && (!checked || *facts))
                .count() as f64;
            n * 100.0 / if hit { positives } else { negatives }
        };
        let (true_hits, false_hits) = (rate(true, true), rate(true, false));
        println!(
            "   {t:.2}      {:5.1}%     {:5.1}%   |                        {true_hits:5.1}%      {false_hits:5.1}%",
            rate(false, true),
            rate(false, false),
        );
        if chosen.is_none() && false_hits <= 1.0 {
            chosen = Some((t, true_hits, false_hits));
        }
    }
    if let Some((t, true_hits, false_hits)) = chosen {
        println!(
            "lowest threshold with at most 1% false hits (with the second check): {t:.2} \
             ({true_hits:.1}% true hits, {false_hits:.1}% false hits)"
        );
    }
    println!("near-misses that pass the second check, by kind (similarity):");
    for (s, facts, p) in &scored {
        if !p.hit && *facts {
            println!("  {:<10} {s:.3}  {:?} / {:?}", p.kind, p.a, p.b);
        }
    }
}

//! `baton cache eval FILE.jsonl`: how the completion cache would answer a labelled set of
//! question pairs, so its threshold can be tuned on a user's own traffic.
//!
//! Each line is `{"a": TEXT, "b": TEXT, "hit": true|false}` (and optionally `"kind"`): the
//! cache first answers `a`, then is asked `b`; `hit` says whether `b` should be served `a`'s
//! answer. Every pair goes through the real lookups (exact tier, embedding, semantic tier
//! with its second check) in a cache of its own, under the policy's `[cache]` settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton::Host;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use super::Failure;

#[derive(Debug, Args)]
pub struct CacheEvalArgs {
    /// The labelled pairs, one JSON object per line
    file: PathBuf,
    /// Judge at this similarity threshold rather than the policy's
    #[arg(long, value_name = "0..1")]
    threshold: Option<f32>,
    /// Also print the rates at every threshold from 0.70 to 0.99
    #[arg(long)]
    sweep: bool,
    /// Print up to N pairs the cache judged wrongly
    #[arg(long, value_name = "N", default_value_t = 0)]
    errors: usize,
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    a: String,
    b: String,
    hit: bool,
    #[serde(default)]
    kind: Option<String>,
}

/// A pair and how the cache answered it: the similarity it was served at, or `None` for a
/// miss (at any threshold, the second check or an empty question having refused it).
struct Judged {
    pair: Pair,
    served_at: Option<f32>,
}

/// How a set of trials went at one threshold.
struct Rates {
    threshold: f32,
    true_hits: Rate,
    false_hits: Rate,
}

/// `k` of `n`, with its 95% Wilson score interval.
#[derive(Clone, Copy)]
struct Rate {
    k: usize,
    n: usize,
}

impl Rate {
    fn share(self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.k as f64 / self.n as f64
        }
    }

    /// The 95% Wilson score interval: unlike the normal approximation it stays within 0..1
    /// and is honest at 0 of n, which is where a false-hit rate should be.
    fn interval(self) -> (f64, f64) {
        if self.n == 0 {
            return (0.0, 1.0);
        }
        let (n, p, z) = (self.n as f64, self.share(), 1.959_963_984_540_054_f64);
        let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }

    fn text(self) -> String {
        if self.n == 0 {
            return "no pairs of this kind".into();
        }
        let (low, high) = self.interval();
        format!(
            "{:5.1}% ({} of {}; 95% CI {:.1}–{:.1}%)",
            self.share() * 100.0,
            self.k,
            self.n,
            low * 100.0,
            high * 100.0
        )
    }

    fn json(self) -> serde_json::Value {
        let (low, high) = self.interval();
        serde_json::json!({
            "count": self.k, "of": self.n, "rate": self.share(), "ci95": [low, high],
        })
    }
}

fn rates<'a>(judged: impl Iterator<Item = &'a Judged> + Clone, threshold: f32) -> Rates {
    let count = |hit: bool| {
        let of_kind = judged.clone().filter(|j| j.pair.hit == hit);
        Rate {
            k: of_kind
                .clone()
                .filter(|j| j.served_at.is_some_and(|s| s >= threshold))
                .count(),
            n: of_kind.count(),
        }
    };
    Rates {
        threshold,
        true_hits: count(true),
        false_hits: count(false),
    }
}

pub async fn run(host: &Host, args: CacheEvalArgs) -> Result<(), Failure> {
    let pairs = read_pairs(&args.file)?;
    let mut settings = host.cache_settings().clone();
    let threshold = match args.threshold {
        Some(t) if !(0.0..=1.0).contains(&t) => {
            return Err(Failure::Usage(format!(
                "--threshold {t} is not a similarity: give a number from 0 to 1"
            )));
        }
        Some(t) => t,
        None => settings.threshold,
    };
    // Trials run with no threshold, and each hit keeps its similarity: a pair's cache holds
    // one entry, so it is served at threshold t exactly when that similarity reaches t.
    settings.threshold = f32::MIN;
    settings.semantic = true;
    let bar = progress(pairs.len(), args.json);
    let mut judged = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let hit = host.cache_trial(&settings, &pair.a, &pair.b).await?;
        judged.push(Judged {
            served_at: hit.map(|h| h.similarity),
            pair,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    let overall = rates(judged.iter(), threshold);
    let mut kinds: BTreeMap<&str, Vec<&Judged>> = BTreeMap::new();
    for j in &judged {
        if let Some(kind) = &j.pair.kind {
            kinds.entry(kind).or_default().push(j);
        }
    }
    let by_kind: Vec<(&str, Rates)> = kinds
        .iter()
        .map(|(kind, js)| (*kind, rates(js.iter().copied(), threshold)))
        .collect();
    let sweep: Vec<Rates> = if args.sweep {
        (70..100)
            .map(|t| rates(judged.iter(), t as f32 / 100.0))
            .collect()
    } else {
        Vec::new()
    };
    let wrong: Vec<&Judged> = judged
        .iter()
        .filter(|j| j.pair.hit != j.served_at.is_some_and(|s| s >= threshold))
        .take(args.errors)
        .collect();

    if args.json {
        super::print_json(&serde_json::json!({
            "pairs": judged.len(),
            "threshold": threshold,
            "embedding_model": settings.embedding_model,
            "true_hits": overall.true_hits.json(),
            "false_hits": overall.false_hits.json(),
            "kinds": by_kind.iter().map(|(kind, r)| (kind.to_string(), serde_json::json!({
                "true_hits": r.true_hits.json(), "false_hits": r.false_hits.json(),
            }))).collect::<serde_json::Map<_, _>>(),
            "sweep": sweep.iter().map(|r| serde_json::json!({
                "threshold": r.threshold,
                "true_hits": r.true_hits.json(),
                "false_hits": r.false_hits.json(),
            })).collect::<Vec<_>>(),
            "errors": wrong.iter().map(|j| serde_json::json!({
                "a": j.pair.a, "b": j.pair.b, "hit": j.pair.hit, "similarity": j.served_at,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!(
        "{} pairs from {}: {} should hit, {} should not (threshold {threshold:.2}, embedding \
         model {})",
        judged.len(),
        args.file.display(),
        overall.true_hits.n,
        overall.false_hits.n,
        settings.embedding_model
    );
    println!("true hits   {}", overall.true_hits.text());
    println!("false hits  {}", overall.false_hits.text());
    for (kind, r) in &by_kind {
        let rate = if r.true_hits.n > 0 {
            format!("true hits {}", r.true_hits.text())
        } else {
            format!("false hits {}", r.false_hits.text())
        };
        println!("  {kind:<14} {rate}");
    }
    if !sweep.is_empty() {
        println!("threshold  true hits  false hits");
        for r in &sweep {
            println!(
                "     {:.2}     {:5.1}%      {:5.1}%",
                r.threshold,
                r.true_hits.share() * 100.0,
                r.false_hits.share() * 100.0
            );
        }
        match sweep.iter().find(|r| r.false_hits.k == 0) {
            Some(r) => println!(
                "lowest threshold with no false hits: {:.2} ({:.1}% true hits)",
                r.threshold,
                r.true_hits.share() * 100.0
            ),
            None => println!("every threshold up to 0.99 serves some false hits"),
        }
    }
    for j in wrong {
        let similarity = j
            .served_at
            .map_or("refused by the second check".into(), |s| format!("{s:.3}"));
        let verdict = if j.pair.hit { "missed   " } else { "false hit" };
        println!("{verdict} {similarity}  {:?} / {:?}", j.pair.a, j.pair.b);
    }
    Ok(())
}

/// The pairs of `file`, or a one-line error naming the first line that is not a pair.
fn read_pairs(file: &Path) -> Result<Vec<Pair>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let pairs = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Failure::Usage(format!(
                    "{} line {}: {e}; each line is {{\"a\": TEXT, \"b\": TEXT, \"hit\": \
                     true|false}}, optionally with \"kind\"",
                    file.display(),
                    i + 1
                ))
            })
        })
        .collect::<Result<Vec<Pair>, _>>()?;
    if pairs.is_empty() {
        return Err(Failure::Usage(format!(
            "{} holds no pairs: give one {{\"a\": TEXT, \"b\": TEXT, \"hit\": true|false}} \
             per line",
            file.display()
        )));
    }
    Ok(pairs)
}

/// A bar on standard error for sets that take a while (hidden when it is not a terminal).
fn progress(len: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pairs, {eta} left")
            .expect("a valid template"),
    );
    bar
}

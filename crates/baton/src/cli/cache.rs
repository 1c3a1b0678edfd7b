//! `baton cache`: what the completion cache holds, and removing entries.

use baton::{Error, Host};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, size, and hit rates per tier
    Stats {
        /// Print the figures as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the most recently used entries
    Ls {
        /// How many
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Remove every entry, or those of one namespace
    Clear {
        /// A namespace, as `baton cache ls` shows it
        #[arg(long, value_name = "HEX")]
        namespace: Option<String>,
    },
    /// Remove one entry
    Rm {
        /// The entry's id
        id: i64,
    },
    /// Run a labelled set of question pairs through the cache: true-hit and false-hit rates
    Eval(super::cache_eval::CacheEvalArgs),
}

pub fn run(host: &Host, command: CacheCommand) -> Result<(), Error> {
    let cache = host.cache();
    let failed = |e: String| Error::Cache(e);
    match command {
        CacheCommand::Stats { json } => {
            let s = cache.stats().map_err(failed)?;
            let rate = |hits: u64| match s.lookups {
                0 => 0.0,
                n => hits as f64 * 100.0 / n as f64,
            };
            if json {
                super::print_json(&serde_json::json!({
                    "entries": s.entries,
                    "namespaces": s.namespaces,
                    "bytes": s.bytes,
                    "lookups": s.lookups,
                    "exact_hits": s.exact_hits,
                    "semantic_hits": s.semantic_hits,
                }));
            } else {
                println!(
                    "entries        {} in {} namespaces, {} compressed",
                    s.entries,
                    s.namespaces,
                    baton::limits::size(s.bytes)
                );
                println!("lookups        {}", s.lookups);
                println!(
                    "exact hits     {} ({:.1}%)",
                    s.exact_hits,
                    rate(s.exact_hits)
                );
                println!(
                    "semantic hits  {} ({:.1}%)",
                    s.semantic_hits,
                    rate(s.semantic_hits)
                );
            }
        }
        CacheCommand::Ls { limit } => {
            for e in cache.list(limit).map_err(failed)? {
                println!(
                    "{:>6}  {}  {:>8}  {}",
                    e.id,
                    e.namespace,
                    baton::limits::size(e.bytes),
                    baton::text::truncate(&e.query.replace('\n', " "), 60)
                );
            }
        }
        CacheCommand::Clear { namespace } => {
            let removed = cache.clear(namespace.as_deref()).map_err(failed)?;
            println!("removed {removed} entries");
        }
        CacheCommand::Rm { id } => {
            if !cache.remove(id).map_err(failed)? {
                return Err(Error::Cache(format!(
                    "there is no entry {id}; `baton cache ls` lists them"
                )));
            }
            println!("removed entry {id}");
        }
        CacheCommand::Eval(_) => unreachable!("`baton cache eval` is dispatched before"),
    }
    Ok(())
}

//! The journal: typed events in hash chains, stored in SQLite, exported as bundles.
//! The format is documented in docs/journal.md.

pub mod chain;
pub mod event;
pub mod store;
pub mod tlog;

use std::collections::BTreeMap;

use chain::ChainBreak;
use event::{Event, EventKind, RUN_CHAIN};

/// A run whose every chain verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRun {
    /// Hash of the run chain's last event.
    pub root: String,
    pub events: usize,
    /// Whether the run chain ends with `run_ended` (a killed run does not).
    pub complete: bool,
}

/// Verifies every chain of a run (events as `Journal::events` returns them) and that each
/// step chain is exactly as long, and ends at exactly the hash, that the run chain sealed.
pub fn verify_run(events: &[Event]) -> Result<VerifiedRun, ChainBreak> {
    let mut chains: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for event in events {
        chains.entry(&event.chain).or_default().push(event.clone());
    }
    let run_chain = chains.remove(RUN_CHAIN).unwrap_or_default();
    let root = chain::verify(RUN_CHAIN, &run_chain)?;
    let mut roots = BTreeMap::new();
    for (name, chain) in &chains {
        roots.insert(*name, (chain::verify(name, chain)?, chain.len() as u64));
    }
    // Step chains are sealed by the run chain; the chains of calls a step made to other
    // tools by the `tool_call` events of the caller's chain.
    let seals = run_chain
        .iter()
        .chain(chains.values().flatten())
        .filter_map(|e| match &e.kind {
            EventKind::StepEnded { step, root, events } => {
                Some((event::step_chain(step), root, events))
            }
            EventKind::ToolCall {
                chain,
                root,
                events,
                ..
            } if !chain.is_empty() => Some((chain.clone(), root, events)),
            _ => None,
        });
    for (name, sealed_root, sealed_count) in seals {
        let broken = |problem: String| ChainBreak {
            chain: name.clone(),
            seq: 0,
            problem,
        };
        match roots.get(name.as_str()) {
            None => return Err(broken("the chain is missing".into())),
            Some((_, count)) if count != sealed_count => {
                return Err(ChainBreak {
                    chain: name.clone(),
                    seq: (*count).min(*sealed_count),
                    problem: format!(
                        "it has {count} events but the run chain sealed it with {sealed_count} \
                         (truncated or extended)"
                    ),
                });
            }
            Some((found, _)) if found != sealed_root => {
                return Err(broken(format!(
                    "its root {found} is not the root the run chain sealed ({sealed_root})"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(VerifiedRun {
        root,
        events: events.len(),
        complete: run_chain
            .last()
            .is_some_and(|e| matches!(e.kind, EventKind::RunEnded { .. })),
    })
}

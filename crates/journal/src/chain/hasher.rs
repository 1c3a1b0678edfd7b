//! Hashing off the recording thread: a live chain only numbers its events and hands them
//! over unhashed; the store's writer chains them here, in the order they were sent, and
//! fills in the roots that seal one chain in another.
//!
//! A seal whose `root` is empty (`step_ended` of a step chain, `tool_call` of a callee's
//! chain) names a chain recorded through the same writer: it gets that chain's head as the
//! writer reached it, which is the chain's root, since a gate sends every event of its
//! chain before it is sealed. The run's root is the run chain's head when the run ends.

use std::collections::{HashMap, VecDeque};

use super::{ChainWriter, GENESIS, Stored};
use crate::event::{ChainId, EventKind, RUN_CHAIN, step_chain};

/// Events of one chain, numbered from `first`, not yet hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct Unhashed {
    pub run: String,
    pub chain: ChainId,
    pub first: u64,
    pub kinds: Vec<EventKind>,
}

/// Roots of ended runs kept for `Hasher::root` to answer (a run's root is also stored with
/// the run; this spares the asker a read).
const ENDED_KEPT: usize = 1024;

/// The heads of the chains a writer is recording, by run.
#[derive(Default)]
pub struct Hasher {
    runs: HashMap<String, HashMap<ChainId, ChainWriter>>,
    ended: HashMap<String, String>,
    ended_order: VecDeque<String>,
}

impl Hasher {
    /// Chains `events` after what their chain received before (a chain sent again from its
    /// first event is an attempt recorded again: it starts over).
    pub fn hash(&mut self, events: Unhashed) -> Vec<Stored> {
        let Unhashed {
            run,
            chain,
            first,
            kinds,
        } = events;
        let chains = self.runs.entry(run.clone()).or_default();
        if first == 0 {
            chains.remove(&chain);
        }
        let mut stored = Vec::with_capacity(kinds.len());
        for mut kind in kinds {
            if let Some((sealed, root)) = unsealed_root(&mut kind) {
                *root = chains
                    .remove(&sealed)
                    .map_or_else(|| GENESIS.to_string(), |w| w.head().to_string());
            }
            let writer = chains
                .entry(chain.clone())
                .or_insert_with(|| ChainWriter::new(&run, chain.clone()));
            if writer.len() != first + stored.len() as u64 {
                tracing::error!(
                    run,
                    chain,
                    "event {} of the chain arrived as event {}",
                    writer.len(),
                    first + stored.len() as u64
                );
            }
            stored.push(writer.record(kind));
        }
        stored
    }

    /// The run `run` ended: returns its root (the run chain's head) and forgets its chains.
    pub fn end_run(&mut self, run: &str) -> String {
        let root = self
            .runs
            .remove(run)
            .and_then(|chains| chains.get(RUN_CHAIN).map(|w| w.head().to_string()))
            .unwrap_or_else(|| GENESIS.to_string());
        if self.ended.insert(run.to_string(), root.clone()).is_none() {
            self.ended_order.push_back(run.to_string());
        }
        while self.ended_order.len() > ENDED_KEPT {
            if let Some(oldest) = self.ended_order.pop_front() {
                self.ended.remove(&oldest);
            }
        }
        root
    }

    /// The root of chain `chain` of `run` as received so far, or of the run chain of an
    /// ended run; `None` if this writer recorded no such chain. A chain other than the run
    /// chain is forgotten once its root is asked for (it is sealed).
    pub fn root(&mut self, run: &str, chain: &str) -> Option<String> {
        if let Some(chains) = self.runs.get_mut(run) {
            let head = if chain == RUN_CHAIN {
                chains.get(chain).map(|w| w.head().to_string())
            } else {
                chains.remove(chain).map(|w| w.head().to_string())
            };
            if head.is_some() {
                return head;
            }
        }
        (chain == RUN_CHAIN)
            .then(|| self.ended.get(run).cloned())
            .flatten()
    }
}

/// The chain a seal names and its root to fill in, if `kind` seals a chain whose root is
/// left to the writer.
fn unsealed_root(kind: &mut EventKind) -> Option<(ChainId, &mut String)> {
    match kind {
        EventKind::StepEnded { step, root, .. } if root.is_empty() => {
            Some((step_chain(step), root))
        }
        EventKind::ToolCall { chain, root, .. } if root.is_empty() && !chain.is_empty() => {
            Some((chain.clone(), root))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify_run;

    fn log(message: &str) -> EventKind {
        EventKind::Log {
            level: "info".into(),
            message: message.into(),
        }
    }

    fn unhashed(chain: &str, first: u64, kinds: Vec<EventKind>) -> Unhashed {
        Unhashed {
            run: "r1".into(),
            chain: chain.into(),
            first,
            kinds,
        }
    }

    fn events(stored: &[Stored]) -> Vec<crate::event::Event> {
        stored
            .iter()
            .map(|s| serde_json::from_str(&s.body).unwrap())
            .collect()
    }

    /// What a recording thread hashing its own chains would have stored.
    fn hashed_in_place() -> (Vec<Stored>, String) {
        let mut step = ChainWriter::new("r1", step_chain("a"));
        let mut stored = vec![step.record(log("one")), step.record(log("two"))];
        let mut run = ChainWriter::new("r1", RUN_CHAIN.into());
        stored.push(run.record(EventKind::StepEnded {
            events: 2,
            root: step.head().into(),
            step: "a".into(),
        }));
        (stored, run.head().into())
    }

    #[test]
    fn a_seal_left_empty_gets_the_root_the_chain_reached() {
        let mut hasher = Hasher::default();
        let mut stored = hasher.hash(unhashed("step:a", 0, vec![log("one")]));
        stored.extend(hasher.hash(unhashed("step:a", 1, vec![log("two")])));
        stored.extend(hasher.hash(unhashed(
            RUN_CHAIN,
            0,
            vec![EventKind::StepEnded {
                events: 2,
                root: String::new(),
                step: "a".into(),
            }],
        )));
        let (expected, root) = hashed_in_place();
        assert_eq!(stored, expected);
        assert_eq!(hasher.end_run("r1"), root);
        assert_eq!(verify_run(&events(&stored)).unwrap().root, root);
        assert_eq!(hasher.root("r1", RUN_CHAIN), Some(root));
        assert!(
            hasher.runs.is_empty(),
            "an ended run's chains are forgotten"
        );
    }

    #[test]
    fn a_callee_chain_is_sealed_in_its_caller() {
        let mut hasher = Hasher::default();
        let callee = hasher.hash(unhashed("step:a/0", 0, vec![log("inner")]));
        let call = EventKind::ToolCall {
            chain: "step:a/0".into(),
            events: 1,
            input: "{}".into(),
            outcome: crate::event::ToolCallOutcome::Returned {
                output: "{}".into(),
            },
            root: String::new(),
            tool: "t".into(),
        };
        let caller = hasher.hash(unhashed("step:a", 0, vec![call]));
        let sealed = events(&caller).remove(0);
        let EventKind::ToolCall { root, .. } = sealed.kind else {
            panic!("a tool call")
        };
        assert_eq!(root, events(&callee)[0].hash);
        assert_eq!(hasher.root("r1", "step:a/0"), None, "sealed once");
    }

    #[test]
    fn a_known_root_is_kept_and_an_empty_chain_seals_as_genesis() {
        let mut hasher = Hasher::default();
        let ended = |root: &str| EventKind::StepEnded {
            events: 0,
            root: root.into(),
            step: "b".into(),
        };
        let stored = hasher.hash(unhashed(RUN_CHAIN, 0, vec![ended("abc"), ended("")]));
        let kinds: Vec<_> = events(&stored).into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![ended("abc"), ended(GENESIS)]);
    }

    #[test]
    fn a_chain_sent_again_from_its_start_starts_over() {
        let mut hasher = Hasher::default();
        let first = hasher.hash(unhashed("step:a", 0, vec![log("attempt 1"), log("more")]));
        let again = hasher.hash(unhashed("step:a", 0, vec![log("attempt 1")]));
        assert_eq!(again[0], first[0]);
        assert_eq!(
            hasher.root("r1", "step:a"),
            Some(events(&again)[0].hash.clone())
        );
    }

    #[test]
    fn roots_of_ended_runs_are_kept_for_a_while() {
        let mut hasher = Hasher::default();
        for i in 0..ENDED_KEPT + 1 {
            let run = format!("r{i}");
            hasher.hash(Unhashed {
                run: run.clone(),
                chain: RUN_CHAIN.into(),
                first: 0,
                kinds: vec![EventKind::RunEnded {
                    status: "succeeded".into(),
                }],
            });
            hasher.end_run(&run);
        }
        assert_eq!(hasher.root("r0", RUN_CHAIN), None);
        assert!(hasher.root("r1", RUN_CHAIN).is_some());
        assert_eq!(hasher.ended.len(), ENDED_KEPT);
    }
}

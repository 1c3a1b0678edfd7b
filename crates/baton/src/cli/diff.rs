//! `baton trace diff A B`: where two recorded runs diverge, event by event. Chains are paired
//! by name (the run chain, `step:ID`, `step:ID/1`...) and their events by position; an event
//! differs when anything it records differs but what no run can reproduce (when it started,
//! which Baton recorded it, how long a call took). A difference in an effect says whether the
//! request differed, or only the answer the world gave.

use std::collections::{BTreeMap, BTreeSet};

use baton::journal::event::{Event, EventKind, RUN_CHAIN, step_chain};
use baton::journal::store::RunSummary;

/// What two runs' events are, chain by chain.
pub(super) struct Compared {
    /// Events equal in both.
    pub same: u64,
    /// Lines describing each difference, in chain order.
    pub lines: Vec<String>,
    /// The first difference: its chain, position and kind.
    pub first: Option<(String, u64, String)>,
}

/// Compares run `a`'s events with run `b`'s.
pub(super) fn compare(a: &[Event], b: &[Event]) -> Compared {
    let (chains_a, order_a) = by_chain(a);
    let (chains_b, order_b) = by_chain(b);
    // A chain is compared before the run chain that seals it: where two runs first differ is
    // where a call did, not the root that seals it.
    let mut order = order_a;
    order.extend(order_b.into_iter().filter(|c| !chains_a.contains_key(c)));
    order.sort_by_key(|chain| chain == RUN_CHAIN);
    let mut compared = Compared {
        same: 0,
        lines: Vec::new(),
        first: None,
    };
    // Chains in which some event differs: a seal of any other chain differs only in its root,
    // which covers the run's id.
    let mut differing = BTreeSet::new();
    for chain in order {
        let empty = Vec::new();
        let left = chains_a.get(&chain).unwrap_or(&empty);
        let right = chains_b.get(&chain).unwrap_or(&empty);
        let mut header = false;
        for seq in 0..left.len().max(right.len()) {
            let line = match (left.get(seq), right.get(seq)) {
                (Some(x), Some(y)) if same(x, y) || seals_the_same(x, y, &differing) => {
                    compared.same += 1;
                    continue;
                }
                (Some(x), Some(y)) => {
                    let why = if seals_another_chain(x, y) {
                        "the chain it seals differs"
                    } else if x.same_as(y) && x.name() == y.name() {
                        "same request, another answer"
                    } else {
                        "differs"
                    };
                    format!(
                        "  ~ {seq:>4}  {:<18} {why}\n      A: {}\n      B: {}",
                        x.name(),
                        super::trace::detail(x),
                        super::trace::detail(y)
                    )
                }
                (Some(x), None) => format!(
                    "  - {seq:>4}  {:<18} only in A: {}",
                    x.name(),
                    super::trace::detail(x)
                ),
                (None, Some(y)) => format!(
                    "  + {seq:>4}  {:<18} only in B: {}",
                    y.name(),
                    super::trace::detail(y)
                ),
                (None, None) => unreachable!("seq is below one chain's length"),
            };
            if compared.first.is_none() {
                let kind = left.get(seq).or(right.get(seq)).map(|k| k.name());
                compared.first = Some((chain.clone(), seq as u64, kind.unwrap_or("").into()));
            }
            if !header {
                compared.lines.push(chain.clone());
                differing.insert(chain.clone());
                header = true;
            }
            compared.lines.push(line);
        }
    }
    compared
}

/// Each chain's events, in order, and the chains in order of first appearance.
fn by_chain(events: &[Event]) -> (BTreeMap<String, Vec<EventKind>>, Vec<String>) {
    let mut chains: BTreeMap<String, Vec<EventKind>> = BTreeMap::new();
    let mut order = Vec::new();
    for event in events {
        let chain = event.chain.to_string();
        if !chains.contains_key(&chain) {
            order.push(chain.clone());
        }
        chains.entry(chain).or_default().push(event.kind.clone());
    }
    (chains, order)
}

/// Whether `a` and `b` seal a chain (a step's, a nested call's) and differ only in what that
/// chain holds.
fn seals_another_chain(a: &EventKind, b: &EventKind) -> bool {
    match (a, b) {
        (EventKind::StepEnded { step, .. }, EventKind::StepEnded { step: other, .. }) => {
            step == other
        }
        (
            EventKind::ToolCall {
                chain, tool, input, ..
            },
            EventKind::ToolCall {
                chain: c,
                tool: t,
                input: i,
                ..
            },
        ) => chain == c && tool == t && input == i,
        _ => false,
    }
}

/// Whether `a` and `b` seal the same step chain, the same number of events, and that chain's
/// events were all the same (not in `differing`): their roots differ only because each run's
/// hashes cover its own id.
fn seals_the_same(a: &EventKind, b: &EventKind, differing: &BTreeSet<String>) -> bool {
    match (a, b) {
        (
            EventKind::StepEnded { step, events, .. },
            EventKind::StepEnded {
                step: other,
                events: count,
                ..
            },
        ) => step == other && events == count && !differing.contains(&step_chain(step)),
        _ => false,
    }
}

/// Whether two events record the same, but for what no run reproduces.
fn same(a: &EventKind, b: &EventKind) -> bool {
    let mut a = a.clone();
    a.adopt_recorded(b);
    a == *b
}

/// Prints the comparison of run `a` with run `b`.
pub(super) fn print(a: (&RunSummary, &[Event]), b: (&RunSummary, &[Event])) {
    let compared = compare(a.1, b.1);
    println!(
        "A: run {} ({}, {} events)\nB: run {} ({}, {} events)",
        a.0.run,
        a.0.command,
        a.1.len(),
        b.0.run,
        b.0.command,
        b.1.len()
    );
    for line in &compared.lines {
        println!("{line}");
    }
    match &compared.first {
        None => println!("identical: {} events in the same order", compared.same),
        Some((chain, seq, kind)) => println!(
            "diverged at chain '{chain}', event {seq} ({kind}); {} events the same",
            compared.same
        ),
    }
}

//! The ledger: reservations, commits, limits, and accounts shared with other hosts.

use std::collections::BTreeMap;

use super::*;

fn usd(text: &str) -> Usd {
    Usd::parse(text).unwrap()
}

#[test]
fn prices_round_up_to_the_next_nano_dollar() {
    // $0.15 per million tokens is $0.00015 per 1k: 150 nano-dollars a token.
    assert_eq!(Usd::for_tokens(usd("0.00015"), 10), Usd(1500));
    // 1.5 nano-dollars a token: one token costs 2.
    assert_eq!(Usd::for_tokens(Usd(1500), 1), Usd(2));
    assert_eq!(Usd::for_tokens(Usd(1500), 2), Usd(3));
    assert_eq!(Usd::for_tokens(usd("0.002"), 1000), usd("0.002"));
    assert_eq!(Usd::for_tokens(usd("0.03"), 1500), usd("0.045"));
    assert_eq!(Usd::for_tokens(usd("0"), 1_000_000), Usd(0));
}

#[test]
fn dollars_parse_and_print_exactly() {
    assert_eq!(usd("0.10"), Usd(100_000_000));
    assert_eq!(usd("$1.5"), Usd(1_500_000_000));
    assert_eq!(usd("0.10").to_string(), "$0.10");
    assert_eq!(Usd(1_234_500).to_string(), "$0.0012345");
    assert_eq!(Usd(0).to_string(), "$0.00");
    assert!(Usd::parse("-1").is_err());
    assert!(Usd::parse("ten").is_err());
}

#[test]
fn budgets_parse_from_flags() {
    let limits = BudgetLimits::parse("tokens=20000,usd=0.10,time=60s").unwrap();
    assert_eq!(limits.tokens, Some(20000));
    assert_eq!(limits.usd, Some(usd("0.10")));
    assert_eq!(limits.time, Some(Duration::from_secs(60)));
    assert_eq!(limits.calls, None);
    let err = BudgetLimits::parse("dollars=3").unwrap_err();
    assert!(err.contains("'dollars' is not a budget"), "{err}");
    assert!(BudgetLimits::parse("tokens").is_err());
}

#[test]
fn a_reservation_counts_until_committed_or_released() {
    let run = Ledger::run(BudgetLimits {
        tokens: Some(100),
        ..Default::default()
    });
    let want = Spend {
        tokens: 60,
        ..Default::default()
    };
    let first = run.reserve(want).unwrap();
    let err = run.reserve(want).unwrap_err();
    assert_eq!(err.key, "tokens");
    assert!(err.what.contains("60 tokens needed, 60 of 100"), "{err}");
    first.commit(Spend {
        tokens: 25,
        ..Default::default()
    });
    let second = run.reserve(want).unwrap();
    drop(second);
    assert_eq!(run.report().spent.tokens, 25);
    assert!(
        run.reserve(Spend {
            tokens: 75,
            ..Default::default()
        })
        .is_ok()
    );
}

#[test]
fn a_step_reservation_must_fit_the_run_too() {
    let run = Ledger::run(BudgetLimits {
        usd: Some(usd("0.05")),
        ..Default::default()
    });
    let step = Ledger::step(&run, "a", BudgetLimits::default());
    let other = Ledger::step(
        &run,
        "b",
        BudgetLimits {
            usd: Some(usd("0.01")),
            ..Default::default()
        },
    );
    let cost = |d: &str| Spend {
        usd: usd(d),
        ..Default::default()
    };
    let held = step.reserve(cost("0.04")).unwrap();
    let err = other.reserve(cost("0.02")).unwrap_err();
    assert_eq!(err.scope, "step 'b'");
    let err = other.reserve(cost("0.01")).map(|_| ()).err();
    assert!(err.is_none(), "0.04 + 0.01 fits the run's 0.05");
    held.commit(cost("0.04"));
    assert_eq!(run.report().spent.usd, usd("0.04"));
    assert_eq!(step.report().spent.usd, usd("0.04"));
    assert_eq!(other.report().spent.usd, Usd(0));
}

#[test]
fn amounts_are_counted_in_words() {
    assert_eq!(amount(1, "calls"), "1 call");
    assert_eq!(amount(2, "calls"), "2 calls");
    assert_eq!(amount(1, "tokens"), "1 token");
    assert_eq!(amount(1, "fuel"), "1 fuel");
    let run = Ledger::run(BudgetLimits {
        calls: Some(1),
        ..Default::default()
    });
    let one = Spend {
        calls: 1,
        ..Default::default()
    };
    let _held = run.reserve(one).unwrap();
    let refused = run.reserve(one).unwrap_err();
    assert_eq!(refused.what, "1 call needed, 1 of 1 spent or reserved");
}

#[test]
fn concurrent_reservations_never_overspend() {
    let run = Ledger::run(BudgetLimits {
        calls: Some(10),
        ..Default::default()
    });
    let won = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                if let Ok(hold) = run.reserve(Spend {
                    calls: 1,
                    ..Default::default()
                }) {
                    won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let held = hold.held();
                    hold.commit(held);
                }
            });
        }
    });
    assert_eq!(won.into_inner(), 10);
    assert_eq!(run.report().spent.calls, 10);
}

/// 64 reservations race for a step whose workflow allows 10 calls: exactly 10 win, the run
/// counts exactly those, and the refusals say where the step's limit is raised.
#[test]
fn concurrent_reservations_never_overspend_a_workflow_step_budget() {
    let run = Ledger::run(BudgetLimits {
        calls: Some(100),
        ..Default::default()
    });
    let limits = BudgetLimits {
        calls: Some(10),
        ..Default::default()
    };
    let workflow = Ledger::workflow_step(&run, "fetch", limits).unwrap();
    // The tool's own (policy) step ledger sits inside the workflow's.
    let step = Ledger::step(&workflow, "fetch", BudgetLimits::default());
    let won = std::sync::atomic::AtomicU64::new(0);
    let refusals = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                match step.reserve(Spend {
                    calls: 1,
                    ..Default::default()
                }) {
                    Ok(hold) => {
                        won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let held = hold.held();
                        hold.commit(held);
                    }
                    Err(refused) => refusals.lock().unwrap().push(refused.to_string()),
                }
            });
        }
    });
    assert_eq!(won.into_inner(), 10);
    assert_eq!(run.report().spent.calls, 10);
    assert_eq!(workflow.report().spent.calls, 10);
    let refusals = refusals.into_inner().unwrap();
    assert_eq!(refusals.len(), 54);
    assert!(
        refusals[0].contains("the step 'fetch''s budget cannot cover this")
            && refusals[0].contains("raise it in the workflow's [steps.fetch] budget"),
        "{}",
        refusals[0]
    );
    // No limits in the workflow: no ledger of its own.
    assert!(Ledger::workflow_step(&run, "fetch", BudgetLimits::default()).is_none());
}

/// An account kept in memory: calls up to `limit`, holds by id.
#[derive(Debug)]
struct Shared {
    id: String,
    limit: u64,
    /// Calls spent, and those held by hold.
    state: Mutex<(u64, BTreeMap<HoldId, u64>)>,
}

impl Shared {
    fn new(id: &str, limit: u64) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            limit,
            state: Mutex::default(),
        })
    }

    /// Calls spent and held.
    fn used(&self) -> (u64, u64) {
        let state = self.state.lock().unwrap();
        (state.0, state.1.values().sum())
    }
}

impl Account for Shared {
    fn reserve(&self, want: Spend) -> Result<HoldId, Exceeded> {
        let mut state = self.state.lock().unwrap();
        let held: u64 = state.1.values().sum();
        if state.0 + held + want.calls > self.limit {
            return Err(Exceeded {
                scope: self.id.clone(),
                key: "calls",
                what: "full".into(),
                raise: None,
            });
        }
        let hold = state.1.keys().max().map_or(0, |last| last + 1);
        state.1.insert(hold, want.calls);
        Ok(hold)
    }

    fn settle(&self, hold: HoldId, actual: Spend) {
        let mut state = self.state.lock().unwrap();
        state.1.remove(&hold);
        state.0 += actual.calls;
    }

    fn id(&self) -> &str {
        &self.id
    }
}

/// A run inside a shared run account inside a key's shared account: a reservation is
/// taken in both; when the key's refuses, what the run's granted is given back.
#[test]
fn a_reservation_is_taken_in_every_shared_account_or_in_none() {
    let (run_account, key_account) = (Shared::new("run", 10), Shared::new("key:k", 2));
    let key = Ledger::account_in(
        "key 'k'".into(),
        BudgetLimits::default(),
        Spend::default(),
        key_account.clone(),
        None,
    );
    let run = Ledger::run_within_for(BudgetLimits::default(), run_account.clone(), Some(&key));
    let step = Ledger::step(&run, "s", BudgetLimits::default());
    assert_eq!(step.accounts_above(), ["run", "key:k"]);
    let call = Spend {
        calls: 1,
        ..Default::default()
    };
    for _ in 0..2 {
        step.reserve(call).unwrap().commit(call);
    }
    assert_eq!((run_account.used(), key_account.used()), ((2, 0), (2, 0)));
    let refused = step.reserve(call).unwrap_err();
    assert_eq!(refused.scope, "key:k");
    // Nothing stays held in the run's account for the refused call.
    assert_eq!((run_account.used(), key_account.used()), ((2, 0), (2, 0)));
    assert_eq!(key.report().spent.calls, 2);
}

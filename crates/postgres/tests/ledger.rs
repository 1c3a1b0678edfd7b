//! Shared budgets against a real server: hosts reserving at once never overspend.

// The ledger tests restart no server.
#[allow(dead_code)]
#[path = "../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

use std::sync::atomic::{AtomicU64, Ordering};

use baton_budget::{BudgetLimits, Ledger, Spend};
use baton_postgres::PgStore;
use postgres::Postgres;

fn one_call() -> Spend {
    Spend {
        calls: 1,
        tokens: 7,
        ..Spend::default()
    }
}

/// Three hosts (a store each: connections of their own), 64 steps on each reserving one
/// call at once, against a budget of exactly 10 calls: exactly 10 succeed, every time.
#[test]
fn three_hosts_reserving_at_once_never_overspend() {
    let server = Postgres::start();
    let hosts: Vec<PgStore> = (0..3)
        .map(|_| PgStore::open(&server.url()).unwrap())
        .collect();
    for repetition in 0..100 {
        let ledger = format!("run-{repetition}");
        hosts[0]
            .database()
            .open_ledger(
                &ledger,
                BudgetLimits {
                    calls: Some(10),
                    ..BudgetLimits::default()
                },
            )
            .unwrap();
        let won = AtomicU64::new(0);
        std::thread::scope(|s| {
            for (h, host) in hosts.iter().enumerate() {
                for step in 0..64 {
                    let (won, ledger) = (&won, &ledger);
                    s.spawn(move || {
                        let account = host
                            .database()
                            .account(ledger, &format!("{ledger}/{h}/{step}"));
                        let run = Ledger::run_within(BudgetLimits::default(), account);
                        let step = Ledger::step(&run, "s", BudgetLimits::default());
                        if let Ok(hold) = step.reserve(one_call()) {
                            won.fetch_add(1, Ordering::SeqCst);
                            hold.commit(one_call());
                        }
                    });
                }
            }
        });
        assert_eq!(won.load(Ordering::SeqCst), 10, "repetition {repetition}");
        let spent = hosts[1].database().ledger(&ledger).unwrap().unwrap().spent;
        assert_eq!(
            (spent.calls, spent.tokens),
            (10, 70),
            "repetition {repetition}"
        );
    }
}

#[test]
fn a_refusal_names_the_limit_and_released_holds_free_the_budget() {
    let server = Postgres::start();
    let store = PgStore::open(&server.url()).unwrap();
    store
        .database()
        .open_ledger(
            "r",
            BudgetLimits {
                tokens: Some(100),
                ..BudgetLimits::default()
            },
        )
        .unwrap();
    let dead = Ledger::run_within(
        BudgetLimits::default(),
        store.database().account("r", "worker-a/s1"),
    );
    let want = Spend {
        tokens: 60,
        ..Spend::default()
    };
    // A worker that dies holding a reservation: its hold is never settled.
    std::mem::forget(dead.reserve(want).unwrap());
    let other = Ledger::run_within(
        BudgetLimits::default(),
        store.database().account("r", "worker-b/s2"),
    );
    let err = other.reserve(want).unwrap_err();
    assert_eq!(err.key, "tokens");
    assert!(err.what.contains("60 tokens needed, 60 of 100"), "{err}");
    assert_eq!(store.database().release_holds("worker-a/s1").unwrap(), 1);
    let hold = other
        .reserve(want)
        .expect("the dead worker's hold is released");
    hold.commit(Spend {
        tokens: 40,
        ..Spend::default()
    });
    assert_eq!(
        store.database().ledger("r").unwrap().unwrap().spent.tokens,
        40
    );
    let missing = Ledger::run_within(
        BudgetLimits::default(),
        store.database().account("nope", "x"),
    );
    let err = missing.reserve(want).unwrap_err().to_string();
    assert!(
        err.contains("the shared ledger 'nope' does not exist"),
        "{err}"
    );
}

//! Idempotency keys in a real PostgreSQL server, shared by hosts.

#[allow(dead_code)]
#[path = "../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

use baton_journal::event::LlmOutcome;
use baton_llm::idempotency::{Idempotency, Prior};

fn failed() -> LlmOutcome {
    LlmOutcome::Failed {
        kind: "unavailable".into(),
        message: "HTTP 500".into(),
    }
}

/// Two hosts sharing a PostgreSQL store: a key one of them holds is in flight for the other;
/// its outcome, once stored, is the other's too; a claim dropped unsettled frees the key
/// everywhere.
#[test]
fn a_key_is_held_and_kept_across_hosts() {
    let server = postgres::Postgres::start();
    let (a, b) = (
        baton_postgres::PgStore::open(&server.url()).unwrap(),
        baton_postgres::PgStore::open(&server.url()).unwrap(),
    );
    let (one, other) = (
        Idempotency::in_postgres(a.database()),
        Idempotency::in_postgres(b.database()),
    );
    let Prior::Fresh(claim) = one.begin("cli", "k", "f1").unwrap() else {
        panic!("a new key is fresh");
    };
    assert!(matches!(other.begin("cli", "k", "f1"), Ok(Prior::InFlight)));
    one.store(claim, &failed()).unwrap();
    match other.begin("cli", "k", "f1").unwrap() {
        Prior::Stored(outcome) => assert_eq!(outcome, failed()),
        prior => panic!("expected the stored error, got {prior:?}"),
    }
    assert!(matches!(other.begin("cli", "k", "f2"), Ok(Prior::Mismatch)));

    let Prior::Fresh(claim) = other.begin("calc", "k", "f").unwrap() else {
        panic!("another caller's key of the same name is its own");
    };
    assert!(matches!(one.begin("calc", "k", "f"), Ok(Prior::InFlight)));
    drop(claim);
    assert!(matches!(one.begin("calc", "k", "f"), Ok(Prior::Fresh(_))));
}

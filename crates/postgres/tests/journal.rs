//! The PostgreSQL journal against a real server the test starts: the same event stream as
//! the SQLite store, byte for byte; writes that wait out a server restart; clear refusals.

#[path = "../../../tests/e2e/cluster/postgres.rs"]
mod postgres;

use std::path::Path;
use std::sync::Arc;

use baton_journal::chain::ChainWriter;
use baton_journal::event::{EventKind, RUN_CHAIN, step_chain};
use baton_journal::store::{Journal, Recorder, Store, StoreError};
use baton_journal::verify_run;
use baton_postgres::PgStore;
use postgres::Postgres;

const RUN: &str = "01jrunfortheparitytest0000";

/// The run chain's first events, a step chain of `events` events with text no encoding may
/// change (non-ASCII, an escaped NUL, quotes), and the run chain's end.
fn record_run(recorder: &Recorder, events: usize) {
    recorder.run_started(RUN, "2026-12-04T18:00:00.000Z", "run");
    let mut run = ChainWriter::new(RUN, RUN_CHAIN.into());
    let mut step = ChainWriter::new(RUN, step_chain("a"));
    recorder.event(run.record(EventKind::RunStarted {
        baton: "0.1.0".into(),
        command: "run".into(),
        format: 1,
        policies: Vec::new(),
        started_at: "2026-12-04T18:00:00.000Z".into(),
    }));
    recorder.event(run.record(EventKind::StepStarted {
        digest: "sha256:00".into(),
        step: "a".into(),
        tool: "calc".into(),
    }));
    for i in 0..events {
        recorder.event(step.record(EventKind::Denied {
            capability: "http".into(),
            message: format!("n°{i} «refusé» \u{0} \"quoted\" 🚫"),
        }));
    }
    recorder.blob(
        RUN,
        "component",
        "sha256:00",
        Arc::from(&b"\0asm bytes"[..]),
    );
    let root = step.append(EventKind::RunEnded { status: "x".into() }).prev;
    recorder.event(run.record(EventKind::StepEnded {
        events: events as u64,
        root,
        step: "a".into(),
    }));
    let end = run.record(EventKind::RunEnded {
        status: "succeeded".into(),
    });
    recorder.event(end);
    recorder.run_ended(
        RUN,
        "succeeded",
        &run.append(EventKind::RunEnded {
            status: String::new(),
        })
        .prev,
    );
    recorder.flush().unwrap();
}

/// Every row of a bundle, as stored.
fn rows(bundle: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(bundle).unwrap();
    let mut all = Vec::new();
    for query in [
        "SELECT run || '|' || started_at || '|' || command || '|' || status || '|' || root FROM runs",
        "SELECT run || '|' || chain || '|' || seq || '|' || kind || '|' || body FROM events ORDER BY chain, seq",
        "SELECT run || '|' || role || '|' || digest FROM run_blobs ORDER BY digest",
        "SELECT digest || '|' || hex(bytes) FROM blobs ORDER BY digest",
    ] {
        let mut stmt = db.prepare(query).unwrap();
        let found: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!found.is_empty(), "{query} finds rows");
        all.extend(found);
    }
    all
}

#[test]
fn the_same_run_gives_the_same_bundle_and_root_from_either_store() {
    let server = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Journal::open(&dir.path().join("journal.db")).unwrap();
    let pg = PgStore::open(&server.url()).unwrap();
    record_run(sqlite.recorder().unwrap(), 300);
    record_run(Store::recorder(&pg).unwrap(), 300);

    let (from_sqlite, from_pg) = (dir.path().join("a.bundle"), dir.path().join("b.bundle"));
    Store::export(&sqlite, RUN, &from_sqlite).unwrap();
    pg.export(RUN, &from_pg).unwrap();
    assert_eq!(rows(&from_sqlite), rows(&from_pg));

    let events = pg.events(RUN).unwrap();
    assert_eq!(events.len(), 304);
    assert_eq!(events, Journal::events(&sqlite, RUN).unwrap());
    let verified = verify_run(&events).unwrap();
    assert!(verified.complete);
    let listed = pg
        .find_run(&RUN[..8])
        .unwrap()
        .expect("a prefix finds the run");
    assert_eq!(listed.root.as_deref(), Some(verified.root.as_str()));
    assert_eq!(listed.events, 304);
    assert_eq!(listed, sqlite.find_run(RUN).unwrap().unwrap());
    assert_eq!(pg.blobs(RUN, "component").unwrap()[0].1, b"\0asm bytes");
}

#[test]
fn writes_wait_out_a_restart_and_nothing_committed_is_lost() {
    let server = Postgres::start();
    let pg = PgStore::open(&server.url()).unwrap();
    let recorder = Store::recorder(&pg).unwrap().clone();
    recorder.run_started(RUN, "2026-12-04T18:00:00.000Z", "run");
    let mut chain = ChainWriter::new(RUN, RUN_CHAIN.into());
    let event = |chain: &mut ChainWriter, i| {
        chain.record(EventKind::Denied {
            capability: "http".into(),
            message: format!("{i}"),
        })
    };
    for i in 0..10 {
        recorder.event(event(&mut chain, i));
    }
    recorder.flush().unwrap();
    server.stop();
    // Sent while the server is down: the writer keeps them and tries again.
    for i in 10..20 {
        recorder.event(event(&mut chain, i));
    }
    server.resume();
    recorder
        .flush()
        .expect("the writes wait for the server to come back");
    let events = pg.events(RUN).unwrap();
    assert_eq!(events.len(), 20);
    let verified = verify_run(&events).unwrap();
    assert!(!verified.complete, "the run has not ended");
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgStore::open(&format!("postgres://baton:pw@127.0.0.1:{port}/x"))
        .err()
        .expect("nothing to connect to");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Server { .. }), "{text}");
    assert!(
        text.contains(&format!("postgres://baton:***@127.0.0.1:{port}/x")),
        "{text}"
    );
    assert!(!text.contains("pw@"), "the password stays hidden: {text}");
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains('\n'), "{text}");

    let err = PgStore::open("postgres://baton@127.0.0.1:notaport/x")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a PostgreSQL connection string"), "{err}");
}

#[test]
fn a_store_written_by_a_newer_baton_is_refused() {
    let server = Postgres::start();
    drop(PgStore::open(&server.url()).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .execute("UPDATE meta SET value = '999' WHERE key = 'format'", &[])
            .await
            .unwrap();
    });
    let err = PgStore::open(&server.url()).err().unwrap().to_string();
    assert!(
        err.contains("journal format 999, newer than this Baton"),
        "{err}"
    );
}

#[test]
fn a_store_closes_while_a_recorder_outlives_it() {
    let server = Postgres::start();
    let pg = PgStore::open(&server.url()).unwrap();
    let recorder = Store::recorder(&pg).unwrap().clone();
    recorder.run_started(RUN, "2026-12-04T18:00:00.000Z", "run");
    recorder.flush().unwrap();
    // Dropping the store writes what was sent and stops the writer, without waiting for the
    // recorder still held here.
    drop(pg);
    let err = recorder.flush().unwrap_err();
    assert!(matches!(err, StoreError::WriterGone), "{err}");
    let again = PgStore::open(&server.url()).unwrap();
    assert_eq!(
        again.runs(10).unwrap().len(),
        1,
        "what came before was written"
    );
}

//! The journal through the CLI: every call is recorded, listed, shown, verified, exported
//! and pruned; tampering and damage are found at their position.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rusqlite::Connection;

use crate::common::*;

const EFFECTS_INPUT: &str = r#"{"random_bytes": 8, "logs": 2}"#;

/// Records one call of the effects tool into a fresh store; returns (dir, store, run id).
fn recorded_effects() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let tool = plugin("testing/effects.wasm");
    let out = run_with_store(
        &store,
        &["call", tool.to_str().unwrap(), "--input", EFFECTS_INPUT],
    );
    json_output(&out);
    let runs = text_output(&run_with_store(&store, &["trace", "ls", "--json"]));
    let run: serde_json::Value = serde_json::from_str(runs.lines().next().unwrap()).unwrap();
    (dir, store, run["run"].as_str().unwrap().to_string())
}

/// Exports the recorded run to a bundle beside the store.
fn bundle_of(store: &Path, run: &str) -> PathBuf {
    let bundle = store.with_file_name("run.bundle");
    let bundle_arg = bundle.to_str().unwrap();
    text_output(&run_with_store(
        store,
        &["trace", "export", run, "-o", bundle_arg],
    ));
    bundle
}

fn sql(file: &Path, statement: &str) {
    Connection::open(file)
        .unwrap()
        .execute_batch(statement)
        .unwrap();
}

fn verify(file: &Path) -> std::process::Output {
    run(&["trace", "verify", file.to_str().unwrap()])
}

#[test]
fn every_call_is_recorded_listed_and_shown() {
    let (_dir, store, run_id) = recorded_effects();
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_contains(&listed, &[&run_id, "call", "ok", "14 events"]);

    let shown = text_output(&run_with_store(&store, &["trace", "show", &run_id[..10]]));
    assert_contains(
        &shown,
        &[
            "step:call",
            "invocation_started",
            "verified           signed by key baton-dev (sha256:",
            "random_seed",
            "wall_clock",
            "random             Secure 8 bytes",
            "log                info: effects: line 1",
            "invocation_ended",
            "peak memory",
        ],
    );

    let json = text_output(&run_with_store(
        &store,
        &["trace", "show", &run_id, "--json"],
    ));
    let events: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(events.len(), 14);
    assert!(
        events
            .iter()
            .all(|e| e["hash"].as_str().unwrap().len() == 64)
    );
}

#[test]
fn a_failed_call_is_recorded_with_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let spin = plugin("testing/spin.wasm");
    let out = run_with_store(
        &store,
        &[
            "call",
            spin.to_str().unwrap(),
            "--input",
            "{}",
            "--fuel",
            "5000",
        ],
    );
    error_line(&out, 3);
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_contains(&listed, &["failed"]);
    let run_id = listed.split_whitespace().next().unwrap().to_string();
    let shown = text_output(&run_with_store(&store, &["trace", "show", &run_id]));
    assert_contains(&shown, &["ran out of fuel after 5000 units; 5000 fuel"]);
}

#[test]
fn a_recorded_run_verifies_to_the_root_replay_reproduces() {
    let (_dir, store, run_id) = recorded_effects();
    let verified = text_output(&run_with_store(&store, &["trace", "verify", &run_id]));
    assert!(
        verified.starts_with("verified: 14 events, root "),
        "{verified}"
    );
    assert_contains(
        &verified,
        &[", complete, ", "blobs match their digests, unsigned"],
    );
    let root = verified
        .split("root ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();

    let bundle = bundle_of(&store, &run_id);
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert_eq!(
        replayed.trim(),
        format!("identical: 14 events, root {root}")
    );
}

#[test]
fn a_flipped_byte_is_found_at_its_event() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    sql(
        &bundle,
        "UPDATE events SET body = replace(body, 'line 1', 'line 7')
         WHERE chain = 'step:call' AND seq = 7",
    );
    let line = error_line(&verify(&bundle), 6);
    assert_contains(
        &line,
        &["fails verification: chain 'step:call' breaks at event 7: its content does not match"],
    );
}

#[test]
fn a_dropped_event_is_found_at_its_position() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    sql(
        &bundle,
        "DELETE FROM events WHERE chain = 'step:call' AND seq = 3",
    );
    let line = error_line(&verify(&bundle), 6);
    assert_contains(
        &line,
        &["chain 'step:call' breaks at event 3: found sequence number 4"],
    );
}

#[test]
fn reordered_events_are_found_at_the_first_moved_one() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    sql(
        &bundle,
        "UPDATE events SET seq = -1 WHERE chain = 'step:call' AND seq = 4;
         UPDATE events SET seq = 4 WHERE chain = 'step:call' AND seq = 5;
         UPDATE events SET seq = 5 WHERE chain = 'step:call' AND seq = -1;",
    );
    let line = error_line(&verify(&bundle), 6);
    assert_contains(
        &line,
        &["chain 'step:call' breaks at event 4: found sequence number 5"],
    );
}

#[test]
fn an_inserted_event_is_found() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    sql(
        &bundle,
        "UPDATE events SET seq = -(seq + 1) WHERE chain = 'step:call' AND seq >= 5;
         UPDATE events SET seq = -seq WHERE chain = 'step:call' AND seq < 0;
         INSERT INTO events SELECT run, chain, 5, kind, body FROM events
             WHERE chain = 'step:call' AND seq = 6;",
    );
    let line = error_line(&verify(&bundle), 6);
    assert_contains(
        &line,
        &["chain 'step:call' breaks at event 6: found sequence number 5"],
    );
}

#[test]
fn a_truncated_chain_is_found_against_its_sealed_length() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    sql(
        &bundle,
        "DELETE FROM events WHERE chain = 'step:call' AND seq >= 7",
    );
    let line = error_line(&verify(&bundle), 6);
    assert_contains(
        &line,
        &[
            "chain 'step:call' breaks at event 7: it has 7 events but the run chain sealed it with 10",
        ],
    );
}

#[test]
fn export_then_prune() {
    let (_dir, store, run_id) = recorded_effects();
    let bundle = bundle_of(&store, &run_id);
    assert!(bundle.exists());
    let pruned = text_output(&run_with_store(&store, &["trace", "prune", "--days", "0"]));
    assert!(
        pruned.starts_with("removed 1 run started before"),
        "{pruned}"
    );
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert!(listed.starts_with("no runs recorded"), "{listed}");
    // The exported bundle stands alone.
    text_output(&run(&["replay", bundle.to_str().unwrap()]));
}

#[test]
fn an_unknown_run_is_a_clear_error() {
    let (dir, store, _run) = recorded_effects();
    let bundle = dir.path().join("never.bundle");
    let bundle = bundle.to_str().unwrap();
    for command in [
        &["trace", "show", "zzzz"][..],
        &["trace", "verify", "zzzz"],
        &["trace", "export", "zzzz", "--output", bundle],
    ] {
        let line = error_line(&run_with_store(&store, command), 2);
        assert_contains(
            &line,
            &[
                "no such run 'zzzz' in ",
                "`baton trace ls` lists the runs there",
            ],
        );
    }
    assert!(!Path::new(bundle).exists());
}

#[test]
fn a_killed_run_leaves_a_prefix_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let tool = plugin("testing/effects.wasm");
    // A call that writes log events for far longer than this test waits.
    let mut child = baton()
        .env("BATON_STORE", &store)
        .args([
            "call",
            tool.to_str().unwrap(),
            "--input",
            r#"{"random_bytes": 1, "logs": 100000000}"#,
        ])
        .args(["--timeout", "10m", "--fuel", "9000000000000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the writer has committed part of the run, then kill -9.
    let committed = || -> i64 {
        Connection::open(&store)
            .and_then(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while committed() < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no events were committed"
        );
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_contains(&listed, &["running"]);
    let run_id = listed.split_whitespace().next().unwrap().to_string();
    let verified = text_output(&run_with_store(&store, &["trace", "verify", &run_id]));
    assert_contains(
        &verified,
        &["verified: ", "incomplete (the run did not finish)"],
    );
    let events: usize = verified["verified: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 1000, "{verified}");

    // An interrupted run cannot be replayed, and says why.
    let bundle = dir.path().join("killed.bundle");
    text_output(&run_with_store(
        &store,
        &["trace", "export", &run_id, "-o", bundle.to_str().unwrap()],
    ));
    let line = error_line(&run(&["replay", bundle.to_str().unwrap()]), 6);
    assert_contains(
        &line,
        &["did not finish (it was interrupted while recording)"],
    );
}

mod bad_bundles {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk.bundle");
        std::fs::write(&file, "not a bundle at all, just some text ".repeat(50)).unwrap();
        let line = error_line(&run(&["replay", file.to_str().unwrap()]), 2);
        assert_contains(&line, &["junk.bundle is not a Baton journal or bundle"]);
    }

    #[test]
    fn a_truncated_bundle() {
        let (_dir, store, run_id) = recorded_effects();
        let bundle = bundle_of(&store, &run_id);
        let bytes = std::fs::read(&bundle).unwrap();
        std::fs::write(&bundle, &bytes[..bytes.len() / 3]).unwrap();
        let out = run(&["replay", bundle.to_str().unwrap()]);
        let line = error_line(&out, 2);
        assert_contains(&line, &["run.bundle"]);
    }

    #[test]
    fn a_foreign_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other.db");
        sql(&file, "CREATE TABLE customers (id INTEGER, name TEXT);");
        let line = error_line(&run(&["replay", file.to_str().unwrap()]), 2);
        assert_contains(
            &line,
            &["other.db is not a Baton journal or bundle (it has no meta table)"],
        );
    }

    #[test]
    fn a_bundle_of_a_newer_format() {
        let (_dir, store, run_id) = recorded_effects();
        let bundle = bundle_of(&store, &run_id);
        sql(&bundle, "UPDATE meta SET value = '99' WHERE key = 'format'");
        let before = std::fs::read(&bundle).unwrap();
        let line = error_line(&run(&["replay", bundle.to_str().unwrap()]), 2);
        assert_contains(
            &line,
            &["uses journal format 99, newer than this Baton understands (1)"],
        );
        assert_eq!(
            std::fs::read(&bundle).unwrap(),
            before,
            "nothing was written"
        );
    }

    #[test]
    fn component_bytes_that_do_not_match_their_digest() {
        let (_dir, store, run_id) = recorded_effects();
        let bundle = bundle_of(&store, &run_id);
        sql(
            &bundle,
            "UPDATE blobs SET bytes = X'0061736d0d000100' WHERE digest IN
                      (SELECT digest FROM run_blobs WHERE role = 'component')",
        );
        let line = error_line(&run(&["replay", bundle.to_str().unwrap()]), 6);
        assert_contains(
            &line,
            &[
                "cannot be replayed: the bytes stored for component sha256:",
                "hash to sha256:",
            ],
        );
    }

    #[test]
    fn a_missing_bundle() {
        let line = error_line(&run(&["replay", "/nonexistent/run.bundle"]), 2);
        assert_contains(&line, &["cannot open journal /nonexistent/run.bundle"]);
    }
}

#[test]
fn a_bundle_in_a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("no/such/dir/run.bundle");
    let calc = plugin("calc.wasm");
    let out = run_with_store(
        &dir.path().join("journal.db"),
        &[
            "call",
            calc.to_str().unwrap(),
            "--input",
            r#"{"expression": "1"}"#,
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    let line = error_line(&out, 2);
    assert_contains(
        &line,
        &[
            "cannot write bundle ",
            "no/such/dir/run.bundle",
            "check that its directory exists",
        ],
    );
    assert!(!bundle.exists());
}

/// Several processes creating the same journal at once all record their runs: the first to
/// take the write lock creates it whole, the others find it complete.
#[test]
fn processes_creating_one_journal_at_once_all_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let calc = plugin("calc.wasm");
    let children: Vec<_> = (0..6)
        .map(|i| {
            baton()
                .env("BATON_STORE", &store)
                .args(["call", calc.to_str().unwrap(), "--input"])
                .arg(format!(r#"{{"expression": "{i} + 1"}}"#))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let listed = text_output(&run_with_store(&store, &["trace", "ls"]));
    assert_eq!(
        listed.lines().filter(|l| l.contains(" call ")).count(),
        6,
        "{listed}"
    );
}

/// Journals of the earlier layouts of the events table (the format is the same) keep
/// recording: a new call lands beside the old run, and both verify and replay.
#[test]
fn journals_of_earlier_table_layouts_keep_recording() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for (fixture, layout) in [
        ("effects.bundle", "PRIMARY KEY (run, chain, seq)\n)"),
        ("fanout-run.bundle", "WITHOUT ROWID"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("journal.db");
        std::fs::copy(fixtures.join(fixture), &store).unwrap();
        let sql: String = Connection::open(&store)
            .unwrap()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'events'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.ends_with(layout), "{fixture}: {sql}");

        let tool = plugin("testing/effects.wasm");
        json_output(&run_with_store(
            &store,
            &["call", tool.to_str().unwrap(), "--input", EFFECTS_INPUT],
        ));
        let runs = text_output(&run_with_store(&store, &["trace", "ls", "--json"]));
        let ids: Vec<String> = runs
            .lines()
            .map(|line| {
                let run: serde_json::Value = serde_json::from_str(line).unwrap();
                run["run"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 2, "{fixture}: {runs}");
        for id in ids {
            let verified = text_output(&run_with_store(&store, &["trace", "verify", &id]));
            assert!(verified.starts_with("verified: "), "{fixture}: {verified}");
            let bundle = bundle_of(&store, &id);
            let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
            assert!(replayed.starts_with("identical: "), "{fixture}: {replayed}");
        }
    }
}

/// `baton trace show … | head`: when the reader stops, baton ends quietly on SIGPIPE, as
/// Unix tools do, with no panic and nothing on stderr.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    // A run whose events print to far more than a pipe holds (64 KiB).
    let tool = plugin("testing/effects.wasm");
    let input = r#"{"random_bytes": 1, "logs": 2000}"#;
    json_output(&run_with_store(
        &store,
        &["call", tool.to_str().unwrap(), "--input", input],
    ));
    let id = last_run(&store);
    let mut child = baton()
        .env("BATON_STORE", &store)
        .args(["trace", "show", &id, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader stops before it reads anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
}

#[test]
fn trace_diff_shows_where_two_runs_diverge() {
    let (_dir, store, first) = recorded_effects();
    let bundle = bundle_of(&store, &first);
    // A run and its own bundle: nothing differs.
    let same = text_output(&run_with_store(
        &store,
        &["trace", "diff", &first, bundle.to_str().unwrap()],
    ));
    assert_contains(&same, &["identical: ", "events in the same order"]);
    // The same call again: the same requests, other answers from the clocks and randomness.
    let tool = plugin("testing/effects.wasm");
    json_output(&run_with_store(
        &store,
        &["call", tool.to_str().unwrap(), "--input", EFFECTS_INPUT],
    ));
    let again = last_run(&store);
    let shown = text_output(&run_with_store(&store, &["trace", "diff", &first, &again]));
    assert_contains(
        &shown,
        &[
            "step:call",
            "random             same request, another answer",
            "diverged at chain 'step:call', event ",
        ],
    );
    // Another input: the call differs from its first event.
    json_output(&run_with_store(
        &store,
        &[
            "call",
            tool.to_str().unwrap(),
            "--input",
            r#"{"random_bytes": 4, "logs": 2}"#,
        ],
    ));
    let other = last_run(&store);
    let shown = text_output(&run_with_store(&store, &["trace", "diff", &first, &other]));
    assert_contains(
        &shown,
        &[
            "~    0  invocation_started differs",
            "A: input {\"random_bytes\": 8, \"logs\": 2}",
            "diverged at chain 'step:call', event 0 (invocation_started)",
        ],
    );
    // An unknown run is one clear line.
    let line = error_line(
        &run_with_store(&store, &["trace", "diff", &first, "01NOSUCHRUN"]),
        2,
    );
    assert_contains(&line, &["01NOSUCHRUN"]);
}

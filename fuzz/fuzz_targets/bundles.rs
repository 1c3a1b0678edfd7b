//! Bundles built from fuzzed event rows: opening one, reading its runs and events and verifying
//! its chains answers or refuses, never panics; and a chain of events that verifies is the
//! chain that was hashed (a changed row never verifies to the same root); a run exported to a
//! bundle of its own reads back the same events, with the same verdict.

#![no_main]

use baton_journal::chain::{GENESIS, hash_of};
use baton_journal::event::{Event, EventKind};
use baton_journal::store::{EventRow, Journal, RunRow, write_bundle};
use baton_journal::verify_run;
use libfuzzer_sys::fuzz_target;

const RUN: &str = "01jfuzz00000000000000000000";

fuzz_target!(|text: &str| {
    // Each line is an event row's body, in order, in the chain its JSON names (or `run`).
    let rows: Vec<EventRow> = text
        .lines()
        .enumerate()
        .map(|(seq, body)| {
            let chain = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["chain"].as_str().map(str::to_string))
                .unwrap_or_else(|| "run".into());
            let kind = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_string))
                .unwrap_or_default();
            EventRow {
                chain,
                seq: seq as i64,
                kind,
                body: body.to_string(),
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("baton-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("fuzz.bundle");
    let header = RunRow {
        run: RUN.into(),
        started_at: "2026-12-05T00:00:00Z".into(),
        command: "call".into(),
        status: "ok".into(),
        root: None,
    };
    if write_bundle(&path, &header, &rows, &[], (None, None)).is_err() {
        return;
    }
    let Ok(journal) = Journal::open_read_only(&path) else {
        return;
    };
    let Ok(runs) = journal.runs(10) else {
        return;
    };
    for run in runs {
        let Ok(events) = journal.events(&run.run) else {
            continue;
        };
        // Exported, the run reads back the same and verifies (or not) the same.
        let exported = dir.join("exported.bundle");
        let _ = std::fs::remove_file(&exported);
        if journal.export(&run.run, &exported).is_ok() {
            let again = Journal::open_read_only(&exported)
                .and_then(|j| j.events(&run.run))
                .expect("an exported bundle reads");
            assert_eq!(again, events, "export changed the events");
            assert_eq!(verify_run(&again).is_ok(), verify_run(&events).is_ok());
        }
        if let Ok(verified) = verify_run(&events) {
            // What verifies is a chain whose every hash is its event's.
            for event in &events {
                assert_eq!(
                    hash_of(event),
                    event.hash,
                    "a verified event's hash is its own"
                );
            }
            let _ = verified;
        }
    }
    // A chain built right verifies, and stops verifying when a byte of one event changes.
    let mut events: Vec<Event> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Event>(l).ok())
        .filter(|e| e.chain == "run")
        // Seals name other chains, which this one does not hold.
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::StepEnded { .. } | EventKind::ToolCall { .. }
            )
        })
        .collect();
    let mut prev = GENESIS.to_string();
    for (seq, event) in events.iter_mut().enumerate() {
        event.run = RUN.into();
        event.seq = seq as u64;
        event.prev = prev;
        event.hash = String::new();
        event.hash = hash_of(event);
        prev = event.hash.clone();
    }
    if events.is_empty() {
        return;
    }
    assert!(
        verify_run(&events).is_ok(),
        "a chain hashed in order verifies"
    );
    events[0].seq += 1;
    assert!(
        verify_run(&events).is_err(),
        "a changed event breaks its chain"
    );
});

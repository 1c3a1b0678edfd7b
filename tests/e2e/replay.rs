//! Replay: a recorded run re-runs bit for bit; a changed plugin, input or recorded effect
//! diverges at exactly the event where behaviour first differs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton::journal::chain::ChainWriter;
use baton::journal::event::{Event, EventKind, RUN_CHAIN};
use baton::journal::store::Journal;

use crate::common::*;

const EFFECTS_INPUT: &str = r#"{"random_bytes": 8, "logs": 2}"#;

/// Records a call of `tool` with `input` (and extra flags) into a bundle.
fn record(tool: &str, input: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("run.bundle");
    let store = dir.path().join("journal.db");
    let path = plugin(tool);
    let mut args = vec![
        "call",
        path.to_str().unwrap(),
        "--input",
        input,
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_with_store(&store, &args);
    assert!(
        bundle.exists(),
        "the bundle is written whether or not the call succeeds"
    );
    (dir, bundle)
}

/// Rewrites `bundle` into a new bundle with `mutate` applied to its events and every hash
/// recomputed, as a different but internally consistent recording would be.
fn mutated(bundle: &Path, mutate: impl FnOnce(&mut Vec<Event>)) -> PathBuf {
    let source = Journal::open_read_only(bundle).unwrap();
    let run = source.runs(1).unwrap().remove(0);
    let mut events = source.events(&run.run).unwrap();
    mutate(&mut events);

    // Re-chain the step chains, then the run chain with their new roots.
    let mut chains: BTreeMap<String, Vec<EventKind>> = BTreeMap::new();
    for event in &events {
        chains
            .entry(event.chain.clone())
            .or_default()
            .push(event.kind.clone());
    }
    let mut rewritten = Vec::new();
    let mut roots = BTreeMap::new();
    for (chain, kinds) in chains.iter().filter(|(c, _)| c.as_str() != RUN_CHAIN) {
        let mut writer = ChainWriter::new(&run.run, chain.clone());
        rewritten.extend(kinds.iter().map(|k| writer.record(k.clone())));
        roots.insert(
            chain.trim_start_matches("step:").to_string(),
            writer.head().to_string(),
        );
    }
    let mut writer = ChainWriter::new(&run.run, RUN_CHAIN.into());
    for mut kind in chains[RUN_CHAIN].clone() {
        if let EventKind::StepEnded { step, root, .. } = &mut kind {
            *root = roots[step.as_str()].clone();
        }
        rewritten.push(writer.record(kind));
    }

    let out = bundle.with_file_name("mutated.bundle");
    let target = Journal::open(&out).unwrap();
    let recorder = target.recorder().unwrap();
    recorder.run_started(&run.run, &run.started_at, &run.command);
    for event in rewritten {
        recorder.event(event);
    }
    for role in ["component", "policy"] {
        for (digest, bytes) in source.blobs(&run.run, role).unwrap() {
            recorder.blob(&run.run, role, &digest, bytes.into());
        }
    }
    recorder.run_ended(&run.run, &run.status, writer.head());
    recorder.flush().unwrap();
    out
}

fn replay(bundle: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["replay", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn step_event(events: &mut [Event], seq: u64) -> &mut EventKind {
    &mut events
        .iter_mut()
        .find(|e| e.chain == "step:call" && e.seq == seq)
        .unwrap()
        .kind
}

#[test]
fn a_recorded_run_replays_identically_with_its_recorded_effects() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let out = text_output(&replay(&bundle, &[]));
    assert!(out.starts_with("identical: 14 events, root "), "{out}");
    // Replaying twice gives the same root: nothing live leaks in.
    assert_eq!(text_output(&replay(&bundle, &[])), out);
}

#[test]
fn the_rewriting_helper_itself_preserves_identity() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let same = mutated(&bundle, |_| {});
    assert_eq!(
        text_output(&replay(&same, &[])),
        text_output(&replay(&bundle, &[]))
    );
}

/// Another component in place of the one a call recorded gets past the digest (expected to
/// differ) and stops where its behaviour first differs: here, the first effect `effects`
/// recorded, which calc never makes.
#[test]
fn a_replacement_that_behaves_differently_diverges_where_its_behaviour_does() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let calc = plugin("calc.wasm");
    let line = error_line(
        &replay(&bundle, &["--component", calc.to_str().unwrap()]),
        6,
    );
    assert_contains(&line, &["replay diverged at chain 'step:"]);
    assert!(!line.contains("(step_started)"), "{line}");
    assert!(!line.contains("(verified)"), "{line}");
    assert!(!line.contains("(invocation_started)"), "{line}");
}

#[test]
fn a_changed_input_diverges_where_behaviour_first_differs() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let changed = mutated(&bundle, |events| {
        if let EventKind::InvocationStarted { input, .. } = step_event(events, 0) {
            *input = r#"{"random_bytes": 8, "logs": 3}"#.into();
        }
    });
    // Events 0-7 (start, signature, seed, clocks, random, two log lines) are the same; the
    // third log line comes where the record has the closing clock reading.
    let line = error_line(&replay(&changed, &[]), 6);
    assert_contains(
        &line,
        &[
            "replay diverged at chain 'step:call', event 8 (monotonic_clock)",
            "found {\"kind\":\"log\"",
            "line 2",
        ],
    );
}

#[test]
fn a_changed_recorded_effect_diverges_at_the_output() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let changed = mutated(&bundle, |events| {
        if let EventKind::Random { bytes, .. } = step_event(events, 5) {
            *bytes = "0123456789abcdef".into();
        }
    });
    // The tool is served the altered bytes and returns them: the outputs differ.
    let line = error_line(&replay(&changed, &[]), 6);
    assert_contains(
        &line,
        &[
            "replay diverged at chain 'step:call', event 9 (invocation_ended)",
            "0123456789abcdef",
        ],
    );
}

#[test]
fn a_changed_effect_request_diverges_at_that_effect() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let changed = mutated(&bundle, |events| {
        if let EventKind::Random { bytes, .. } = step_event(events, 5) {
            *bytes = "00".repeat(16);
        }
    });
    let line = error_line(&replay(&changed, &[]), 6);
    assert_contains(
        &line,
        &["replay diverged at chain 'step:call', event 5 (random)"],
    );
}

#[test]
fn a_replay_verifies_the_bundled_bytes_against_the_recorded_signature() {
    let (_dir, bundle) = record("testing/effects.wasm", EFFECTS_INPUT, &[]);
    let changed = mutated(&bundle, |events| {
        if let EventKind::Verified { signature, .. } = step_event(events, 1) {
            // A valid signature, but over other bytes.
            *signature =
                std::fs::read_to_string(plugin("calc.wasm").with_extension("wasm.sig")).unwrap();
        }
    });
    let line = error_line(&replay(&changed, &[]), 4);
    assert_contains(
        &line,
        &[
            "is not trusted: the signature recorded for it does not verify with the recorded key",
            "key baton-dev (sha256:",
        ],
    );
}

#[test]
fn a_recorded_failure_replays_as_the_same_failure() {
    let (_dir, bundle) = record("calc.wasm", r#"{"expression": "1 / 0"}"#, &[]);
    let out = text_output(&replay(&bundle, &[]));
    assert!(out.starts_with("identical: "), "{out}");
}

#[test]
fn a_recorded_timeout_replays_as_the_same_timeout() {
    let (_dir, bundle) = record(
        "testing/spin.wasm",
        "{}",
        &["--timeout", "200ms", "--fuel", "9000000000000000"],
    );
    let out = text_output(&replay(&bundle, &[]));
    assert!(out.starts_with("identical: "), "{out}");
}

#[test]
fn golden_bundles_replay_identically() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bundle") {
            let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
            assert_eq!(
                text_output(&replay(&path, &[])),
                expected,
                "{}",
                path.display()
            );
            // Recorded before runs were signed: they verify, as unsigned.
            let verified = text_output(&run(&["trace", "verify", path.to_str().unwrap()]));
            assert!(
                verified.contains("complete") && verified.ends_with("unsigned\n"),
                "{verified}"
            );
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "no golden bundles in {}", fixtures.display());
}

//! Signed runs: the host signs each run's root; a bundle rewritten by someone who
//! recomputed every hash verifies as a chain but not as the host's run; another host's key,
//! a removed signature and changed component bytes are each named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use baton::journal::chain::{GENESIS, hash_of};
use baton::journal::event::{Event, EventKind, RUN_CHAIN};
use baton::journal::store::{EventRow, Journal, RunRow, write_bundle};
use rusqlite::Connection;

use crate::common::*;

const PASSWORD: &str = "host secret";

/// `baton` with the host key's password and the store at `store`.
fn with_host(store: &Path, args: &[&str]) -> Output {
    baton()
        .env("BATON_STORE", store)
        .env("BATON_HOST_KEY_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

/// A host key in `dir` (host.key, host.pub) and a policy signing runs with it.
fn signing_host(dir: &Path) -> PathBuf {
    text_output(&with_host(
        &dir.join("unused.db"),
        &["keygen", "--host", "--out", dir.to_str().unwrap()],
    ));
    write_policy(dir, "[journal]\nsigning_key = \"host.key\"\n")
}

/// One signed call of the effects tool, exported: (dir, bundle).
fn signed_bundle() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policy = signing_host(dir.path());
    let store = dir.path().join("journal.db");
    let tool = plugin("testing/effects.wasm");
    let input = r#"{"random_bytes": 8, "logs": 2}"#;
    let called = with_host(
        &store,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "call",
            tool.to_str().unwrap(),
            "--input",
            input,
        ],
    );
    json_output(&called);
    let id = last_run(&store);
    let bundle = dir.path().join("run.bundle");
    text_output(&run_with_store(
        &store,
        &["trace", "export", &id, "-o", bundle.to_str().unwrap()],
    ));
    (dir, bundle)
}

fn verify(bundle: &Path, keys: &[&Path]) -> Output {
    let mut args = vec![
        "trace".to_string(),
        "verify".into(),
        bundle.display().to_string(),
    ];
    for key in keys {
        args.extend(["--key".into(), key.display().to_string()]);
    }
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The rewrite attack: `change` edits the first event it accepts, then every hash of every
/// chain is recomputed (step chains first, then the run chain with their new roots), exactly
/// as the journal format says, and the bundle is written again with its signature.
pub(crate) fn forge(bundle: &Path, out: &Path, change: impl Fn(&mut EventKind) -> bool) {
    let journal = Journal::open_read_only(bundle).unwrap();
    let summary = journal.runs(1).unwrap().remove(0);
    let mut events = journal.events(&summary.run).unwrap();
    assert!(
        events.iter_mut().any(|e| change(&mut e.kind)),
        "nothing to forge"
    );
    let rehash = |chain: &mut Vec<&mut Event>| {
        let mut prev = GENESIS.to_string();
        for event in chain.iter_mut() {
            event.prev = prev;
            event.hash = hash_of(event);
            prev = event.hash.clone();
        }
        prev
    };
    let mut roots = HashMap::new();
    let mut chains: HashMap<String, Vec<&mut Event>> = HashMap::new();
    for event in &mut events {
        chains
            .entry(event.chain.to_string())
            .or_default()
            .push(event);
    }
    let mut run_chain = chains.remove(RUN_CHAIN).unwrap();
    for (name, mut chain) in chains {
        roots.insert(name, rehash(&mut chain));
    }
    for event in run_chain.iter_mut() {
        if let EventKind::StepEnded { step, root, .. } = &mut event.kind {
            *root = roots[&format!("step:{step}")].clone();
        }
    }
    let root = rehash(&mut run_chain);
    let rows: Vec<EventRow> = events
        .iter()
        .map(|e| EventRow {
            chain: e.chain.to_string(),
            seq: e.seq as i64,
            kind: e.kind.name().into(),
            body: serde_json::to_string(e).unwrap(),
        })
        .collect();
    let header = RunRow {
        run: summary.run.clone(),
        started_at: summary.started_at,
        command: summary.command,
        status: summary.status,
        root: Some(root),
    };
    let blobs = journal.all_blobs(&summary.run).unwrap();
    let envelope = journal.envelope(&summary.run).unwrap();
    write_bundle(out, &header, &rows, &blobs, (envelope.as_deref(), None)).unwrap();
}

#[test]
fn a_signed_run_proves_itself_and_a_rewrite_is_caught() {
    let (dir, bundle) = signed_bundle();
    let key = dir.path().join("host.pub");
    let proven = text_output(&verify(&bundle, &[&key]));
    assert_contains(
        &proven,
        &[
            "verified:",
            "complete",
            "blobs match",
            "signed by host",
            "transparency log (1 of 1)",
        ],
    );
    let unchecked = text_output(&verify(&bundle, &[]));
    assert_contains(&unchecked, &["signed (give --key HOST.pub"]);

    // A recorded log line rewritten, every hash recomputed: the chains verify...
    let forged = dir.path().join("forged.bundle");
    forge(&bundle, &forged, |kind| match kind {
        EventKind::Log { message, .. } => {
            *message = "all is well".into();
            true
        }
        _ => false,
    });
    assert!(verify(&forged, &[]).status.success());
    // ...but not as this host's run.
    let line = error_line(&verify(&forged, &[&key]), 4);
    assert_contains(
        &line,
        &["not proven", "differs from the signed root", "rewritten"],
    );
}

#[test]
fn another_hosts_key_a_removed_signature_and_changed_component_bytes_are_named() {
    let (dir, bundle) = signed_bundle();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    signing_host(&other);
    let line = error_line(&verify(&bundle, &[&other.join("host.pub")]), 4);
    assert_contains(&line, &["does not verify with host"]);

    let unsigned = dir.path().join("unsigned.bundle");
    std::fs::copy(&bundle, &unsigned).unwrap();
    Connection::open(&unsigned)
        .unwrap()
        .execute_batch("DELETE FROM run_envelopes")
        .unwrap();
    let line = error_line(&verify(&unsigned, &[&dir.path().join("host.pub")]), 4);
    assert_contains(&line, &["unsigned"]);
    assert_contains(&text_output(&verify(&unsigned, &[])), &["unsigned"]);

    let changed = dir.path().join("changed.bundle");
    std::fs::copy(&bundle, &changed).unwrap();
    Connection::open(&changed)
        .unwrap()
        .execute_batch(
            "UPDATE blobs SET bytes = x'0061736d01000000'
             WHERE digest IN (SELECT digest FROM run_blobs WHERE role = 'component')",
        )
        .unwrap();
    let line = error_line(&verify(&changed, &[]), 6);
    assert_contains(&line, &["component blob", "does not hash to its digest"]);
}

/// With `require_signed_runs`, `baton replay` takes the host's signed bundle and refuses an
/// unsigned one.
#[test]
fn replay_can_require_a_signed_run() {
    let (dir, bundle) = signed_bundle();
    let strict = dir.path().join("strict");
    std::fs::create_dir(&strict).unwrap();
    std::fs::copy(dir.path().join("host.pub"), strict.join("host.pub")).unwrap();
    let policy = write_policy(
        &strict,
        "[trust]\nrequire_signed_runs = true\nhost_keys = [\"host.pub\"]\n",
    );
    let policy = policy.to_str().unwrap();
    let replayed = run(&["--policy", policy, "replay", bundle.to_str().unwrap()]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );

    Connection::open(&bundle)
        .unwrap()
        .execute_batch("DELETE FROM run_envelopes")
        .unwrap();
    let line = error_line(
        &run(&["--policy", policy, "replay", bundle.to_str().unwrap()]),
        4,
    );
    assert_contains(&line, &["not proven", "unsigned"]);
}

/// A policy naming a host key whose password is not set says so, in one line, before
/// anything runs.
#[test]
fn a_host_key_without_its_password_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = signing_host(dir.path());
    let out = baton()
        .env("BATON_STORE", dir.path().join("journal.db"))
        .env_remove("BATON_HOST_KEY_PASSWORD")
        .args(["--policy", policy.to_str().unwrap(), "call"])
        .arg(plugin("calc.wasm"))
        .args(["--input", r#"{"expression": "1 + 2"}"#])
        .output()
        .unwrap();
    let line = error_line(&out, 5);
    assert_contains(
        &line,
        &["host.key", "BATON_HOST_KEY_PASSWORD", "password_file"],
    );
}

/// A run recorded before the host had a key is signed when it is exported under a policy
/// naming one.
#[test]
fn an_unsigned_run_is_signed_at_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let called = run_with_store(
        &store,
        &[
            "call",
            plugin("calc.wasm").to_str().unwrap(),
            "--input",
            r#"{"expression": "2 * 3"}"#,
        ],
    );
    json_output(&called);
    let policy = signing_host(dir.path());
    let id = last_run(&store);
    let bundle = dir.path().join("run.bundle");
    let exported = with_host(
        &store,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "trace",
            "export",
            &id,
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    text_output(&exported);
    let proven = text_output(&verify(&bundle, &[&dir.path().join("host.pub")]));
    assert_contains(&proven, &["signed by host"]);
}

/// Signs one call of calc into `store` under `policy`.
fn signed_call(store: &Path, policy: &Path, expression: &str) {
    let input = format!("{{\"expression\": \"{expression}\"}}");
    let called = with_host(
        store,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "call",
            plugin("calc.wasm").to_str().unwrap(),
            "--input",
            &input,
        ],
    );
    json_output(&called);
}

/// Exports the last run of `store` to `bundle`.
fn export_last(store: &Path, bundle: &Path) {
    let run = last_run(store);
    text_output(&run_with_store(
        store,
        &["trace", "export", &run, "-o", bundle.to_str().unwrap()],
    ));
}

/// Rewrites the store's log without run `run`, as someone with the file but not the host key
/// would: its leaves renumbered and every subtree recomputed.
fn drop_from_log(store: &Path, run: &str) {
    use baton::journal::tlog::{Hash, MemoryLog};
    let db = Connection::open(store).unwrap();
    let kept: Vec<(String, Vec<u8>)> = db
        .prepare("SELECT run, hash FROM tlog_leaves WHERE run <> ?1 ORDER BY idx")
        .unwrap()
        .query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    db.execute_batch("DELETE FROM tlog_leaves; DELETE FROM tlog_nodes;")
        .unwrap();
    let mut log = MemoryLog::default();
    for (index, (run, hash)) in kept.into_iter().enumerate() {
        let hash: Hash = hash.try_into().unwrap();
        log.append(hash);
        db.execute(
            "INSERT INTO tlog_leaves (idx, run, hash) VALUES (?1, ?2, ?3)",
            rusqlite::params![index as i64, run, &hash[..]],
        )
        .unwrap();
    }
    for ((level, at), node) in log.nodes() {
        db.execute(
            "INSERT INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
            rusqlite::params![level, *at as i64, &node[..]],
        )
        .unwrap();
    }
}

/// The log only grows: a checkpoint saved after one run is extended by the log after a
/// second; a bundle carries its run's inclusion proof, and a changed proof is named; a run
/// dropped from the log afterwards is caught against the saved checkpoint.
#[test]
fn the_log_only_grows_and_a_dropped_run_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let policy = signing_host(dir.path());
    let key = dir.path().join("host.pub");
    let key_arg = key.to_str().unwrap();
    let store = dir.path().join("journal.db");
    signed_call(&store, &policy, "1 + 1");
    let first = last_run(&store);
    let saved = dir.path().join("old.checkpoint");
    let checkpoint = text_output(&run_with_store(&store, &["log", "checkpoint"]));
    assert!(
        checkpoint.starts_with("baton-host/") && checkpoint.contains("\n1\n"),
        "{checkpoint}"
    );
    std::fs::write(&saved, &checkpoint).unwrap();

    signed_call(&store, &policy, "2 + 2");
    let proved = text_output(&run_with_store(
        &store,
        &[
            "log",
            "prove-consistency",
            saved.to_str().unwrap(),
            "--key",
            key_arg,
        ],
    ));
    assert_contains(
        &proved,
        &["consistent: the log of 2 runs extends the checkpoint of 1"],
    );

    let bundle = dir.path().join("second.bundle");
    export_last(&store, &bundle);
    assert_contains(
        &text_output(&verify(&bundle, &[&key])),
        &["transparency log (2 of 2)"],
    );
    Connection::open(&bundle)
        .unwrap()
        .execute_batch("UPDATE tlog_proofs SET proof = zeroblob(32)")
        .unwrap();
    let line = error_line(&verify(&bundle, &[&key]), 4);
    assert_contains(&line, &["transparency log does not hold", "does not lead"]);

    // The first run dropped from the log, which the host then goes on appending to.
    drop_from_log(&store, &first);
    signed_call(&store, &policy, "3 + 3");
    let out = run_with_store(
        &store,
        &[
            "log",
            "prove-consistency",
            saved.to_str().unwrap(),
            "--key",
            key_arg,
        ],
    );
    assert_contains(
        &error_line(&out, 4),
        &[
            "does not extend the checkpoint of 1",
            "removed or rewritten",
        ],
    );
}

/// `baton log checkpoint` into `path`.
fn save_checkpoint(store: &Path, path: &Path) {
    let note = text_output(&run_with_store(store, &["log", "checkpoint"]));
    std::fs::write(path, note).unwrap();
}

/// `trace verify TARGET --key KEY --checkpoint HELD`, with the store at `store`.
fn verify_in(store: &Path, target: &str, key: &Path, held: &Path) -> Output {
    run_with_store(
        store,
        &[
            "trace",
            "verify",
            target,
            "--key",
            key.to_str().unwrap(),
            "--checkpoint",
            held.to_str().unwrap(),
        ],
    )
}

/// A verifier holding a checkpoint of their own: a bundle exported early is in it, and in a
/// later one proved from the store's log; a run logged after the checkpoint is not in it; a
/// later checkpoint cannot be linked without the log; a log rewritten since is caught.
#[test]
fn a_run_is_checked_against_a_checkpoint_the_verifier_holds() {
    let dir = tempfile::tempdir().unwrap();
    let policy = signing_host(dir.path());
    let key = dir.path().join("host.pub");
    let store = dir.path().join("journal.db");
    let export = |name: &str| {
        let bundle = dir.path().join(name);
        export_last(&store, &bundle);
        bundle
    };
    signed_call(&store, &policy, "1 + 1");
    let first = export("first.bundle");
    let first = first.to_str().unwrap();
    let (one, three) = (
        dir.path().join("one.checkpoint"),
        dir.path().join("three.checkpoint"),
    );
    save_checkpoint(&store, &one);
    signed_call(&store, &policy, "2 + 2");
    let second = last_run(&store);
    signed_call(&store, &policy, "3 + 3");
    save_checkpoint(&store, &three);
    let third = export("third.bundle");

    assert_contains(
        &text_output(&verify_in(&store, first, &key, &one)),
        &[
            "signed by host, in the checkpoint",
            "one.checkpoint (1 of 1)",
        ],
    );
    // A later checkpoint: the bundle's proof is to a log of 1, linked to 3 by the store's log.
    assert_contains(
        &text_output(&verify_in(&store, first, &key, &three)),
        &["three.checkpoint (1 of 3)"],
    );
    // The same run named in the store rather than as a bundle.
    assert_contains(
        &text_output(&verify_in(&store, &second, &key, &three)),
        &["(2 of 3)"],
    );
    // Without the log, a checkpoint of another size proves nothing.
    let elsewhere = dir.path().join("elsewhere.db");
    assert_contains(
        &error_line(&verify_in(&elsewhere, first, &key, &three), 4),
        &[
            "no proof that the log of 3 runs extends the log of 1",
            "give --store",
        ],
    );
    // A run logged after the checkpoint is not in it.
    assert_contains(
        &error_line(&verify_in(&store, third.to_str().unwrap(), &key, &one), 4),
        &["it is run 3 of the log, and the checkpoint given holds 1"],
    );
    // The second run dropped from the log: the first's bundle no longer links to the
    // checkpoint of three runs saved before.
    drop_from_log(&store, &second);
    signed_call(&store, &policy, "4 + 4");
    assert_contains(
        &error_line(&verify_in(&store, first, &key, &three), 4),
        &[
            "the log of 3 runs does not extend the log of 1",
            "removed or rewritten",
        ],
    );
    // A checkpoint needs the key that signed it.
    let no_key = run_with_store(
        &store,
        &[
            "trace",
            "verify",
            first,
            "--checkpoint",
            one.to_str().unwrap(),
        ],
    );
    assert_eq!(no_key.status.code(), Some(2));
}

/// `baton serve` signing every gateway request's run is killed (-9) while requests keep
/// coming: whatever it was doing, every run in the log is signed and ended, every stored
/// subtree is what the leaves make, the log extends its newest checkpoint, and a run cut off
/// is not in the log and verifies as incomplete.
#[test]
fn a_host_killed_while_signing_leaves_a_log_that_verifies() {
    use crate::model_server::{ModelServer, Reply};
    use crate::serve::Served;
    use baton::journal::tlog::{Hash, MemoryLog};

    let dir = tempfile::tempdir().unwrap();
    let upstream = ModelServer::start(vec![], Reply::ok("fine", (3, 2)));
    signing_host(dir.path());
    let policy = write_policy(
        dir.path(),
        &format!(
            "[journal]\nsigning_key = \"host.key\"\n\n{}",
            upstream.policy("test", "")
        ),
    );
    let store = dir.path().join("journal.db");
    let key = text_output(&run_with_store(
        &store,
        &["keys", "create", "--name", "load", "--scopes", "llm"],
    ))
    .trim()
    .to_string();
    let mut command = baton();
    command
        .env("BATON_STORE", &store)
        .env("BATON_HOST_KEY_PASSWORD", PASSWORD)
        .args(["--policy", policy.to_str().unwrap()]);
    let served = Served::spawn(command, &[]);
    let url = served.url("/v1/chat/completions");
    // Until the server is gone: four clients, each asking new questions one after another.
    let load = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let clients: Vec<_> = (0..4)
                .map(|i| {
                    let (client, url, key) = (client.clone(), url.clone(), key.clone());
                    tokio::spawn(async move {
                        for round in 0.. {
                            let body = serde_json::json!({
                                "model": "test",
                                "max_tokens": 10,
                                "messages": [{"role": "user", "content": format!("q {i}/{round}")}],
                            });
                            let sent = client.post(&url).bearer_auth(&key).json(&body).send();
                            if sent.await.is_err() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            for client in clients {
                client.await.unwrap();
            }
        });
    });
    // Kill it once a few runs are logged, whatever it is doing then.
    let logged = |db: &Connection| -> i64 {
        db.query_row("SELECT count(*) FROM tlog_leaves", [], |r| r.get(0))
            .unwrap_or(0)
    };
    let db = Connection::open(&store).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while logged(&db) < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "runs are not being logged"
        );
        std::thread::yield_now();
    }
    drop(served);
    load.join().unwrap();

    // Every logged run is signed and ended.
    let unsigned: i64 = db
        .query_row(
            "SELECT count(*) FROM tlog_leaves l LEFT JOIN run_envelopes e ON e.run = l.run
             LEFT JOIN runs r ON r.run = l.run
             WHERE e.run IS NULL OR r.status = 'running'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unsigned, 0);
    // The stored subtrees are exactly those the leaves make.
    let leaves: Vec<Vec<u8>> = db
        .prepare("SELECT hash FROM tlog_leaves ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut expected = MemoryLog::default();
    for hash in leaves {
        expected.append(hash.try_into().unwrap());
    }
    let stored: HashMap<(u32, u64), Hash> = db
        .prepare("SELECT level, idx, hash FROM tlog_nodes")
        .unwrap()
        .query_map([], |r| {
            let hash: Vec<u8> = r.get(2)?;
            Ok((
                (r.get(0)?, r.get::<_, i64>(1)? as u64),
                hash.try_into().unwrap(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(&stored, expected.nodes());
    // The log extends its newest checkpoint.
    let newest = dir.path().join("newest.checkpoint");
    std::fs::write(
        &newest,
        text_output(&run_with_store(&store, &["log", "checkpoint"])),
    )
    .unwrap();
    let key_path = dir.path().join("host.pub");
    let proved = run_with_store(
        &store,
        &[
            "log",
            "prove-consistency",
            newest.to_str().unwrap(),
            "--key",
            key_path.to_str().unwrap(),
        ],
    );
    assert_contains(&text_output(&proved), &["consistent"]);
    // Runs cut off are not logged, and verify as incomplete.
    let cut: Vec<String> = db
        .prepare("SELECT run FROM runs WHERE status = 'running'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for run in cut {
        let verified = text_output(&run_with_store(&store, &["trace", "verify", &run]));
        assert_contains(&verified, &["incomplete"]);
    }
}

/// A change a forger makes to the first event it accepts.
type Forgery = fn(&mut EventKind) -> bool;

/// The rewrite attack on what a run received: a recorded LLM answer and a recorded HTTP
/// response, changed and every hash recomputed, verify as chains (and a replay would serve
/// them "identically") but not as the host's signed run.
#[test]
fn forged_llm_and_http_responses_are_caught() {
    use crate::model_server::{ModelServer, Reply};
    use crate::server::Server;
    use baton::journal::event::{HttpOutcome, LlmOutcome};

    let dir = tempfile::tempdir().unwrap();
    signing_host(dir.path());
    let key = dir.path().join("host.pub");
    let upstream = ModelServer::start(vec![], Reply::ok("the true answer", (3, 2)));
    let site = Server::start();
    let policy = write_policy(
        dir.path(),
        &format!(
            "[journal]\nsigning_key = \"host.key\"\n\n[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n\n{}",
            site.port,
            upstream.policy("test", "")
        ),
    );
    let policy = policy.to_str().unwrap();
    let store = dir.path().join("journal.db");
    let export = |name: &str| {
        let bundle = dir.path().join(name);
        let id = last_run(&store);
        text_output(&run_with_store(
            &store,
            &["trace", "export", &id, "-o", bundle.to_str().unwrap()],
        ));
        bundle
    };

    let asked = with_host(
        &store,
        &[
            "--policy",
            policy,
            "llm",
            "complete",
            "--model",
            "test",
            "what is true?",
        ],
    );
    assert_contains(&text_output(&asked), &["the true answer"]);
    let answered = export("llm.bundle");
    let fetch = plugin("fetch.wasm");
    let input = serde_json::json!({ "url": site.url("/hello") }).to_string();
    let fetched = with_host(
        &store,
        &[
            "--policy",
            policy,
            "call",
            fetch.to_str().unwrap(),
            "--input",
            &input,
        ],
    );
    assert_eq!(json_output(&fetched)["body"], "hello");
    let responded = export("http.bundle");

    let forgeries: [(&Path, Forgery); 2] = [
        (&answered, |kind| match kind {
            EventKind::Llm {
                outcome: LlmOutcome::Completed { text, .. },
                ..
            } => {
                *text = "a forged answer".into();
                true
            }
            _ => false,
        }),
        (&responded, |kind| match kind {
            EventKind::Http {
                outcome: HttpOutcome::Response { body, .. },
                ..
            } => {
                *body = "Zm9yZ2Vk".into();
                true
            }
            _ => false,
        }),
    ];
    for (bundle, change) in forgeries {
        assert_contains(&text_output(&verify(bundle, &[&key])), &["signed by host"]);
        let forged = bundle.with_extension("forged");
        forge(bundle, &forged, change);
        assert!(verify(&forged, &[]).status.success());
        let line = error_line(&verify(&forged, &[&key]), 4);
        assert_contains(&line, &["differs from the signed root", "rewritten"]);
    }
}

//! The cache of pure calls: a tool that reaches nothing outside its sandbox and reads no clock
//! or randomness is served again from the cache, journaled as a `cache_hit` that a replay checks
//! by running the component again; calls that read the world, or whose policy or workflow opts
//! out, run every time.

use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use crate::common::*;

/// `baton call` of `tool` with `input`, into the store at `store`, under `policy` if given;
/// returns the output and the run's id.
pub(crate) fn call(
    store: &Path,
    policy: Option<&Path>,
    tool: &str,
    input: &str,
) -> (Value, String) {
    let tool = plugin(tool);
    let mut args = Vec::new();
    if let Some(policy) = policy {
        args.extend(["--policy", policy.to_str().unwrap()]);
    }
    args.extend(["call", tool.to_str().unwrap(), "--input", input]);
    let output = json_output(&run_with_store(store, &args));
    (output, last_run(store))
}

/// The `cache_hit` events of run `id`.
pub(crate) fn hits(store: &Path, id: &str) -> Vec<Value> {
    let shown = text_output(&run_with_store(store, &["trace", "show", id, "--json"]));
    let events: Vec<Value> = serde_json::from_str(&shown).unwrap();
    events
        .into_iter()
        .filter(|e| e["kind"] == "cache_hit")
        .collect()
}

fn replay(store: &Path, id: &str) -> std::process::Output {
    let bundle = store.with_file_name(format!("{id}.bundle"));
    text_output(&run_with_store(
        store,
        &["trace", "export", id, "-o", bundle.to_str().unwrap()],
    ));
    run(&["replay", bundle.to_str().unwrap()])
}

#[test]
fn a_pure_call_is_served_again_and_its_replay_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let input = r#"{"expression": "6 * 7"}"#;
    let (first, first_id) = call(&store, None, "calc.wasm", input);
    assert!(hits(&store, &first_id).is_empty());
    let (again, again_id) = call(&store, None, "calc.wasm", input);
    assert_eq!(again, first);
    let served = hits(&store, &again_id);
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["payload"]["run"], first_id.as_str());
    assert_eq!(served[0]["chain"], "step:call");
    assert!(dir.path().join("pure-calls.db").exists());
    let shown = text_output(&run_with_store(&store, &["trace", "show", &again_id]));
    assert_contains(
        &shown,
        &[&format!(
            "served from the cache of pure calls, as run {first_id} returned it"
        )],
    );

    // The run served from the cache verifies and replays: the replay ran calc again.
    assert_contains(
        &text_output(&run_with_store(&store, &["trace", "verify", &again_id])),
        &["verified: ", "complete"],
    );
    assert_contains(&text_output(&replay(&store, &again_id)), &["identical: "]);

    // Another input is another call.
    let (other, other_id) = call(&store, None, "calc.wasm", r#"{"expression": "6 * 8"}"#);
    assert_ne!(other, first);
    assert!(hits(&store, &other_id).is_empty());
}

/// The cache serves what its store holds; a replay, which runs the component, is what proves
/// a served result.
#[test]
fn a_result_the_cache_did_not_get_from_the_component_fails_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let input = r#"{"expression": "6 * 7"}"#;
    let (first, _) = call(&store, None, "calc.wasm", input);
    let returned = first.to_string();
    let forged = returned.replace("42", "43");
    assert_ne!(returned, forged, "calc returned {returned}");
    Connection::open(dir.path().join("pure-calls.db"))
        .unwrap()
        .execute(
            "UPDATE pure_calls SET events = replace(events, ?1, ?2)",
            ["42", "43"],
        )
        .unwrap();
    let (served, id) = call(&store, None, "calc.wasm", input);
    assert_eq!(served.to_string(), forged);
    let out = replay(&store, &id);
    assert_contains(
        &error_line(&out, 6),
        &["replay diverged at chain 'step:call'", "invocation_ended"],
    );
}

#[test]
fn calls_that_read_the_world_or_opt_out_run_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let twice = |policy: Option<&Path>, tool: &str, input: &str| {
        call(&store, policy, tool, input);
        let (_, id) = call(&store, policy, tool, input);
        hits(&store, &id)
    };
    // Randomness and the clock.
    assert!(
        twice(
            None,
            "testing/effects.wasm",
            r#"{"random_bytes": 4, "logs": 1}"#
        )
        .is_empty()
    );
    // The policy opts the plugin out.
    let opted_out = write_policy(dir.path(), "[plugins.calc]\ncache = false\n");
    assert!(twice(Some(&opted_out), "calc.wasm", r#"{"expression": "2 + 3"}"#).is_empty());
    // A plugin granted the network may reach the world, whether or not it does.
    let networked = dir.path().join("net.toml");
    std::fs::write(
        &networked,
        "[plugins.calc.net]\nallow = [\"http://127.0.0.1:9\"]\n",
    )
    .unwrap();
    assert!(twice(Some(&networked), "calc.wasm", r#"{"expression": "2 + 4"}"#).is_empty());
    // Without the opt-out, the same call is served.
    assert_eq!(
        twice(None, "calc.wasm", r#"{"expression": "2 + 3"}"#).len(),
        1
    );
}

/// `trace prune` removes the cached pure calls with the runs: a pruned call runs again.
#[test]
fn pruning_runs_prunes_the_pure_calls_they_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let input = r#"{"expression": "6 * 7"}"#;
    call(&store, None, "calc.wasm", input);
    let pruned = text_output(&run_with_store(&store, &["trace", "prune", "--days", "0"]));
    assert_contains(
        &pruned,
        &["removed 1 run started before", "and 1 cached pure call"],
    );
    let (_, again) = call(&store, None, "calc.wasm", input);
    assert!(hits(&store, &again).is_empty(), "a pruned call was served");
    // A store whose calls were never cached gets no cache file from pruning.
    let empty = tempfile::tempdir().unwrap();
    let store = empty.path().join("journal.db");
    let pruned = text_output(&run_with_store(&store, &["trace", "prune", "--days", "30"]));
    assert_contains(&pruned, &["and 0 cached pure calls"]);
    assert!(!empty.path().join("pure-calls.db").exists());
}

//! With nothing granted, every capability a plugin asks for is refused with a typed error
//! the guest can handle, and each refusal is journaled and replays identically.

use crate::common::*;

#[test]
fn ungranted_capabilities_are_refused_journaled_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("journal.db");
    let bundle = dir.path().join("prober.bundle");
    let prober = plugin("testing/prober.wasm");
    let out = run_with_store(
        &store,
        &[
            "call",
            prober.to_str().unwrap(),
            "--input",
            "{}",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    let answers = json_output(&out);
    assert_contains(
        answers["llm"].as_str().unwrap(),
        &["NotGranted(\"LLM model 'gpt-4o' is not granted to 'prober' by its policy\")"],
    );
    assert_contains(
        answers["tools"].as_str().unwrap(),
        &["NotGranted(\"calling tool 'calc' is not granted to 'prober' by its policy\")"],
    );
    assert_eq!(answers["http"], "refused: ErrorCode::HttpRequestDenied");

    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(
        &shown,
        &[
            "denied             llm: LLM model 'gpt-4o' is not granted",
            "denied             tools: calling tool 'calc' is not granted",
            "denied             http: GET http://127.0.0.1:9/ is not granted",
        ],
    );
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

#[test]
fn llm_grants_name_models_and_cap_max_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let prober = plugin("testing/prober.wasm");
    let ask = |grant: &str| {
        let policy = dir.path().join("llm.toml");
        std::fs::write(&policy, format!("[plugins.prober.llm]\n{grant}\n")).unwrap();
        let out = run(&[
            "call",
            prober.to_str().unwrap(),
            "--input",
            "{}",
            "--policy",
            policy.to_str().unwrap(),
        ]);
        json_output(&out)["llm"].as_str().unwrap().to_string()
    };
    // Another model only: still refused.
    assert_contains(
        &ask("models = [\"local-small\"]"),
        &["NotGranted(\"LLM model 'gpt-4o' is not granted to 'prober' by its policy\")"],
    );
    // The prober asks for 16 tokens.
    assert_contains(
        &ask("models = [\"gpt-4o\"]\nmax_tokens = 8"),
        &[
            "NotGranted(\"LLM model 'gpt-4o' with max_tokens 16 (above llm.max_tokens 8) is not granted",
        ],
    );
    // Granted: it passes the policy and reaches the router, which has no route for it.
    assert_contains(
        &ask("models = [\"gpt-4o\"]\nmax_tokens = 64"),
        &[
            "InvalidArgument(\"model 'gpt-4o' has no route: add [llm.models.gpt-4o] to the policy\")",
        ],
    );
}

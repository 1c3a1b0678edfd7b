//! `baton policy check` and `baton policy explain`.

use crate::common::*;

fn write_policy(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn check_accepts_a_valid_policy_and_names_its_sections() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        &dir,
        "[plugins.fetch.net]\nallow = [\"https://*.example.org\"]\n",
    );
    let out = text_output(&run(&["policy", "check", &policy]));
    assert_contains(&out, &["is a valid policy (sections for fetch)"]);
}

#[test]
fn check_refuses_a_bad_policy_with_exit_5_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        &dir,
        "[plugins.fetch.net]\nallow = [\"https://*.example.org\"]\nmethod = [\"GET\"]\n",
    );
    let line = error_line(&run(&["policy", "check", &policy]), 5);
    assert_contains(
        &line,
        &["policy.toml, line 3, column 1", "unknown field `method`"],
    );
}

#[test]
fn explain_lists_granted_denied_and_unused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        &dir,
        "[plugins.prober.env]\nallow = [\"TZ\"]\n[plugins.calc.net]\nallow = [\"http://127.0.0.1:8080\"]\n",
    );
    let prober = plugin("testing/prober.wasm");
    let report = json_output(&run(&[
        "policy",
        "explain",
        prober.to_str().unwrap(),
        "--policy",
        &policy,
        "--json",
    ]));
    let capabilities = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["capability"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(capabilities("granted"), ["env"]);
    assert_eq!(capabilities("denied"), ["net", "llm", "tools"]);
    assert!(capabilities("unused").is_empty());

    let calc = plugin("calc.wasm");
    let text = text_output(&run(&[
        "policy",
        "explain",
        calc.to_str().unwrap(),
        "--policy",
        &policy,
    ]));
    assert_contains(
        &text,
        &[
            "granted but unused:\n  net      http://127.0.0.1:8080",
            "does not import wasi:http/outgoing-handler",
        ],
    );
}

#[test]
fn a_section_pinned_to_another_digest_grants_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fetch = plugin("fetch.wasm");
    let pinned = format!("sha256:{}", "0".repeat(64));
    let policy = write_policy(
        &dir,
        &format!(
            "[plugins.fetch]\ndigest = \"{pinned}\"\n[plugins.fetch.net]\nallow = [\"http://127.0.0.1:8080\"]\n"
        ),
    );
    let text = text_output(&run(&[
        "policy",
        "explain",
        fetch.to_str().unwrap(),
        "--policy",
        &policy,
    ]));
    assert_contains(
        &text,
        &[
            "requested but denied:\n  net      imports wasi:http/outgoing-handler but no net.allow",
            &format!("pins [plugins.fetch] to {pinned}"),
        ],
    );
    // And at run time the pinned section does not apply either.
    let out = call(
        "fetch.wasm",
        r#"{"url": "http://127.0.0.1:8080/"}"#,
        &["--policy", &policy],
    );
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
}

#[test]
fn a_malformed_digest_pin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(&dir, "[plugins.fetch]\ndigest = \"md5:abc\"\n");
    let line = error_line(&run(&["policy", "check", &policy]), 5);
    assert_contains(
        &line,
        &[
            "line 2",
            "'md5:abc' is not a digest of the form sha256:<64 hex digits>",
        ],
    );
}

#[test]
fn explain_reports_models_tools_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        &dir,
        "[plugins.prober.tools]\ncall = [\"calc\"]\n[plugins.prober.llm]\nmodels = [\"gpt-4o\"]\n\
         max_tokens = 100\n[plugins.prober.fs]\nread = [\"data\"]\n\
         [plugins.fs-probe.fs]\nwrite = [\"out:/out\"]\n",
    );
    let prober = plugin("testing/prober.wasm");
    let text = text_output(&run(&[
        "policy",
        "explain",
        prober.to_str().unwrap(),
        "--policy",
        &policy,
    ]));
    assert_contains(
        &text,
        &[
            "llm      gpt-4o; at most 100 tokens per completion",
            "tools    calc",
            "granted but unused:\n  fs       ",
            "data at /data (read-only, from ",
        ],
    );
    let fs_probe = plugin("testing/fs-probe.wasm");
    let text = text_output(&run(&[
        "policy",
        "explain",
        fs_probe.to_str().unwrap(),
        "--policy",
        &policy,
    ]));
    assert_contains(
        &text,
        &["granted:\n  fs       ", "out at /out (read-write, from "],
    );
}

/// `policy check` refuses a grant of a directory that is not there, which would fail every
/// call it applies to, naming the plugin, the directory and the file.
#[test]
fn policy_check_refuses_a_grant_of_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let policy = write_policy(
        &dir,
        "[plugins.fs-probe.fs]\nread = [\"data\"]\nwrite = [\"nowhere:/out\"]\n",
    );
    let line = error_line(&run(&["policy", "check", &policy]), 5);
    assert_contains(
        &line,
        &[
            "directory ",
            "nowhere granted to 'fs-probe' by ",
            "it is not a directory on this machine; create it or fix the policy",
        ],
    );
    std::fs::create_dir(dir.path().join("nowhere")).unwrap();
    let out = text_output(&run(&["policy", "check", &policy]));
    assert_contains(&out, &["is a valid policy (sections for fs-probe)"]);
}

//! Environment variables and secrets: only what is granted reaches a plugin, a secret only
//! the plugin it is granted to, and no journal or bundle ever holds a secret in clear.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::*;

const SECRET: &str = "tok-4f9a1c2e7b-very-secret";

/// A policy granting `env-reader` the variable BATON_TEST_VISIBLE and the secret
/// BATON_TEST_TOKEN, whose value lives in a secrets file beside it.
fn policy(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("secrets.toml"),
        format!("BATON_TEST_TOKEN = \"{SECRET}\"\n"),
    )
    .unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        "[secrets]\nfile = \"secrets.toml\"\n\n\
         [plugins.env-reader]\nsecrets = [\"BATON_TEST_TOKEN\"]\n\n\
         [plugins.env-reader.env]\nallow = [\"BATON_TEST_VISIBLE\"]\n",
    )
    .unwrap();
    path
}

fn read_env(dir: &Path, policy: Option<&Path>, extra: &[&str]) -> std::process::Output {
    let reader = plugin("testing/env-reader.wasm");
    let input =
        r#"{"names": ["BATON_TEST_VISIBLE", "BATON_TEST_HIDDEN", "BATON_TEST_TOKEN", "HOME"]}"#;
    let mut command = baton();
    command
        .env("BATON_STORE", dir.join("journal.db"))
        .env("BATON_TEST_VISIBLE", "shown")
        .env("BATON_TEST_HIDDEN", "kept out")
        .args(["call", reader.to_str().unwrap(), "--input", input])
        .args(extra);
    if let Some(policy) = policy {
        command.arg("--policy").arg(policy);
    }
    command.output().unwrap()
}

#[test]
fn nothing_from_the_environment_is_visible_without_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let out = json_output(&read_env(dir.path(), None, &[]));
    let vars = out["vars"].as_object().unwrap();
    assert!(vars.values().all(|v| v.is_null()), "{out}");
}

#[test]
fn granted_variables_and_secrets_are_visible_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let out = json_output(&read_env(dir.path(), Some(&policy), &[]));
    assert_eq!(out["vars"]["BATON_TEST_VISIBLE"], "shown");
    assert_eq!(out["vars"]["BATON_TEST_TOKEN"], SECRET);
    assert!(out["vars"]["BATON_TEST_HIDDEN"].is_null());
    assert!(out["vars"]["HOME"].is_null());
}

#[test]
fn a_secret_granted_to_one_plugin_is_invisible_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let snoop = plugin("testing/env-snoop.wasm");
    let out = json_output(
        &baton()
            .env("BATON_STORE", dir.path().join("journal.db"))
            .env("BATON_TEST_TOKEN", SECRET)
            .args(["call", snoop.to_str().unwrap(), "--input", "{}"])
            .arg("--policy")
            .arg(&policy)
            .output()
            .unwrap(),
    );
    assert_eq!(out["value"], 0, "the snoop saw {}", out["names"]);
}

#[test]
fn no_journal_or_bundle_holds_a_secret_and_the_run_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let bundle = dir.path().join("secret.bundle");
    let out = read_env(
        dir.path(),
        Some(&policy),
        &["--bundle", bundle.to_str().unwrap()],
    );
    assert_eq!(json_output(&out)["vars"]["BATON_TEST_TOKEN"], SECRET);

    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let file = file.unwrap().path();
        if file.file_name().is_some_and(|n| n == "secrets.toml") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        for needle in [
            SECRET.as_bytes(),
            &SECRET.as_bytes()[..12],
            encoded.as_bytes(),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the secret",
                file.display()
            );
        }
    }
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(
        &shown,
        &["environment", "BATON_TEST_TOKEN=[secret:BATON_TEST_TOKEN]"],
    );
    // The replay needs neither the secrets file nor the variable.
    std::fs::remove_file(dir.path().join("secrets.toml")).unwrap();
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

#[test]
fn a_granted_secret_without_a_value_is_a_policy_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "[plugins.env-reader]\nsecrets = [\"BATON_TEST_ABSENT\"]\n",
    )
    .unwrap();
    let line = error_line(&read_env(dir.path(), Some(&path), &[]), 5);
    assert_contains(
        &line,
        &[
            "secret 'BATON_TEST_ABSENT' granted to 'env-reader' has no value: set \
             BATON_TEST_ABSENT in the environment",
        ],
    );
}

#[test]
fn a_missing_secrets_file_names_the_file_and_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "[secrets]\nfile = \"absent.toml\"\n").unwrap();
    let line = error_line(&read_env(dir.path(), Some(&path), &[]), 5);
    assert_contains(
        &line,
        &[
            "cannot read secrets file ",
            "absent.toml named in [secrets] of ",
            "policy.toml",
        ],
    );
}

/// A secret granted to a callee and returned to its caller stays out of the caller's events
/// too (its `invocation_ended`, the run chain), in the journal and the bundle; the run replays.
#[test]
fn a_callees_secret_returned_to_its_caller_is_kept_out_of_every_chain() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str("\n[plugins.caller.tools]\ncall = [\"env-reader\"]\n");
    std::fs::write(&policy, text).unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    copy_plugin("testing/env-reader.wasm", &tools);
    let bundle = dir.path().join("nested.bundle");
    let caller = plugin("testing/caller.wasm");
    let input = r#"{"calls": [{"tool": "env-reader", "input": {"names": ["BATON_TEST_TOKEN"]}}]}"#;
    let out = baton()
        .env("BATON_STORE", dir.path().join("journal.db"))
        .args(["call", caller.to_str().unwrap(), "--input", input])
        .args(["--tools", tools.to_str().unwrap(), "--policy"])
        .arg(&policy)
        .args(["--bundle", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    // The caller got the secret, as its callee was granted it.
    assert!(
        text_output(&out).contains(SECRET),
        "the caller did not get the secret"
    );
    for file in [dir.path().join("journal.db"), bundle.clone()] {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the secret",
            file.display()
        );
    }
    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap(), "--json"]));
    assert_contains(&shown, &["[secret:BATON_TEST_TOKEN]"]);
    std::fs::remove_file(dir.path().join("secrets.toml")).unwrap();
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

//! Whom a component's signature must come from: the built-in policy trusts nobody, each policy
//! layer's keys add to those below it unless it says `replace = true`, and no private key is
//! kept in the repository.

use std::path::Path;

use crate::common::*;

const PASSWORD: &str = "layered trust";
const INPUT: &str = r#"{"expression": "6 * 7"}"#;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A key pair in `dir/NAME/`, its public half renamed `NAME.pub` (a key's name is its file
/// name); returns the private key and the public key.
fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let keys = dir.join(name);
    text_output(
        &baton()
            .env("BATON_KEY_PASSWORD", PASSWORD)
            .args(["keygen", "--out", s(&keys)])
            .output()
            .unwrap(),
    );
    let public = keys.join(format!("{name}.pub"));
    std::fs::rename(keys.join("baton.pub"), &public).unwrap();
    (keys.join("baton.key"), public)
}

/// A copy of calc in `dir` named `NAME.wasm`, signed with `key` instead of the development key.
fn signed_calc(dir: &Path, name: &str, key: &Path) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.wasm"));
    std::fs::copy(plugin("calc.wasm"), &file).unwrap();
    text_output(
        &baton()
            .env("BATON_KEY_PASSWORD", PASSWORD)
            .args(["sign", s(&file), "--key", s(key)])
            .output()
            .unwrap(),
    );
    file
}

#[test]
fn the_built_in_policy_trusts_nobody_and_says_how_to_trust_a_key() {
    let out = baton()
        .env_remove("BATON_POLICY")
        .args(["call", s(&plugin("calc.wasm")), "--input", INPUT])
        .output()
        .unwrap();
    let line = error_line(&out, 4);
    assert_contains(
        &line,
        &[
            "calc.wasm (sha256:",
            "is not trusted: its signature ",
            "the built-in policy trusts nobody",
            "[trust] keys = [\"KEY.pub\"]",
            "baton keygen",
        ],
    );
    // The same component loads once the policy that trusts this machine's key is layered.
    let out = run(&["call", s(&plugin("calc.wasm")), "--input", INPUT]);
    assert_eq!(text_output(&out).trim(), r#"{"value":42.0}"#);
}

#[test]
fn a_layer_that_trusts_a_key_keeps_trusting_the_keys_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "mine");
    let mine = signed_calc(dir.path(), "mine", &key);
    let project = dir.path().join("project.toml");
    std::fs::write(&project, "[trust]\nkeys = [\"mine/mine.pub\"]\n").unwrap();
    // Both the component signed with the project's key and the one signed with the
    // development key (trusted by the layer beneath) load.
    for component in [mine.as_path(), &plugin("calc.wasm")] {
        let out = run(&[
            "call",
            s(component),
            "--policy",
            s(&project),
            "--input",
            INPUT,
        ]);
        assert_eq!(text_output(&out).trim(), r#"{"value":42.0}"#);
    }
    // `policy show`-style evidence: the refusal of a stranger's component names both
    // trusted keys and the files that named them.
    let (stranger_key, _) = keygen(dir.path(), "stranger");
    let stranger = signed_calc(dir.path(), "stranger", &stranger_key);
    let out = run(&[
        "call",
        s(&stranger),
        "--policy",
        s(&project),
        "--input",
        INPUT,
    ]);
    let line = error_line(&out, 4);
    assert_contains(
        &line,
        &[
            "does not verify with any trusted key (trusted: key baton-dev from ",
            "trust.toml, key mine from ",
            "project.toml)",
        ],
    );
}

#[test]
fn a_layer_that_replaces_the_keys_trusts_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "release");
    let release = signed_calc(dir.path(), "release", &key);
    let production = dir.path().join("production.toml");
    std::fs::write(
        &production,
        "[trust]\nreplace = true\nkeys = [\"release/release.pub\"]\n",
    )
    .unwrap();
    let call = |component: &Path| {
        run(&[
            "call",
            s(component),
            "--policy",
            s(&production),
            "--input",
            INPUT,
        ])
    };
    assert_eq!(text_output(&call(&release)).trim(), r#"{"value":42.0}"#);
    let line = error_line(&call(&plugin("calc.wasm")), 4);
    assert_contains(
        &line,
        &["does not verify with any trusted key (trusted: key release from "],
    );
    assert!(!line.contains("baton-dev"), "{line}");
}

/// A private key in the repository would let anyone sign for whoever trusts it.
#[test]
fn no_private_key_is_kept_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                    dirs.push(path);
                }
            } else if std::fs::read(&path).is_ok_and(|bytes| holds_private_key(&bytes)) {
                found.push(path);
            }
        }
    }
    assert!(
        found.is_empty(),
        "private keys in the repository: {found:?}"
    );
}

/// Whether `bytes` hold a PEM private key: a line `-----BEGIN … PRIVATE KEY-----`.
fn holds_private_key(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes).lines().any(|line| {
        let line = line.trim();
        line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----")
    })
}

/// Loading applies the checks `baton verify` applies to an attestation beside a component.
#[test]
fn a_tampered_or_misplaced_attestation_is_refused_at_load_as_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let calc = copy_plugin("calc.wasm", dir.path());
    let attestation = dir.path().join("calc.wasm.intoto.json");
    let genuine = std::fs::read_to_string(&attestation).unwrap();
    let call = || run(&["call", s(&calc), "--input", INPUT]);
    assert_eq!(text_output(&call()).trim(), r#"{"value":42.0}"#);

    // Its payload edited after signing: the envelope's signature no longer holds.
    let mut envelope: serde_json::Value = serde_json::from_str(&genuine).unwrap();
    let payload = envelope["payload"].as_str().unwrap().to_string();
    let flipped = if payload.starts_with('e') { "f" } else { "e" };
    envelope["payload"] = format!("{flipped}{}", &payload[1..]).into();
    std::fs::write(&attestation, envelope.to_string()).unwrap();
    // The attestation of another component, signed by the same key.
    let other = std::fs::read_to_string(plugin("text-stats.wasm.intoto.json")).unwrap();
    for (text, why) in [
        (envelope.to_string(), "is not signed by key baton-dev"),
        (other, "is about another file"),
        ("{not json".to_string(), "is not a DSSE envelope"),
    ] {
        std::fs::write(&attestation, text).unwrap();
        let line = error_line(&call(), 4);
        assert_contains(
            &line,
            &[
                "is not trusted: its attestation ",
                "calc.wasm.intoto.json",
                why,
            ],
        );
        let verified = error_line(&run(&["verify", s(&calc)]), 4);
        assert_contains(&verified, &["calc.wasm.intoto.json", why]);
    }
    // No attestation at all is fine: the signature alone decides.
    std::fs::remove_file(&attestation).unwrap();
    assert_eq!(text_output(&call()).trim(), r#"{"value":42.0}"#);
}

/// Signing a file again replaces its signature only when asked: the earlier one stays
/// otherwise, and nothing of a batch is signed when one file of it is signed already.
#[test]
fn signing_again_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path(), "mine");
    let signed = signed_calc(dir.path(), "signed", &key);
    let fresh = dir.path().join("fresh.wasm");
    std::fs::copy(plugin("calc.wasm"), &fresh).unwrap();
    let sig = dir.path().join("signed.wasm.sig");
    let before = std::fs::read(&sig).unwrap();
    let sign = |extra: &[&str]| {
        baton()
            .env("BATON_KEY_PASSWORD", PASSWORD)
            .args(["sign", s(&fresh), s(&signed), "--key", s(&key)])
            .args(extra)
            .output()
            .unwrap()
    };
    let line = error_line(&sign(&[]), 2);
    assert_contains(&line, &["signed.wasm.sig", "exists already", "--force"]);
    assert_eq!(std::fs::read(&sig).unwrap(), before);
    assert!(!dir.path().join("fresh.wasm.sig").exists());
    text_output(&sign(&["--force"]));
    assert!(dir.path().join("fresh.wasm.sig").exists());
}

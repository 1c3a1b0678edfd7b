//! `baton keygen`, `sign` and `verify`: keys in cosign's formats, detached signatures that
//! other tools verify (Python's `cryptography` here), and in-toto attestations over DSSE.
//!
//! Longer than most files here: one cohesive thing, the signing commands and their formats,
//! every test built on the same keys and helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const PASSWORD: &str = "correct horse battery";

fn baton_with_password(args: &[&str]) -> Output {
    baton()
        .env("BATON_KEY_PASSWORD", PASSWORD)
        .args(args)
        .output()
        .unwrap()
}

/// `baton sign FILE --key KEY`, with the test password.
fn sign(file: &Path, key: &Path) -> Output {
    baton_with_password(&["sign", s(file), "--key", s(key)])
}

/// A key pair in `dir/keys`, and a copy of calc.wasm in `dir` to sign.
fn setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let keys = dir.join("keys");
    text_output(&baton_with_password(&[
        "keygen",
        "--out",
        keys.to_str().unwrap(),
    ]));
    let file = dir.join("calc.wasm");
    std::fs::copy(plugin("calc.wasm"), &file).unwrap();
    (keys.join("baton.key"), keys.join("baton.pub"), file)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_signed_component_verifies_with_its_attestation_and_a_changed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, file) = setup(dir.path());
    let key_text = std::fs::read_to_string(&private).unwrap();
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    assert!(!key_text.contains(PASSWORD));

    let signed = text_output(
        &baton()
            .env("BATON_KEY_PASSWORD", PASSWORD)
            .env("BATON_SOURCE_REVISION", "0123abc")
            .args(["sign", s(&file), "--key", s(&private)])
            .output()
            .unwrap(),
    );
    assert_contains(&signed, &["calc.wasm.sig", "calc.wasm.intoto.json"]);
    let verified = text_output(&run(&["verify", s(&file), "--key", s(&public)]));
    assert_contains(
        &verified,
        &[
            "signed by    key ",
            "attestation  tool component calc 0.1.0, built by baton ",
            "source       0123abc",
        ],
    );
    // The attestation is an in-toto statement about exactly this file.
    let envelope: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("calc.wasm.intoto.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");

    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(&file, bytes).unwrap();
    let line = error_line(&run(&["verify", s(&file), "--key", s(&public)]), 4);
    assert_contains(
        &line,
        &[
            "calc.wasm (sha256:",
            "is not verified: its signature",
            "does not verify with key",
        ],
    );
}

#[test]
fn another_signer_a_wrong_password_and_a_missing_signature_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _, file) = setup(dir.path());
    text_output(&sign(&file, &private));

    let other = dir.path().join("other");
    text_output(&baton_with_password(&["keygen", "--out", s(&other)]));
    let line = error_line(
        &run(&["verify", s(&file), "--key", s(&other.join("baton.pub"))]),
        4,
    );
    assert_contains(&line, &["does not verify with key"]);

    let wrong = baton()
        .env("BATON_KEY_PASSWORD", "not it")
        .args(["sign", s(&file), "--key", s(&private), "--force"])
        .output()
        .unwrap();
    assert_contains(
        &error_line(&wrong, 2),
        &["the private key cannot be decrypted: wrong password"],
    );
    let no_password = baton()
        .env_remove("BATON_KEY_PASSWORD")
        .args(["sign", s(&file), "--key", s(&private), "--force"])
        .output()
        .unwrap();
    assert_contains(
        &error_line(&no_password, 2),
        &["no password: set BATON_KEY_PASSWORD"],
    );

    let unsigned = dir.path().join("unsigned.wasm");
    std::fs::copy(plugin("calc.wasm"), &unsigned).unwrap();
    let line = error_line(
        &run(&["verify", s(&unsigned), "--key", s(&other.join("baton.pub"))]),
        4,
    );
    assert_contains(
        &line,
        &["it has no signature (", "unsigned.wasm.sig is missing)"],
    );
}

#[test]
fn keys_are_never_overwritten_and_only_components_and_policies_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _, _) = setup(dir.path());
    let before = std::fs::read(&private).unwrap();
    let again = baton_with_password(&["keygen", "--out", s(&dir.path().join("keys"))]);
    assert_contains(
        &error_line(&again, 2),
        &["already exists; Baton never overwrites a key"],
    );
    assert_eq!(std::fs::read(&private).unwrap(), before);

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let out = sign(&notes, &private);
    assert_contains(
        &error_line(&out, 2),
        &["Baton signs components (.wasm) and policy files (.toml)"],
    );
    assert!(!dir.path().join("notes.txt.sig").exists());

    let policy = dir.path().join("bad.toml");
    std::fs::write(&policy, "[limits]\nfule = 1\n").unwrap();
    let out = sign(&policy, &private);
    assert_contains(&error_line(&out, 5), &["bad.toml, line 2"]);
    assert!(!dir.path().join("bad.toml.sig").exists());
}

const PYTHON_VERIFY: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
data = open(sys.argv[2], "rb").read()
sig = base64.b64decode(open(sys.argv[2] + ".sig", "rb").read())
key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
print("python verified")
"#;

const PYTHON_SIGN: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
pub = key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
open(sys.argv[1], "wb").write(pub)
data = open(sys.argv[2], "rb").read()
open(sys.argv[2] + ".sig", "wb").write(base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))))
"#;

fn python(script: &str, args: &[&Path]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (cargo xtask test installs its cryptography package)")
}

#[test]
fn signatures_interoperate_with_python_cryptography() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, file) = setup(dir.path());
    text_output(&sign(&file, &private));
    let out = python(PYTHON_VERIFY, &[&public, &file]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "python verified",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let foreign = dir.path().join("python.pub");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[limits]\nfuel = 5000\n").unwrap();
    let out = python(PYTHON_SIGN, &[&foreign, &policy]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = text_output(&run(&["verify", s(&policy), "--key", s(&foreign)]));
    assert_contains(&verified, &["verified ", "attestation  none"]);
}

/// The loader verifies before it compiles: under the built-in policy only components signed
/// by a trusted key load, and every refusal names the file, its digest and what failed.
#[test]
fn unsigned_tampered_and_untrusted_components_never_load() {
    let dir = tempfile::tempdir().unwrap();
    let input = r#"{"expression": "1 + 2"}"#;
    let signed = copy_plugin("calc.wasm", dir.path());
    assert_eq!(
        json_output(&run(&["call", s(&signed), "--input", input]))["value"],
        3.0
    );
    let inspected = text_output(&run(&["inspect", s(&signed)]));
    assert_contains(&inspected, &["signed by key baton-dev (sha256:"]);

    // Unsigned.
    let unsigned = dir.path().join("unsigned.wasm");
    std::fs::copy(&signed, &unsigned).unwrap();
    let line = error_line(&run(&["call", s(&unsigned), "--input", input]), 4);
    assert_contains(
        &line,
        &[
            "unsigned.wasm (sha256:",
            "is not trusted: it is unsigned (no ",
            "and the policy requires signatures",
        ],
    );

    // Tampered: one byte changed after signing.
    let mut bytes = std::fs::read(&signed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&signed, &bytes).unwrap();
    let line = error_line(&run(&["call", s(&signed), "--input", input]), 4);
    assert_contains(
        &line,
        &["does not verify with any trusted key (trusted: key baton-dev from "],
    );

    // Signed, but by a key the policy does not trust.
    let other = dir.path().join("other");
    text_output(&baton_with_password(&["keygen", "--out", s(&other)]));
    text_output(&sign(&unsigned, &other.join("baton.key")));
    let line = error_line(&run(&["call", s(&unsigned), "--input", input]), 4);
    assert_contains(&line, &["does not verify with any trusted key"]);

    // Trusting that key (and only it: `replace`) in a policy makes it load, and the dev key
    // no longer.
    let policy = dir.path().join("trust.toml");
    std::fs::write(
        &policy,
        "[trust]\nreplace = true\nkeys = [\"other/baton.pub\"]\n",
    )
    .unwrap();
    let out = run(&[
        "call",
        s(&unsigned),
        "--input",
        input,
        "--policy",
        s(&policy),
    ]);
    assert_eq!(json_output(&out)["value"], 3.0);
    let dev_signed = copy_plugin("text-stats.wasm", dir.path());
    let line = error_line(
        &run(&[
            "call",
            s(&dev_signed),
            "--input",
            "{\"text\": \"a\"}",
            "--policy",
            s(&policy),
        ]),
        4,
    );
    assert_contains(&line, &["(trusted: key baton from "]);
}

#[test]
fn a_trusted_key_that_cannot_be_read_is_a_policy_error() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("trust.toml");
    std::fs::write(&policy, "[trust]\nkeys = [\"missing.pub\"]\n").unwrap();
    let signed = copy_plugin("calc.wasm", dir.path());
    let out = run(&["call", s(&signed), "--input", "{}", "--policy", s(&policy)]);
    assert_contains(
        &error_line(&out, 5),
        &["cannot read ", "missing.pub named in [trust] of "],
    );
    std::fs::write(dir.path().join("bad.pub"), "not a key").unwrap();
    std::fs::write(&policy, "[trust]\nkeys = [\"bad.pub\"]\n").unwrap();
    let out = run(&["call", s(&signed), "--input", "{}", "--policy", s(&policy)]);
    assert_contains(
        &error_line(&out, 5),
        &["policy [trust]: trusted key ", "bad.pub"],
    );
}

#[test]
fn garbled_and_truncated_signatures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, file) = setup(dir.path());
    text_output(&sign(&file, &private));
    let sig_path = dir.path().join("calc.wasm.sig");
    let sig = std::fs::read_to_string(&sig_path).unwrap();

    std::fs::write(&sig_path, "!!not base64!!").unwrap();
    let line = error_line(&run(&["verify", s(&file), "--key", s(&public)]), 4);
    assert_contains(&line, &["calc.wasm.sig is not base64"]);

    // Half the signature still decodes, but is no signature.
    std::fs::write(&sig_path, &sig[..sig.len() / 8 * 4]).unwrap();
    let line = error_line(&run(&["verify", s(&file), "--key", s(&public)]), 4);
    assert_contains(&line, &["does not verify with key"]);

    // The loader refuses the same files before compiling.
    let policy = dir.path().join("trust.toml");
    std::fs::write(&policy, "[trust]\nkeys = [\"keys/baton.pub\"]\n").unwrap();
    let call = |sig: &str| {
        std::fs::write(&sig_path, sig).unwrap();
        run(&["call", s(&file), "--input", "{}", "--policy", s(&policy)])
    };
    assert_contains(
        &error_line(&call("!!"), 4),
        &["calc.wasm.sig is not a base64 signature"],
    );
    assert_contains(
        &error_line(&call(&sig[..sig.len() / 8 * 4]), 4),
        &[
            "does not verify with any trusted key (trusted: ",
            "key baton from ",
        ],
    );
}

/// Attestations are checked for what they are and what they are about, not only for a valid
/// signature.
#[test]
fn attestations_of_another_type_or_another_file_are_refused() {
    use baton::trust::signing::{Envelope, INTOTO_PAYLOAD_TYPE, SigningKey};

    let dir = tempfile::tempdir().unwrap();
    let (private, public, file) = setup(dir.path());
    text_output(&sign(&file, &private));
    let key = SigningKey::open(
        &std::fs::read_to_string(&private).unwrap(),
        "key",
        PASSWORD.as_bytes(),
    )
    .unwrap();
    let attestation = dir.path().join("calc.wasm.intoto.json");
    let digest = baton::Digest::of(&std::fs::read(&file).unwrap()).hex();
    let statement = |sha256: &str| {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "calc.wasm", "digest": {"sha256": sha256}}],
            "predicateType": "urn:baton:predicate:artifact:v1",
            "predicate": {"kind": "component"},
        })
        .to_string()
    };
    let verify_with = |envelope: &Envelope| {
        std::fs::write(&attestation, serde_json::to_string(envelope).unwrap()).unwrap();
        run(&["verify", s(&file), "--key", s(&public)])
    };

    // Type confusion: signed as plain text, presented as an in-toto statement.
    let mut confused = Envelope::sign("text/plain", statement(&digest).as_bytes(), &key).unwrap();
    confused.payload_type = INTOTO_PAYLOAD_TYPE.into();
    assert_contains(
        &error_line(&verify_with(&confused), 4),
        &["is not signed by key"],
    );

    // Presented as what it was signed as, but that is not an attestation.
    let plain = Envelope::sign("text/plain", statement(&digest).as_bytes(), &key).unwrap();
    assert_contains(
        &error_line(&verify_with(&plain), 4),
        &["is not an in-toto attestation"],
    );

    // Properly signed, but about other bytes.
    let other = Envelope::sign(
        INTOTO_PAYLOAD_TYPE,
        statement(&"0".repeat(64)).as_bytes(),
        &key,
    )
    .unwrap();
    assert_contains(
        &error_line(&verify_with(&other), 4),
        &["is about another file"],
    );

    // And the genuine one passes.
    let genuine = Envelope::sign(INTOTO_PAYLOAD_TYPE, statement(&digest).as_bytes(), &key).unwrap();
    let out = text_output(&verify_with(&genuine));
    assert_contains(
        &out,
        &["attestation  component (not described), built by unknown"],
    );
}

/// Everything the build signed verifies with this machine's development key.
#[test]
fn every_shipped_plugin_is_signed_by_the_development_key() {
    let dev_key = crate::common::dev_key().1;
    let root = plugin("calc.wasm").parent().unwrap().to_path_buf();
    let mut checked = 0;
    // The reference tools are attested with their description; some test fixtures cannot be
    // described (that is what they test) and are attested as components only.
    for (dir, attested) in [
        (root.clone(), "attestation  tool component "),
        (root.join("testing"), "attestation  "),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let out = run(&["verify", s(&path), "--key", s(&dev_key)]);
                assert_contains(&text_output(&out), &["verified ", attested]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} plugins found");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let default = policies.join("default.toml");
    let out = run(&["verify", s(&default), "--key", s(&dev_key)]);
    assert_contains(
        &text_output(&out),
        &["attestation  policy, built by baton "],
    );
}

/// `signer` binds a plugin section to who signed the component: the same name signed by
/// someone else (even someone trusted) gets none of that section's grants.
#[test]
fn grants_bound_to_a_signer_do_not_follow_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other");
    text_output(&baton_with_password(&["keygen", "--out", s(&other)]));
    let dev_key = crate::common::dev_key().1;
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[trust]\nkeys = [\"{}\", \"other/baton.pub\"]\n\n\
             [plugins.env-reader]\nsigner = \"baton-dev\"\n\n\
             [plugins.env-reader.env]\nallow = [\"BATON_TEST_BOUND\"]\n",
            dev_key.display()
        ),
    )
    .unwrap();
    let read = |component: &Path| {
        let out = baton()
            .env("BATON_TEST_BOUND", "visible")
            .args([
                "call",
                s(component),
                "--input",
                r#"{"names": ["BATON_TEST_BOUND"]}"#,
            ])
            .args(["--policy", s(&policy)])
            .output()
            .unwrap();
        json_output(&out)["vars"]["BATON_TEST_BOUND"].clone()
    };
    let dev_signed = copy_plugin("testing/env-reader.wasm", dir.path());
    assert_eq!(read(&dev_signed), "visible");

    let resigned = dir.path().join("resigned");
    std::fs::create_dir_all(&resigned).unwrap();
    let impostor = resigned.join("env-reader.wasm");
    std::fs::copy(&dev_signed, &impostor).unwrap();
    text_output(&sign(&impostor, &other.join("baton.key")));
    assert_eq!(read(&impostor), serde_json::Value::Null);
    let explained = text_output(&run(&[
        "policy",
        "explain",
        s(&impostor),
        "--policy",
        s(&policy),
    ]));
    assert_contains(
        &explained,
        &["binds [plugins.env-reader] to signer baton-dev, but it is signed by baton"],
    );
}

/// Without --key, `baton verify` checks a file against the signers the policy trusts, keyed
/// or keyless, and says under which trust root.
#[test]
fn verify_without_a_key_uses_the_policys_trust() {
    let dir = tempfile::tempdir().unwrap();
    let calc = copy_plugin("calc.wasm", dir.path());
    let out = text_output(&run(&["verify", s(&calc)]));
    assert_contains(
        &out,
        &[
            "signed by    key baton-dev (sha256:",
            "trusted via  a key the policy's [trust] lists",
            "attestation  tool component calc ",
        ],
    );

    // A keyless Sigstore bundle from the conformance suite, for its artifact.
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/sigstore-bundle-verify");
    let artifact = dir.path().join("a.txt");
    std::fs::copy(suite.join("a.txt"), &artifact).unwrap();
    std::fs::copy(
        suite.join("happy-path-v0.3/bundle.sigstore.json"),
        dir.path().join("a.txt.sigstore.json"),
    )
    .unwrap();
    let identity = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
    let issuer = "https://token.actions.githubusercontent.com";
    let policy = dir.path().join("keyless.toml");
    std::fs::write(
        &policy,
        format!("[trust]\nidentities = [{{ issuer = \"{issuer}\", subject = \"{identity}\" }}]\n"),
    )
    .unwrap();
    let out = text_output(&run(&["verify", s(&artifact), "--policy", s(&policy)]));
    assert_contains(
        &out,
        &[
            &format!("signed by    keyless {identity} ({issuer})"),
            "trusted via  the Sigstore public-good trusted root",
        ],
    );
    // A pattern over the subject, as cosign's --certificate-identity-regexp.
    std::fs::write(
        &policy,
        format!(
            "[trust]\nidentities = [{{ issuer = \"{issuer}\", subject_regexp = \
             'https://github\\.com/sigstore-conformance/.*' }}]\n"
        ),
    )
    .unwrap();
    let out = text_output(&run(&["verify", s(&artifact), "--policy", s(&policy)]));
    assert_contains(
        &out,
        &[&format!("signed by    keyless {identity} ({issuer})")],
    );
    std::fs::write(
        &policy,
        format!("[trust]\n\nidentities = [{{ issuer = \"{issuer}\", subject_regexp = '(' }}]\n"),
    )
    .unwrap();
    let line = error_line(&run(&["verify", s(&artifact), "--policy", s(&policy)]), 5);
    assert_contains(
        &line,
        &[
            "keyless.toml, line 3",
            "subject_regexp '(' is not a regular expression",
        ],
    );
    // The built-in policy trusts no keyless identity.
    let line = error_line(&run(&["verify", s(&artifact)]), 4);
    assert_contains(
        &line,
        &["does not verify for any trusted signer (trusted: key baton-dev from "],
    );
}

/// Signing again (with --force) replaces a stale signature, and describes the new bytes.
#[test]
fn a_changed_file_can_be_signed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, file) = setup(dir.path());
    text_output(&sign(&file, &private));
    std::fs::copy(plugin("text-stats.wasm"), &file).unwrap();
    let signed = baton_with_password(&["sign", s(&file), "--key", s(&private), "--force"]);
    text_output(&signed);
    assert!(
        signed.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let out = text_output(&run(&["verify", s(&file), "--key", s(&public)]));
    assert_contains(&out, &["attestation  tool component text-stats "]);
}

/// A policy layer can require the files layered above it to be signed by a key it trusts.
#[test]
fn policies_above_a_layer_that_requires_it_must_be_signed() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin");
    text_output(&baton_with_password(&["keygen", "--out", s(&admin)]));
    let dev_key = crate::common::dev_key().1;
    let base = dir.path().join("base.toml");
    std::fs::write(
        &base,
        format!(
            "[trust]\nrequire_signed_policies = true\nkeys = [\"{}\", \"admin/baton.pub\"]\n",
            dev_key.display()
        ),
    )
    .unwrap();
    let project = dir.path().join("project.toml");
    std::fs::write(&project, "[plugins.calc.limits]\nfuel = 10_000_000\n").unwrap();
    let calc = copy_plugin("calc.wasm", dir.path());
    let call = || {
        run(&[
            "call",
            s(&calc),
            "--input",
            r#"{"expression": "1 + 2"}"#,
            "--policy",
            s(&base),
            "--policy",
            s(&project),
        ])
    };
    let line = error_line(&call(), 4);
    assert_contains(
        &line,
        &[
            "project.toml is not trusted: it is unsigned",
            "a policy below it sets require_signed_policies",
        ],
    );
    // Signed by a key the base trusts: accepted.
    text_output(&sign(&project, &admin.join("baton.key")));
    assert_eq!(json_output(&call())["value"], 3.0);
    // Changed after signing: refused again.
    std::fs::write(&project, "[plugins.calc.limits]\nfuel = 99_000_000\n").unwrap();
    let line = error_line(&call(), 4);
    assert_contains(
        &line,
        &[
            "project.toml is not trusted: its signature",
            "does not verify",
        ],
    );
}

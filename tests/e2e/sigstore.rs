//! Every offline case of the Sigstore conformance suite (`shared/conformance/
//! sigstore-bundle-verify`, beside the repository): `_fail` cases must be rejected, the others
//! accepted.

use std::path::{Path, PathBuf};

use baton::trust::sigstore::{Signer, verify_bundle};

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    std::env::var_os("BATON_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
        .join("sigstore-bundle-verify")
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn sigstore_conformance_cases() {
    let suite = suite();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&suite)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the conformance suite lives in shared/)",
                suite.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 70, "found only {} cases", cases.len());

    let mut wrong = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let artifact = std::fs::read(case.join("artifact"))
            .unwrap_or_else(|_| std::fs::read(suite.join("a.txt")).unwrap());
        let bundle = std::fs::read_to_string(case.join("bundle.sigstore.json")).unwrap();
        let signer = match read(case, "key.pub") {
            Some(pem) => Signer::Key { pem },
            None => Signer::Keyless {
                identity: read(case, "identity").unwrap_or_else(|| DEFAULT_IDENTITY.into()),
                issuer: read(case, "issuer").unwrap_or_else(|| DEFAULT_ISSUER.into()),
            },
        };
        let root = read(case, "trusted_root.json");
        let result = verify_bundle(&artifact, &bundle, &signer, root.as_deref());
        let should_fail = name.ends_with("_fail");
        if result.is_ok() == should_fail {
            wrong.push(format!("{name}: {result:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases went wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// The loader's trust check accepts a keyless bundle only from an identity the policy lists.
#[test]
fn keyless_signers_are_trusted_only_by_their_exact_identity() {
    use baton::policy::trust::{Identity, SubjectMatch, TrustPolicy};
    use baton::trust::check::{PolicyTrust, Provenance, Sidecars, TrustCheck};

    let case = suite().join("happy-path-v0.3");
    let artifact = std::fs::read(suite().join("a.txt")).unwrap();
    let sidecars = Sidecars {
        bundle: Some(std::fs::read_to_string(case.join("bundle.sigstore.json")).unwrap()),
        base: case.join("a.txt"),
        ..Sidecars::default()
    };
    let digest = baton::Digest::of(&artifact);
    let trusting = |subject: SubjectMatch| {
        PolicyTrust::new(&TrustPolicy {
            require_signatures: true,
            keys: Vec::new(),
            identities: vec![Identity {
                issuer: DEFAULT_ISSUER.into(),
                subject,
            }],
            trusted_root: None,
            ..TrustPolicy::default()
        })
        .unwrap()
    };
    let exact = |s: &str| SubjectMatch::Exact(s.into());
    let pattern =
        |p: &str| SubjectMatch::Pattern(regex::Regex::new(&format!("^(?:{p})$")).unwrap());
    for trusted in [
        exact(DEFAULT_IDENTITY),
        pattern(r"https://github\.com/sigstore-conformance/.*@refs/heads/main"),
    ] {
        match trusting(trusted).check(&artifact, &digest, &sidecars) {
            Ok(Provenance::Verified(v)) => {
                assert_eq!(
                    v.signer,
                    format!("keyless {DEFAULT_IDENTITY} ({DEFAULT_ISSUER})")
                );
                assert_eq!(v.name, DEFAULT_IDENTITY);
            }
            other => panic!("expected a keyless signer, got {other:?}"),
        }
    }
    for untrusted in [
        exact("https://git.example/someone/else.yml@refs/heads/main"),
        // A pattern must match the whole subject, not a part of it.
        pattern(r"sigstore-conformance"),
        pattern(r"https://github\.com/sigstore-conformance/.*@refs/heads/release"),
    ] {
        let refused = trusting(untrusted)
            .check(&artifact, &digest, &sidecars)
            .unwrap_err();
        assert!(
            refused
                .reason
                .contains("does not verify for any trusted signer"),
            "{}",
            refused.reason
        );
    }
}

/// A replay verifies a keyless signature again under the trusted root it was recorded with,
/// not the public-good one.
#[test]
fn a_replayed_keyless_signature_uses_its_recorded_trusted_root() {
    use baton::trust::check::{RecordedTrust, Sidecars, TrustCheck, Verified};

    let case = suite().join("intoto-with-custom-trust-root");
    let artifact = std::fs::read(case.join("artifact")).unwrap();
    let digest = baton::Digest::of(&artifact);
    let recorded = |trusted_root: String| RecordedTrust {
        recorded: vec![(
            digest.to_string(),
            Verified {
                signer: format!("keyless {DEFAULT_IDENTITY} ({DEFAULT_ISSUER})"),
                name: DEFAULT_IDENTITY.into(),
                key: String::new(),
                signature: std::fs::read_to_string(case.join("bundle.sigstore.json")).unwrap(),
                attestation: String::new(),
                trusted_root,
            },
        )],
    };
    let root = std::fs::read_to_string(case.join("trusted_root.json")).unwrap();
    recorded(root)
        .check(&artifact, &digest, &Sidecars::default())
        .unwrap();
    // Under the public-good root the same bundle does not verify.
    let refused = recorded(String::new())
        .check(&artifact, &digest, &Sidecars::default())
        .unwrap_err();
    assert!(
        refused
            .reason
            .contains("recorded Sigstore bundle does not verify"),
        "{}",
        refused.reason
    );
}

//! Layering, limits and grants resolved from policy files as users write them.

use std::path::Path;
use std::time::Duration;

use baton_core::limits::Limits;

use crate::*;

fn policy_from(text: &str) -> Result<Policy, PolicyError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    Policy::load(&path)
}

#[test]
fn builtin_policy_matches_the_documented_defaults() {
    let resolved = Policy::builtin().limits_for("any", "", &LimitsSpec::default());
    assert_eq!(
        resolved.limits,
        Limits {
            fuel: 1_000_000_000,
            memory: 64 << 20,
            timeout: Duration::from_secs(5),
            output: 1 << 20,
        }
    );
    assert_eq!(resolved.fuel, Source::File("policies/default.toml".into()));
}

#[test]
fn plugin_sections_override_defaults_and_flags_override_both() {
    let policy = policy_from(
        "[limits]\nmemory = \"32 MiB\"\n[plugins.calc.limits]\nfuel = 5000\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let flags = LimitsSpec {
        timeout: Some(Duration::from_millis(250)),
        ..LimitsSpec::default()
    };
    let calc = policy.limits_for("calc", "", &flags);
    assert_eq!(calc.limits.fuel, 5000);
    assert!(matches!(&calc.fuel, Source::PluginSection { plugin, .. } if plugin == "calc"));
    assert_eq!(calc.limits.memory, 32 << 20);
    assert!(matches!(&calc.memory, Source::File(f) if f.ends_with("p.toml")));
    assert_eq!(calc.limits.timeout, Duration::from_millis(250));
    assert_eq!(calc.timeout, Source::CommandLine);

    let other = policy.limits_for("text-stats", "", &LimitsSpec::default());
    assert_eq!(other.limits.fuel, 1_000_000_000);
    assert_eq!(other.limits.timeout, Duration::from_secs(5));
}

#[test]
fn a_section_pinned_to_another_digest_sets_no_limits() {
    let pinned = format!("sha256:{}", "a".repeat(64));
    let policy = policy_from(&format!(
        "[plugins.calc]\ndigest = \"{pinned}\"\n[plugins.calc.limits]\nfuel = 5000\n"
    ))
    .unwrap();
    let none = LimitsSpec::default();
    assert_eq!(
        policy
            .limits_for("calc", pinned.as_str(), &none)
            .limits
            .fuel,
        5000
    );
    let other = policy.limits_for("calc", format!("sha256:{}", "b".repeat(64)).as_str(), &none);
    assert_eq!(other.limits.fuel, 1_000_000_000);
    assert_eq!(other.fuel, Source::File("policies/default.toml".into()));
}

#[test]
fn unknown_keys_are_errors_with_line_and_column() {
    let err = policy_from("[limits]\nfuel = 10\nfule = 20\n").unwrap_err();
    let PolicyError::Parse {
        line,
        column,
        message,
        ..
    } = &err
    else {
        panic!("expected a parse error, got {err}");
    };
    assert_eq!((*line, *column), (3, 1));
    assert!(message.contains("unknown field `fule`"), "{message}");
}

#[test]
fn bad_values_are_errors_at_their_position() {
    let err = policy_from("[plugins.x.limits]\nmemory = \"9 GiB\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("between 64 KiB and 4 GiB"), "{text}");
    let err = policy_from("[limits]\ntimeout = 5\n").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn fs_grants_resolve_beside_the_policy_with_their_guest_paths() {
    let policy = policy_from(
        "[plugins.notes.fs]\nread = [\"fixtures/notes\", \"/srv/a:/docs\"]\nwrite = [\"out:/out\"]\n",
    )
    .unwrap();
    let fs = policy.grants_for("notes", "").fs;
    let got: Vec<(String, &str, bool)> = fs
        .iter()
        .map(|m| {
            let host = m.host.file_name().unwrap().to_string_lossy().into_owned();
            (host, m.guest.as_str(), m.writable)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("notes".into(), "/notes", false),
            ("a".into(), "/docs", false),
            ("out".into(), "/out", true),
        ]
    );
    assert!(fs[0].host.ends_with("fixtures/notes"));
    assert_eq!(fs[1].host, Path::new("/srv/a"));
    assert!(policy.grants_for("other", "").fs.is_empty());
}

#[test]
fn a_missing_policy_file_says_so() {
    let err = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read policy /nonexistent/policy.toml")
    );
}

#[test]
fn a_granted_directory_is_private_unless_the_deepest_labelled_directory_says_otherwise() {
    let policy = Policy::from_texts(vec![
        (
            "policies/default.toml".into(),
            include_str!("../../../policies/default.toml").into(),
        ),
        (
            "/etc/baton/p.toml".into(),
            "[labels]\nfs = { \"data\" = [\"public\"], \"data/hr\" = [\"hr\", \"public\"] }\n\
             secrets = { TOKEN = [\"api-key\"] }\n\
             [plugins.x.fs]\nread = [\"data/hr/2026:/hr\", \"data/docs:/docs\", \"other:/o\"]\n"
                .into(),
        ),
    ])
    .unwrap();
    let grants = policy.grants_for("x", "");
    let labels: Vec<Vec<String>> = grants
        .fs
        .iter()
        .map(|m| policy.flow().directory(m).into_iter().collect())
        .collect();
    assert_eq!(
        labels,
        [vec!["hr".to_string()], vec![], vec!["private".to_string()]]
    );
    assert_eq!(
        policy
            .flow()
            .secret("TOKEN")
            .into_iter()
            .collect::<Vec<_>>(),
        ["api-key"]
    );
    assert_eq!(
        policy
            .flow()
            .secret("OTHER")
            .into_iter()
            .collect::<Vec<_>>(),
        ["secret"]
    );
}

#[test]
fn a_label_must_be_a_plain_name() {
    let err = policy_from("[plugins.x.flow]\nmay_send = [\"Private Data\"]\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("'Private Data' is not a label name (lowercase letters, digits, - and _)"),
        "{err}"
    );
}

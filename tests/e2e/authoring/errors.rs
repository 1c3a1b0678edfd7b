//! `baton new` and `baton build` refuse what they cannot do with one clear line, and leave
//! nothing half-written.

use crate::common::{baton, error_line};

use super::{Project, baton_in};

#[test]
fn a_name_that_cannot_name_a_tool_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let line = error_line(
        &baton_in(
            temp.path(),
            &["new", "tool", "Word_Count", "--lang", "rust"],
        ),
        2,
    );
    assert!(
        line.contains("'Word_Count' is not a valid component name: use lowercase letters"),
        "{line}"
    );
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
}

#[test]
fn a_directory_that_is_not_empty_is_left_alone() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("greet");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mine.txt"), "keep me").unwrap();
    let line = error_line(
        &baton_in(temp.path(), &["new", "tool", "greet", "--lang", "python"]),
        2,
    );
    assert!(
        line.contains("greet already exists and is not empty"),
        "{line}"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("mine.txt")).unwrap(),
        "keep me"
    );
    // No staging directory is left beside it either.
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 1);
}

#[test]
fn an_unknown_language_or_kind_is_a_usage_error() {
    let temp = tempfile::tempdir().unwrap();
    for args in [
        ["new", "tool", "greet", "--lang", "cobol"],
        ["new", "agent", "greet", "--lang", "rust"],
    ] {
        let output = baton_in(temp.path(), &args);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("invalid value"), "{stderr}");
    }
}

#[test]
fn building_a_directory_without_a_project_says_how_to_make_one() {
    let temp = tempfile::tempdir().unwrap();
    let build = || {
        let output = baton().current_dir(temp.path()).arg("build").output();
        error_line(&output.unwrap(), 2)
    };
    let line = build();
    assert!(
        line.contains("has no baton.toml: `baton build` builds a project made by `baton new`"),
        "{line}"
    );
    std::fs::write(
        temp.path().join("baton.toml"),
        "[component]\nname = \"x\"\nkind = \"agent\"\n",
    )
    .unwrap();
    let line = build();
    assert!(
        line.contains("baton.toml is not a valid project manifest"),
        "{line}"
    );
}

#[test]
fn a_missing_toolchain_is_named_with_how_to_install_it() {
    let project = Project::new("tool", "python");
    let output = baton()
        .current_dir(&project.dir)
        .env("PATH", "/nonexistent")
        .arg("build")
        .output()
        .unwrap();
    let line = error_line(&output, 2);
    assert!(
        line.contains(
            "`componentize-py` is not installed (or not on PATH): install componentize-py \
             (`python3 -m pip install componentize-py==0.25.1`)"
        ),
        "{line}"
    );
}

#[test]
fn a_build_that_fails_says_so_and_leaves_no_component() {
    let project = Project::new("tool", "python");
    project.write("app.py", "this is not Python\n");
    let output = super::in_dir(&project.dir).arg("build").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: componentize-py failed (exit status: 1); its messages are above"),
        "{stderr}"
    );
    assert!(!project.dir.join(project.wasm()).exists());
}

#[test]
fn a_malformed_requests_section_is_refused_at_load() {
    use wasm_encoder::{ComponentSection, CustomSection};
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(crate::common::plugin("calc.wasm")).unwrap();
    CustomSection {
        name: "baton:requests".into(),
        data: br#"{"egress": ["https://example.com"]}"#.as_slice().into(),
    }
    .append_to_component(&mut bytes);
    let path = dir.path().join("calc.wasm");
    std::fs::write(&path, bytes).unwrap();
    let policy = crate::common::write_policy(dir.path(), "[trust]\nrequire_signatures = false\n");
    let output = baton()
        .args([
            "--policy",
            policy.to_str().unwrap(),
            "call",
            path.to_str().unwrap(),
        ])
        .args(["--input", r#"{"expression": "1"}"#])
        .output()
        .unwrap();
    let line = error_line(&output, 2);
    assert!(
        line.contains(
            "cannot be used as a Baton plugin: its baton:requests section is not valid: unknown \
             field `egress`"
        ),
        "{line}"
    );
}

//! Versions: a workflow asks for `greet@^1.0`; the newest matching version whose requests its
//! policy grants runs, an upgrade asking for more egress is held, and `baton policy diff`
//! shows why.

use std::path::{Path, PathBuf};

use crate::common::{error_line, json_output, plugin, text_output};

use super::{Project, baton_in};

/// Builds the Rust template as `greet` at `version`, requesting egress to `net`, and signs a
/// copy in `tools/`.
fn release(project: &Project, tools: &Path, version: &str, net: &[&str]) -> PathBuf {
    let cargo = std::fs::read_to_string(project.dir.join("Cargo.toml")).unwrap();
    let cargo = with_version(&cargo, version);
    project.write("Cargo.toml", &cargo);
    let source = std::fs::read_to_string(project.dir.join("src/lib.rs")).unwrap();
    project.write(
        "src/lib.rs",
        &source.replace(
            r#"format!("Hello, {name}!")"#,
            r#"format!("Hello v{}, {name}!", env!("CARGO_PKG_VERSION"))"#,
        ),
    );
    let manifest = std::fs::read_to_string(project.dir.join("baton.toml")).unwrap();
    let manifest = manifest.split("[requests]").next().unwrap().to_string();
    project.write(
        "baton.toml",
        &format!("{manifest}[requests]\nnet = {net:?}\n"),
    );
    project.build();
    let file = tools.join(format!("greet-{version}.wasm"));
    std::fs::copy(project.dir.join("greet.wasm"), &file).unwrap();
    text_output(&baton_in(
        &project.dir,
        &["sign", "--key", "baton.key", file.to_str().unwrap()],
    ));
    file
}

/// `Cargo.toml` with its package version set to `version`.
fn with_version(cargo: &str, version: &str) -> String {
    cargo
        .lines()
        .map(|line| match line.starts_with("version = ") {
            true => format!("version = \"{version}\""),
            false => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A policy trusting the development key (for the static planner) and the project's, and
/// granting greet egress to `allow`.
fn policy(dir: &Path, project: &Project, allow: &[&str]) -> PathBuf {
    let dev = crate::common::dev_key().1;
    let path = dir.join(format!("policy-{}.toml", allow.len()));
    std::fs::write(
        &path,
        format!(
            "[trust]\nkeys = [{:?}, {:?}]\n\n[plugins.greet.net]\nallow = {allow:?}\n",
            dev,
            project.dir.join("baton.pub")
        ),
    )
    .unwrap();
    path
}

/// A workflow that calls greet once, with `tools` as its tools.
fn workflow(dir: &Path, tools: &[&str]) -> PathBuf {
    let path = dir.join("flow.toml");
    std::fs::write(
        &path,
        format!(
            "planner = {:?}\ntools = {tools:?}\n\n[[config.steps]]\nid = \"hi\"\ntool = \
             \"greet\"\ninput = {{ name = \"Ada\" }}\n\n[config.output]\ngreeting = \
             \"{{{{hi.output.greeting}}}}\"\n",
            plugin("planners/static.wasm")
        ),
    )
    .unwrap();
    path
}

#[test]
fn the_newest_granted_version_runs_and_an_upgrade_asking_for_more_egress_is_held() {
    let project = Project::named("tool", "rust", "greet");
    let dir = project.dir.parent().unwrap().to_path_buf();
    let tools = dir.join("tools");
    std::fs::create_dir(&tools).unwrap();
    const API: &str = "https://api.example.com";
    const COLLECTOR: &str = "https://collector.example.net";
    let v1 = release(&project, &tools, "1.0.0", &[API]);
    let v11 = release(&project, &tools, "1.1.0", &[API, COLLECTOR]);
    release(&project, &tools, "2.0.0", &[API]);
    let narrow = policy(&dir, &project, &[API]);
    let narrow = narrow.to_str().unwrap();
    let tools_dir = tools.to_str().unwrap();

    let run = |policy: &str, entries: &[&str]| {
        let flow = workflow(&dir, entries);
        baton_in(&dir, &["--policy", policy, "run", flow.to_str().unwrap()])
    };
    // ^1.0: 1.1.0 asks for egress its policy does not grant, so 1.0.0 runs, and says why.
    let output = run(narrow, &[tools_dir, "greet@^1.0"]);
    assert_eq!(json_output(&output)["greeting"], "Hello v1.0.0, Ada!");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(&format!(
            "greet 1.1.0 is held: it requests net {COLLECTOR}, which its policy does not grant"
        )),
        "{said}"
    );
    // With no requirement the newest runs.
    let output = run(narrow, &[tools_dir]);
    assert_eq!(json_output(&output)["greeting"], "Hello v2.0.0, Ada!");
    // Only held versions match: refused, naming what is missing.
    let line = error_line(&run(narrow, &[tools_dir, "greet@~1.1"]), 5);
    assert!(
        line.contains(&format!(
            "(greet 1.1.0) is held: it requests net {COLLECTOR}"
        )),
        "{line}"
    );
    let line = error_line(&run(narrow, &[tools_dir, "greet@^3"]), 2);
    assert!(
        line.contains("no tool matches greet@^3 (found 2.0.0, 1.1.0, 1.0.0)"),
        "{line}"
    );
    // Called on its own, the held version is refused too.
    let held = baton_in(
        &dir,
        &[
            "--policy",
            narrow,
            "call",
            v11.to_str().unwrap(),
            "--input",
            r#"{"name": "Bo"}"#,
        ],
    );
    assert!(error_line(&held, 5).contains("is held"));

    // `policy diff` shows requested against granted for both, and what holds the new one.
    let diff = text_output(&baton_in(
        &dir,
        &[
            "--policy",
            narrow,
            "policy",
            "diff",
            v1.to_str().unwrap(),
            v11.to_str().unwrap(),
        ],
    ));
    assert!(diff.contains("greet 1.0.0 (sha256:"), "{diff}");
    assert!(diff.contains(&format!("net      {COLLECTOR}")), "{diff}");
    assert!(diff.contains("NOT GRANTED"), "{diff}");
    assert!(
        diff.contains(&format!(
            "greet 1.1.0 is held until a policy grants it net {COLLECTOR}"
        )),
        "{diff}"
    );

    // `inspect` shows what it requests.
    let inspect = text_output(&baton_in(
        &dir,
        &["--policy", narrow, "inspect", v11.to_str().unwrap()],
    ));
    assert!(
        inspect.contains(&format!("  requests\n    net      {API}, {COLLECTOR}")),
        "{inspect}"
    );

    // Once a policy grants it, the upgrade runs.
    let wide = policy(&dir, &project, &[API, COLLECTOR]);
    let output = run(wide.to_str().unwrap(), &[tools_dir, "greet@^1.0"]);
    assert_eq!(json_output(&output)["greeting"], "Hello v1.1.0, Ada!");
}

#[test]
fn a_workflow_asking_for_versions_that_are_not_semver_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flow = workflow(dir.path(), &["greet@newest"]);
    let line = error_line(&baton_in(dir.path(), &["run", flow.to_str().unwrap()]), 2);
    assert!(
        line.contains(
            "tools: 'greet@newest' names no versions: 'newest' is not a semver requirement"
        ),
        "{line}"
    );
}

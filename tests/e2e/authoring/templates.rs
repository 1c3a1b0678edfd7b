//! Each template in each language: generated, built, signed with a new key, its own test
//! passed through Baton, called, and its bundle replayed identically.

use crate::common::{error_line, text_output};

use super::Project;

/// What each kind's component is tried with: `baton ARGS...` (after the policy) and what its
/// output must hold.
fn try_it(project: &Project, kind: &str, bundle: &str) -> (Vec<String>, &'static str) {
    let wasm = project.wasm();
    let args: Vec<&str> = match kind {
        "tool" => vec!["call", &wasm, "--input", r#"{"name": "Ada"}"#],
        "prompt" => vec![
            "call",
            &wasm,
            "--input",
            r#"{"question": "Why WebAssembly?"}"#,
        ],
        _ => vec!["run", "--planner", &wasm, "say hello"],
    };
    let expected = match kind {
        "tool" => "Hello, Ada!",
        "prompt" => "Why WebAssembly?",
        _ => "say hello",
    };
    let mut args: Vec<String> = args.into_iter().map(String::from).collect();
    args.extend(["--bundle".into(), bundle.into()]);
    (args, expected)
}

/// Generates, builds, signs, tests, calls and replays the `kind` template in `lang`;
/// `prepare` readies the project before it is built.
fn template(
    kind: &str,
    lang: &str,
    own_test: (&str, &[&str]),
    prepare: impl FnOnce(&Project),
) -> Project {
    let project = Project::new(kind, lang);
    prepare(&project);
    let built = project.build();
    assert!(
        built.starts_with(&format!("./{} ", project.wasm())),
        "{built}"
    );
    assert!(built.contains("sha256:"), "{built}");

    // Unsigned, it is refused: the key the project trusts has signed nothing yet.
    let (args, expected) = try_it(&project, kind, "run.bundle");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = error_line(&project.baton(&args[..args.len() - 2]), 4);
    assert!(
        refused.contains("is not trusted: it is unsigned"),
        "{refused}"
    );

    project.sign();
    project.own_test(own_test.0, own_test.1);

    let output = text_output(&project.baton(&args));
    assert!(output.contains(expected), "{kind} in {lang}: {output}");
    let replay = text_output(&project.baton(&["replay", "run.bundle"]));
    assert!(replay.starts_with("identical: "), "{replay}");
    if kind == "tool" {
        called_over_mcp(&project);
    }
    project
}

/// An MCP client (the MCP Inspector) calls the tool through `baton mcp`.
fn called_over_mcp(project: &Project) {
    let policy = project.dir.join("policy.toml");
    let server = [
        env!("CARGO_BIN_EXE_baton"),
        "--policy",
        policy.to_str().unwrap(),
        "mcp",
        "--tools",
        project.dir.to_str().unwrap(),
    ];
    let call = ["--method", "tools/call", "--tool-name", &project.name];
    let args = ["--tool-arg", "name=Grace"];
    let store = project.dir.join("mcp.db");
    let called = crate::mcp::inspector(&[&server[..], &call, &args].concat(), &store);
    assert_eq!(
        called["structuredContent"]["greeting"], "Hello, Grace!",
        "{called}"
    );
}

#[test]
fn rust_templates_build_sign_pass_their_tests_and_replay() {
    for kind in ["tool", "prompt", "planner"] {
        template(kind, "rust", ("cargo", &["test", "--quiet"]), |_| {});
    }
}

#[test]
fn python_templates_build_sign_pass_their_tests_and_replay() {
    for kind in ["tool", "prompt", "planner"] {
        template(
            kind,
            "python",
            ("python3", &["-m", "unittest", "--quiet"]),
            |_| {},
        );
    }
}

#[test]
fn javascript_templates_build_sign_pass_their_tests_and_replay() {
    let test = ("npm", &["test", "--silent"][..]);
    // The first build installs componentize-js with npm; the others share what it installed.
    let first = template("tool", "js", test, |_| {});
    for kind in ["prompt", "planner"] {
        template(kind, "js", test, |project| {
            std::os::unix::fs::symlink(
                first.dir.join("node_modules"),
                project.dir.join("node_modules"),
            )
            .unwrap()
        });
    }
}

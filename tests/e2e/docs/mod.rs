//! Every command in the README and docs/ runs, as a reader would type it, in the order the
//! file gives them. A `sh` block's lines must succeed; a `console` block's `$ ` lines must
//! also print the lines that follow them (`…` matches anything). HTML comments before a block
//! (`<!-- docs-test: ... -->`) say what the reader has done already (`setup:`), which file a
//! block is (`file:`), which peer it needs (`with:`), or why it is not run (`skip:`).

mod markdown;
mod session;

use std::path::Path;

use markdown::{Block, Directive, blocks};
use session::Session;

/// The files whose examples are run; every file with `sh` or `console` blocks must be here.
const DOCUMENTS: &[&str] = &[
    "README.md",
    "docs/authoring.md",
    "docs/cluster.md",
    "docs/journal.md",
    "docs/llm.md",
    "docs/mcp.md",
    "docs/serve.md",
    "docs/workflows.md",
];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Runs every example in `document`; panics naming the first that fails.
fn run_document(document: &str) {
    let text = std::fs::read_to_string(repo().join(document)).unwrap();
    let blocks = blocks(&text);
    let peers: Vec<String> = blocks
        .iter()
        .flat_map(|b| &b.directives)
        .filter_map(|d| match d {
            Directive::With(peer) => Some(peer.clone()),
            _ => None,
        })
        .collect();
    let mut session = Session::new(&peers);
    let mut ran = 0;
    for block in &blocks {
        ran += run_block(&mut session, document, block);
    }
    assert!(ran > 0, "{document}: no example ran");
    if let Err(why) = session.finish() {
        panic!("{document}: teardown {why}");
    }
}

/// Runs one block; returns how many commands ran.
fn run_block(session: &mut Session, document: &str, block: &Block) -> usize {
    let at = format!("{document}:{}", block.line);
    let mut file = None;
    for directive in &block.directives {
        match directive {
            Directive::Skip(reason) => {
                assert!(!reason.is_empty(), "{at}: a skip must say why");
                return 0;
            }
            Directive::Setup(command) => {
                if let Err(why) = session.run(command) {
                    panic!("{at}: setup {why}");
                }
            }
            Directive::Teardown(command) => session.on_teardown(command),
            Directive::File(name) => file = Some(name),
            Directive::With(_) => {}
        }
    }
    if let Some(name) = file {
        session.write_file(name, &block.text);
        return 0;
    }
    if !matches!(block.lang.as_str(), "sh" | "console") {
        return 0;
    }
    let commands = block.commands();
    for (command, expected) in &commands {
        let ran = session
            .run(command)
            .unwrap_or_else(|why| panic!("{at}: {why}"));
        let mut lines = ran.stdout.lines();
        for want in expected {
            let pattern = pattern(&session.localize(want));
            assert!(
                lines.any(|line| pattern.is_match(line)),
                "{at}: `{command}` did not print {want:?} (in order)\n--- stdout\n{}\n--- stderr\n{}",
                ran.stdout,
                ran.stderr
            );
        }
    }
    commands.len()
}

/// An expected line as a pattern: literal, but `…` or `...` matches anything.
fn pattern(line: &str) -> regex::Regex {
    let parts: Vec<String> = line
        .trim()
        .split(['…'])
        .flat_map(|part| part.split("...").map(regex::escape).collect::<Vec<_>>())
        .collect();
    regex::Regex::new(&format!("^\\s*{}\\s*$", parts.join(".*"))).unwrap()
}

#[test]
fn every_document_with_commands_is_run() {
    let mut files = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        let blocks = blocks(&std::fs::read_to_string(&file).unwrap());
        for block in &blocks {
            assert!(
                !matches!(
                    block.lang.as_str(),
                    "bash" | "shell" | "shell-session" | "zsh"
                ),
                "{name}:{}: write shell examples as `sh` (commands) or `console` (commands \
                 and what they print), so that the documentation's test runs them",
                block.line
            );
        }
        let has_commands = blocks
            .iter()
            .any(|b| matches!(b.lang.as_str(), "sh" | "console"));
        assert!(
            !has_commands || DOCUMENTS.contains(&name.as_str()),
            "{name} has commands, but the documentation's test does not run it: add it to \
             DOCUMENTS in tests/e2e/docs/mod.rs"
        );
    }
}

#[test]
fn expected_output_matches_with_ellipses() {
    assert!(pattern("verified: …, complete").is_match("verified: 8 events, complete"));
    assert!(pattern("{\"value\":98.0}").is_match("{\"value\":98.0}"));
    assert!(!pattern("{\"value\":98.0}").is_match("{\"value\":99.0}"));
}

#[test]
fn the_readme_commands_work() {
    run_document("README.md");
}

#[test]
fn the_authoring_guide_commands_work() {
    run_document("docs/authoring.md");
}

#[test]
fn the_cluster_guide_commands_work() {
    run_document("docs/cluster.md");
}

#[test]
fn the_journal_guide_commands_work() {
    run_document("docs/journal.md");
}

#[test]
fn the_llm_guide_commands_work() {
    run_document("docs/llm.md");
}

#[test]
fn the_mcp_guide_commands_work() {
    run_document("docs/mcp.md");
}

#[test]
fn the_serve_guide_commands_work() {
    run_document("docs/serve.md");
}

#[test]
fn the_workflows_guide_commands_work() {
    run_document("docs/workflows.md");
}

#[test]
fn a_failing_command_or_other_output_fails_and_the_shell_carries_state() {
    let mut session = Session::new(&[]);
    let failed = session
        .run("baton call no-such.wasm --input '{}'")
        .unwrap_err();
    assert!(failed.contains("failed (exit status: 2)"), "{failed}");
    session.run("export GREETING=hello && cd target").unwrap();
    let ran = session.run("echo $GREETING; pwd").unwrap();
    assert!(ran.stdout.starts_with("hello\n"), "{}", ran.stdout);
    assert!(ran.stdout.trim_end().ends_with("/target"), "{}", ran.stdout);
    let block = &blocks("```console\n$ echo 41\n42\n```\n")[0];
    let mismatch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_block(&mut session, "test.md", block)
    }));
    assert!(mismatch.is_err(), "output 41 was taken for the expected 42");
}

//! Runs the examples in examples.json through Baton: `baton --policy policy.toml ARGS...`
//! must end with the status each names, printing what it expects. Build and sign the
//! component first (see README.md); set BATON to use a `baton` that is not on PATH.

use std::process::Command;

use serde::Deserialize;

#[derive(Deserialize)]
struct Example {
    about: String,
    args: Vec<String>,
    status: i32,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
}

#[test]
fn examples_run_through_baton() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{dir}/examples.json")).expect("examples.json");
    let examples: Vec<Example> = serde_json::from_str(&text).expect("examples.json is valid");
    let baton = std::env::var("BATON").unwrap_or_else(|_| "baton".into());
    for example in examples {
        let output = Command::new(&baton)
            .current_dir(dir)
            .args(["--policy", "policy.toml"])
            .args(&example.args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {baton}: {e} (set BATON to its path)"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(example.status),
            "{}: stdout {stdout} stderr {stderr}",
            example.about
        );
        assert!(stdout.contains(&example.stdout), "{}: stdout {stdout}", example.about);
        assert!(stderr.contains(&example.stderr), "{}: stderr {stderr}", example.about);
    }
}

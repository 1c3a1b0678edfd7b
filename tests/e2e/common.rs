//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use baton::trust::check::with_suffix;

/// A built plugin, e.g. `plugin("calc.wasm")` or `plugin("testing/spin.wasm")`.
pub fn plugin(name: &str) -> PathBuf {
    let path = plugin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `cargo xtask plugins`",
        path.display()
    );
    path
}

/// Where `cargo xtask plugins` put the plugins: `BATON_PLUGIN_DIR`, else `target/plugins`.
fn plugin_dir() -> PathBuf {
    std::env::var_os("BATON_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins"))
}

/// The policy that trusts this machine's development key, which signs the built plugins
/// (`cargo xtask plugins` writes it beside them).
pub fn trust_policy() -> PathBuf {
    plugin("trust.toml")
}

/// This machine's development key, as `cargo xtask plugins` made it: the private key, the
/// public key and the private key's password.
pub fn dev_key() -> (PathBuf, PathBuf, String) {
    let dir = plugin_dir().join("../dev-key");
    let password = std::fs::read_to_string(dir.join("password"))
        .expect("the development key's password: run `cargo xtask plugins`");
    (
        dir.join("baton-dev.key"),
        dir.join("baton-dev.pub"),
        password.trim().into(),
    )
}

/// Copies a built plugin into `dir` with its signature and attestation, so that it loads
/// under the development trust policy; returns the copy.
pub fn copy_plugin(name: &str, dir: &Path) -> PathBuf {
    let from = plugin(name);
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(&from, &to).unwrap();
    for suffix in [".sig", ".intoto.json"] {
        std::fs::copy(with_suffix(&from, suffix), with_suffix(&to, suffix)).unwrap();
    }
    to
}

/// One compile cache for every test process, outside the user's own: compiled components
/// are written to a temporary file and renamed into place, so processes can share it, and a
/// run leaves one cache behind rather than one per test. `cargo xtask test` empties it first
/// (see `E2E_SCRATCH` there).
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("compile-cache");
        std::fs::create_dir_all(&dir).expect("the tests' compile cache");
        dir
    })
}

/// A journal shared by the tests of this process that do not inspect it, outside the user's
/// own (one per process, so that no test sees another's runs or completion cache).
pub fn shared_store() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let stores = scratch().join("stores");
        std::fs::create_dir_all(&stores).expect("the tests' stores");
        tempfile::tempdir_in(stores).expect("a temporary directory")
    })
    .path()
    .join("journal.db")
}

/// What the end-to-end tests keep under the build's temporary directory.
fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e")
}

/// Where the local model is: `BATON_MODELS` (set by `cargo xtask test`), else where
/// `cargo xtask models` puts it.
pub fn models_dir() -> PathBuf {
    std::env::var_os("BATON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models"))
}

/// The `baton` binary, isolated from the user's environment, trusting the development key.
pub fn baton() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command
        .env("BATON_CACHE_DIR", cache_dir())
        .env("BATON_STORE", shared_store())
        .env("BATON_MODELS", models_dir())
        .env("BATON_POLICY", trust_policy())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

pub fn run(args: &[&str]) -> Output {
    baton().args(args).output().expect("baton runs")
}

/// Runs baton with its journal at `store`.
pub fn run_with_store(store: &Path, args: &[&str]) -> Output {
    baton()
        .env("BATON_STORE", store)
        .args(args)
        .output()
        .expect("baton runs")
}

/// Writes `text` as `policy.toml` in `dir`; returns its path.
pub fn write_policy(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Asserts success and returns stdout as text.
pub fn text_output(output: &Output) -> String {
    assert!(
        output.status.success(),
        "baton failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `baton call <plugin> --input <input> [extra...]`.
pub fn call(plugin_name: &str, input: &str, extra: &[&str]) -> Output {
    let path = plugin(plugin_name);
    let mut args = vec!["call", path.to_str().unwrap(), "--input", input];
    args.extend_from_slice(extra);
    run(&args)
}

/// Asserts success and returns stdout parsed as JSON.
pub fn json_output(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "baton failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// Asserts that baton failed with `code`, printed nothing on stdout and exactly one line on
/// stderr starting with "error: " (a panic would print more) besides its summary of
/// denials, and returns that line.
pub fn error_line(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit status {code}; stderr: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("denied: ") && !l.starts_with("budget: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// Asserts that `text` contains every one of `parts`.
#[track_caller]
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected {part:?} in: {text}");
    }
}

/// The id of the newest run in `store`.
pub fn last_run(store: &Path) -> String {
    let listed = text_output(&run_with_store(store, &["trace", "ls", "--json"]));
    let run: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    run["run"].as_str().unwrap().to_string()
}

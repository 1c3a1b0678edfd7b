//! `baton new` and `baton build`: every template, freshly generated, builds with its real
//! toolchain (cargo, componentize-py, componentize-js), is signed with a new key, passes its
//! own test through Baton, is called, and replays identically; and what Python and JavaScript
//! components import beyond the Rust tools' WASI gives them nothing.

mod errors;
mod sandbox;
mod templates;
mod versions;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{baton, text_output};

const PASSWORD: &str = "template tests";

/// A project `baton new` made in a temporary directory, with its own signing key.
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    _temp: tempfile::TempDir,
}

impl Project {
    /// `baton new KIND KIND-LANG --lang LANG`, then `baton keygen` in the project.
    pub fn new(kind: &str, lang: &str) -> Self {
        Self::named(kind, lang, &format!("{kind}-{lang}"))
    }

    /// `baton new KIND NAME --lang LANG`, then `baton keygen` in the project.
    pub fn named(kind: &str, lang: &str, name: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let name = name.to_string();
        let dir = temp.path().join(&name);
        text_output(
            &in_dir(temp.path())
                .args(["new", kind, &name, "--lang", lang])
                .output()
                .unwrap(),
        );
        text_output(&in_dir(&dir).arg("keygen").output().unwrap());
        Project {
            dir,
            name,
            _temp: temp,
        }
    }

    /// `baton build`: the line it prints (path, size, digest).
    pub fn build(&self) -> String {
        text_output(&self.baton(&["build"]))
    }

    /// `baton sign --key baton.key NAME.wasm`.
    pub fn sign(&self) {
        text_output(&self.baton(&["sign", "--key", "baton.key", &self.wasm()]));
    }

    /// The component's file name.
    pub fn wasm(&self) -> String {
        format!("{}.wasm", self.name)
    }

    /// `baton --policy policy.toml ARGS...` in the project.
    pub fn baton(&self, args: &[&str]) -> Output {
        in_dir(&self.dir)
            .args(["--policy", "policy.toml"])
            .args(args)
            .output()
            .unwrap()
    }

    /// The project's own test (`cargo test`, `python3 -m unittest`, `npm test`), which runs
    /// its examples through this `baton`.
    pub fn own_test(&self, program: &str, args: &[&str]) {
        let output = toolchain(Command::new(program))
            .current_dir(&self.dir)
            .args(args)
            .env("BATON", env!("CARGO_BIN_EXE_baton"))
            .env("BATON_CACHE_DIR", crate::common::cache_dir())
            .env("BATON_STORE", crate::common::shared_store())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed in {}: {}{}",
            self.dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Writes `text` as the project's file `path`.
    pub fn write(&self, path: &str, text: &str) {
        std::fs::write(self.dir.join(path), text).unwrap();
    }
}

/// `baton ARGS...` in `dir`, as a project's commands run.
pub fn baton_in(dir: &Path, args: &[&str]) -> Output {
    in_dir(dir).args(args).output().unwrap()
}

/// `baton` in `dir`, with the key password and the toolchains on PATH.
fn in_dir(dir: &Path) -> Command {
    let mut command = toolchain(baton());
    command.current_dir(dir).env("BATON_KEY_PASSWORD", PASSWORD);
    command
}

/// `command` with the toolchains the templates build with: componentize-py where pip
/// installs scripts, and Rust templates built into one target directory that outlives the
/// test (so a second run compiles nothing).
fn toolchain(mut command: Command) -> Command {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig; print(sysconfig.get_path('scripts')); \
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .output()
        .expect("python3 runs");
    let mut path: Vec<PathBuf> = String::from_utf8_lossy(&scripts.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    command
        .env("PATH", std::env::join_paths(path).unwrap())
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("templates"),
        );
    command
}

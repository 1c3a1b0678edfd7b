//! The reference and testing plugins: built for wasm32-wasip2 into `target/plugins/`, and
//! signed with the development key together with the policies in `policies/`.
//!
//! Building them takes minutes, so a stamp in `target/plugins/` records a digest of what they
//! are built from (their sources, the WIT contract, the lock file and manifests, the
//! toolchain); while it matches, they are neither built nor signed again. The policies are
//! signed again whenever one of them changed or lacks its signature.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::workspace::{Workspace, workspace};
use crate::{Result, cargo, run};

const WASM_TARGET: &str = "wasm32-wasip2";
const PLUGIN_PROFILE: &str = "plugin";

/// The stamp's file name, in `target/plugins/`.
const STAMP: &str = ".built-from";

/// The development key's password. The key signs what this repository builds, so that the
/// built-in policy (which requires signatures) loads it; it is not a secret and must never
/// be trusted in production.
const DEV_KEY_PASSWORD: &str = "baton-dev";

/// Builds every plugin into `target/plugins/<group>/<name>.wasm` (tools directly in
/// `target/plugins/`) and signs each with the development key, returning that directory.
pub fn build() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let ws = workspace()?;
    let out = ws.target.join("plugins");
    let stamp = out.join(STAMP);
    let sources = digest_of(&ws.root, &plugin_sources(&ws)?)?;
    let policies = digest_of(&ws.root, &files(&ws.root.join("policies"), "toml")?)?;
    let recorded = std::fs::read_to_string(&stamp).unwrap_or_default();
    let mut recorded = recorded.lines();
    let (built_from, signed_policies) = (recorded.next(), recorded.next());
    let mut to_sign = Vec::new();
    if built_from == Some(sources.as_str()) && outputs(&ws, &out).iter().all(|p| p.exists()) {
        eprintln!("xtask: plugins are up to date with their sources");
    } else {
        // A build that stops half way must not look complete.
        let _ = std::fs::remove_file(&stamp);
        compile(&ws, &out)?;
        to_sign.extend(outputs(&ws, &out));
    }
    let policy_files = files(&ws.root.join("policies"), "toml")?;
    let unsigned = policy_files.iter().any(|p| !signed(p));
    if !to_sign.is_empty() || unsigned || signed_policies != Some(policies.as_str()) {
        to_sign.extend(policy_files);
    }
    if !to_sign.is_empty() {
        sign(&ws, &to_sign)?;
    }
    std::fs::write(&stamp, format!("{sources}\n{policies}\n"))
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    eprintln!("xtask: plugins are in {}", out.display());
    Ok(out)
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (is Rust installed with rustup?): {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {WASM_TARGET} target");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Where each plugin's component goes: tools directly in `out`, the others in their group's
/// folder; a plugin with features gives one component per feature.
fn outputs(ws: &Workspace, out: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for plugin in &ws.plugins {
        let dir = match plugin.group.as_str() {
            "tools" => out.to_path_buf(),
            group => out.join(group),
        };
        if plugin.features.is_empty() {
            // Planners and prompts are named by what they do: `static-planner` is
            // `planners/static.wasm`.
            let name = match plugin.group.as_str() {
                "planners" => plugin.package.trim_end_matches("-planner"),
                "prompts" => plugin.package.trim_end_matches("-prompt"),
                _ => &plugin.package,
            };
            paths.push(dir.join(format!("{name}.wasm")));
        }
        for feature in &plugin.features {
            paths.push(dir.join(format!("{feature}.wasm")));
        }
    }
    paths
}

/// Builds every plugin and copies each component to its place in `out`.
fn compile(ws: &Workspace, out: &Path) -> Result<()> {
    let built = ws.target.join(WASM_TARGET).join(PLUGIN_PROFILE);
    let wasm_build = || {
        let mut c = cargo();
        c.args([
            "build",
            "--quiet",
            "--profile",
            PLUGIN_PROFILE,
            "--target",
            WASM_TARGET,
        ]);
        c
    };
    // Packages without features build together in one cargo invocation.
    let mut plain = wasm_build();
    for plugin in ws.plugins.iter().filter(|p| p.features.is_empty()) {
        plain.args(["-p", &plugin.package]);
    }
    eprintln!("xtask: building plugins for {WASM_TARGET}");
    run(&mut plain)?;
    let mut places = outputs(ws, out).into_iter();
    for plugin in &ws.plugins {
        let artifact = built.join(format!("{}.wasm", plugin.artifact));
        if plugin.features.is_empty() {
            copy(&artifact, &places.next().expect("one place per plugin"))?;
        }
        for feature in &plugin.features {
            run(wasm_build().args(["-p", &plugin.package, "--features", feature]))?;
            copy(&artifact, &places.next().expect("one place per feature"))?;
        }
    }
    Ok(())
}

/// Signs `paths` (`FILE.sig`, `FILE.intoto.json` beside each) with `baton sign` and the
/// development key in `attestations/keys/`.
fn sign(ws: &Workspace, paths: &[PathBuf]) -> Result<()> {
    eprintln!(
        "xtask: signing {} plugins and policies with the development key",
        paths.len()
    );
    let key = ws.root.join("attestations/keys/baton-dev.key");
    let mut sign = cargo();
    sign.current_dir(&ws.root)
        .env("BATON_KEY_PASSWORD", DEV_KEY_PASSWORD)
        .env("BATON_CACHE_DIR", ws.target.join("baton-cache"))
        .args(["run", "--quiet", "-p", "baton", "--", "sign", "--key"])
        .arg(&key)
        .args(paths);
    if let Ok(revision) = std::env::var("BATON_SOURCE_REVISION") {
        sign.env("BATON_SOURCE_REVISION", revision);
    }
    let output = sign
        .output()
        .map_err(|e| format!("cannot run baton sign: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "signing the plugins failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Whether `path` has its signature and attestation beside it.
fn signed(path: &Path) -> bool {
    [".sig", ".intoto.json"].iter().all(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name).exists()
    })
}

/// Everything the plugins are built from, and what signs them.
fn plugin_sources(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for dir in ["plugins", "wit", "attestations/keys", "crates/trust/src"] {
        walk(&ws.root.join(dir), &mut paths)?;
    }
    for file in ["Cargo.lock", "Cargo.toml", "crates/baton/src/cli/sign.rs"] {
        paths.push(ws.root.join(file));
    }
    paths.sort();
    Ok(paths)
}

/// The files under `dir`, recursively, leaving out build output.
fn walk(dir: &Path, paths: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {dir:?}: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                walk(&path, paths)?;
            }
        } else {
            paths.push(path);
        }
    }
    Ok(())
}

/// The files in `dir` with `extension`, in name order.
fn files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {dir:?}: {e}"))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == extension) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// A digest of the names (relative to `root`, so that another clone of the same sources
/// matches) and contents of `paths`, and of the compiler that builds them.
fn digest_of(root: &Path, paths: &[PathBuf]) -> Result<String> {
    let mut hasher = Sha256::new();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    hasher.update(&rustc.stdout);
    for path in paths {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        let name = path.strip_prefix(root).unwrap_or(path);
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

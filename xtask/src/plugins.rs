//! The reference and testing plugins: built for wasm32-wasip2 into `target/plugins/`, and
//! signed with this machine's development key together with the policies in `policies/`.
//!
//! The development key is made on first use in `target/dev-key/` (its password beside it, in
//! a file only its owner reads), never committed: a key whose private half were public would
//! let anyone sign for whoever trusts it. `target/plugins/trust.toml` is the policy that
//! trusts it, which the demo and the tests layer over the built-in one (which trusts nobody).
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

/// The development key's directory, in the target directory, and the key's name: a plugin
/// section's `signer = "baton-dev"` names it.
const DEV_KEY_DIR: &str = "dev-key";
const DEV_KEY_NAME: &str = "baton-dev";
/// The policy, in `target/plugins/`, that trusts the development key.
const TRUST_POLICY: &str = "trust.toml";

/// Builds every plugin into `target/plugins/<group>/<name>.wasm` (tools directly in
/// `target/plugins/`) and signs each with the development key, returning that directory.
pub fn build() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let ws = workspace()?;
    let out = ws.target.join("plugins");
    let stamp = out.join(STAMP);
    let sources = digest_of(&ws.root, &plugin_sources(&ws)?)?;
    let policies = digest_of(&ws.root, &files(&ws.root.join("policies"), "toml")?)?;
    let key = dev_key(&ws)?;
    let signed_with = digest_of(&ws.root, std::slice::from_ref(&key.public))?;
    let recorded = std::fs::read_to_string(&stamp).unwrap_or_default();
    let mut recorded = recorded.lines();
    let (built_from, signed_policies, recorded_key) =
        (recorded.next(), recorded.next(), recorded.next());
    let mut to_sign = Vec::new();
    if built_from == Some(sources.as_str()) && outputs(&ws, &out).iter().all(|p| p.exists()) {
        eprintln!("xtask: plugins are up to date with their sources");
        if recorded_key != Some(signed_with.as_str()) {
            to_sign.extend(outputs(&ws, &out));
        }
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
        sign(&ws, &key, &to_sign)?;
    }
    write_trust_policy(&out, &key)?;
    std::fs::write(&stamp, format!("{sources}\n{policies}\n{signed_with}\n"))
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

/// This machine's development key pair and the password of its private half.
struct DevKey {
    private: PathBuf,
    public: PathBuf,
    password: String,
}

/// The development key in `target/dev-key/`, made with `baton keygen` when there is none.
fn dev_key(ws: &Workspace) -> Result<DevKey> {
    let dir = ws.target.join(DEV_KEY_DIR);
    let key = DevKey {
        private: dir.join(format!("{DEV_KEY_NAME}.key")),
        public: dir.join(format!("{DEV_KEY_NAME}.pub")),
        password: String::new(),
    };
    let password_file = dir.join("password");
    if key.private.exists() && key.public.exists() && password_file.exists() {
        let password = std::fs::read_to_string(&password_file)
            .map_err(|e| format!("cannot read {}: {e}", password_file.display()))?;
        return Ok(DevKey {
            password: password.trim().into(),
            ..key
        });
    }
    eprintln!(
        "xtask: making this machine's development key in {}",
        dir.display()
    );
    let fresh = dir.join("new");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(|e| format!("cannot create {fresh:?}: {e}"))?;
    let password = random_hex(16)?;
    let mut keygen = baton(ws);
    keygen
        .env("BATON_KEY_PASSWORD", &password)
        .args(["keygen", "--out"])
        .arg(&fresh);
    run(&mut keygen)?;
    write_private(&password_file, &password)?;
    for (made, place) in [("baton.key", &key.private), ("baton.pub", &key.public)] {
        std::fs::rename(fresh.join(made), place)
            .map_err(|e| format!("cannot move the new key to {}: {e}", place.display()))?;
    }
    let _ = std::fs::remove_dir(&fresh);
    Ok(DevKey { password, ..key })
}

/// `bytes` random bytes from the operating system, in hex.
fn random_hex(bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut buffer = vec![0; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(hex(&buffer))
}

/// Writes `text` to a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes `out/trust.toml`, the policy that trusts the development key.
fn write_trust_policy(out: &Path, key: &DevKey) -> Result<()> {
    let path = out.join(TRUST_POLICY);
    let text = format!(
        "# Written by `cargo xtask plugins`: trusts this machine's development key, which signs\n\
         # the plugins built here. Layer it with --policy {} (or BATON_POLICY).\n\
         [trust]\nkeys = [{:?}]\n",
        path.display(),
        key.public.display().to_string(),
    );
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `baton`, run from the workspace with a compile cache of its own.
fn baton(ws: &Workspace) -> Command {
    let mut baton = cargo();
    baton
        .current_dir(&ws.root)
        .env("BATON_CACHE_DIR", ws.target.join("baton-cache"))
        .env_remove("BATON_POLICY")
        .args(["run", "--quiet", "-p", "baton", "--"]);
    baton
}

/// Signs `paths` (`FILE.sig`, `FILE.intoto.json` beside each) with `baton sign` and the
/// development key.
fn sign(ws: &Workspace, key: &DevKey, paths: &[PathBuf]) -> Result<()> {
    eprintln!(
        "xtask: signing {} plugins and policies with the development key",
        paths.len()
    );
    let mut sign = baton(ws);
    sign.env("BATON_KEY_PASSWORD", &key.password)
        .args(["sign", "--force", "--key"])
        .arg(&key.private)
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
    for dir in ["plugins", "wit", "crates/trust/src"] {
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

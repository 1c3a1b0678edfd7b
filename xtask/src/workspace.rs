//! The workspace as `cargo metadata` describes it: where it is, where it builds, and its
//! plugins.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Result, cargo};

/// A plugin package from `cargo metadata`.
pub struct Plugin {
    pub package: String,
    /// `tools`, `testing`, ... (the folder under `plugins/`).
    pub group: String,
    /// Features to build one at a time, each into its own component (empty: build once).
    pub features: Vec<String>,
    /// The artifact's file stem: the lib name (`-` → `_`) or the bin name.
    pub artifact: String,
}

pub struct Workspace {
    pub root: PathBuf,
    pub target: PathBuf,
    pub plugins: Vec<Plugin>,
}

pub fn workspace() -> Result<Workspace> {
    let meta = metadata()?;
    let root = PathBuf::from(meta["workspace_root"].as_str().unwrap_or("."));
    let target = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let plugins_dir = root.join("plugins");
    let mut plugins = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        let Ok(relative) = manifest.strip_prefix(&plugins_dir) else {
            continue;
        };
        let group = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .to_string();
        let target = &package["targets"][0];
        let name = target["name"].as_str().unwrap_or_default();
        // Libraries' artifacts use underscores; binaries keep their name.
        let is_bin = target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        let artifact = if is_bin {
            name.to_string()
        } else {
            name.replace('-', "_")
        };
        let features = package["features"]
            .as_object()
            .map(|f| f.keys().filter(|k| *k != "default").cloned().collect())
            .unwrap_or_default();
        plugins.push(Plugin {
            package: package["name"].as_str().unwrap_or_default().to_string(),
            group,
            features,
            artifact,
        });
    }
    Ok(Workspace {
        root,
        target,
        plugins,
    })
}

/// `cargo metadata` of the workspace's own packages.
pub fn metadata() -> Result<Value> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

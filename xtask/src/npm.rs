//! Node packages the end-to-end tests use as peers Baton did not write, installed with npm
//! into the target directory (so a machine that ran the tests before reuses them).

use std::path::PathBuf;
use std::process::Command;

use crate::workspace::workspace;
use crate::{Result, run};

/// The MCP Inspector, whose CLI mode lists and calls tools.
const INSPECTOR: &str = "@modelcontextprotocol/inspector";
const INSPECTOR_VERSION: &str = "0.15.0";

/// The Inspector's command, installed if it is missing or of another version.
pub fn inspector() -> Result<PathBuf> {
    let dir = workspace()?.target.join("npm");
    let bin = dir.join("node_modules/.bin/mcp-inspector");
    let manifest = dir
        .join("node_modules")
        .join(INSPECTOR)
        .join("package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|package| package["version"] == INSPECTOR_VERSION);
    if installed && bin.exists() {
        return Ok(bin);
    }
    eprintln!("xtask: installing {INSPECTOR}@{INSPECTOR_VERSION} with npm (the MCP tests' client)");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!("{INSPECTOR}@{INSPECTOR_VERSION}")))
    .map_err(|e| format!("{e}; install Node.js with npm and try again"))?;
    Ok(bin)
}

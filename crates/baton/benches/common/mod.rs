//! Helpers shared by the benchmarks (each benchmark uses part of them).

use std::path::{Path, PathBuf};

#[path = "../../../../tests/e2e/server.rs"]
pub mod server;

/// A plugin built by `cargo xtask plugins`.
pub fn plugin(name: &str) -> PathBuf {
    std::env::var_os("BATON_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins"))
        .join(name)
}

/// Writes, in `dir`, a policy granting `fetch` exactly `server`'s address; returns its path.
pub fn fetch_policy(dir: &Path, server: &server::Server) -> PathBuf {
    let policy = dir.join("policy.toml");
    let grant = format!(
        "[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n",
        server.port
    );
    std::fs::write(&policy, grant).unwrap();
    policy
}

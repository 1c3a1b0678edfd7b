//! Components in a real OCI registry: the CNCF distribution registry (Debian's
//! `docker-registry`), started by each test on a loopback port. Push with the signature, pull by
//! tag and by digest, refuse what is unsigned or signed by an untrusted key, and serve from the
//! cache once the registry is gone.

mod distribution;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::baton;
pub use server::Registry;

/// `baton` with its pulls and compiled components cached in `cache`.
pub fn cached_in(cache: &Path) -> Command {
    let mut command = baton();
    command.env("BATON_CACHE_DIR", cache);
    command
}

/// `baton ARGS...`, cached in `cache`.
pub fn with_cache(cache: &Path, args: &[&str]) -> Output {
    cached_in(cache).args(args).output().unwrap()
}

/// A new signing key pair in `dir`: (private, public).
pub fn keypair(dir: &Path) -> (PathBuf, PathBuf) {
    let output = baton()
        .env("BATON_KEY_PASSWORD", "registry tests")
        .args(["keygen", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (dir.join("baton.key"), dir.join("baton.pub"))
}

//! The persistent cache of precompiled components, so that a second load costs a
//! deserialize instead of a compile.
//!
//! Entries live at `<dir>/<engine>/<digest>.cwasm`, where `<engine>` hashes everything that
//! makes compiled code incompatible (wasmtime version, target, engine settings). Entries are
//! written to a temporary file and renamed into place, so a reader never sees a partial one.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use baton_core::Digest;

#[derive(Debug, Clone)]
pub struct CompileCache {
    /// `None` when caching is off.
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache in `dir` (created on first use), for artifacts of `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Self {
            dir: Some(dir.join(format!("{:016x}", hasher.finish()))),
        }
    }

    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The user's default cache directory for compiled components.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("baton").join("components"))
    }

    fn entry(&self, digest: &Digest) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{}.cwasm", digest.hex())))
    }

    /// The cached component for `digest`, or a fresh compile of `bytes` (then cached).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &Digest,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let Some(entry) = self.entry(digest) else {
            return Component::from_binary(engine, bytes);
        };
        if entry.exists() {
            // SAFETY: entries are only ever written by `store` below, from `serialize` of
            // the same engine configuration (the directory name pins it), and are renamed
            // into place whole. wasmtime checks the header before using the artifact.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(entry = %entry.display(), "ignoring unusable cache entry: {e}")
                }
            }
        }
        let component = Component::from_binary(engine, bytes)?;
        if let Err(e) = store(&entry, &component) {
            tracing::warn!(entry = %entry.display(), "cannot write the compile cache: {e}");
        }
        Ok(component)
    }
}

fn store(entry: &Path, component: &Component) -> Result<(), Box<dyn std::error::Error>> {
    let dir = entry.parent().ok_or("cache entry without a directory")?;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, &component.serialize()?)?;
    file.persist(entry)?;
    Ok(())
}

//! Pulled components on disk: `sha256-<manifest digest>/NAME.wasm` with its signature files
//! beside it, written whole (into a staging directory renamed into place), and `tags/`, the
//! digest each tag named when last resolved.

use std::path::{Path, PathBuf};

use baton_core::Digest;
use baton_trust::check::with_suffix;

use crate::RegistryError;
use crate::signatures::Files;

/// Whether `text` is a digest as the OCI image specification writes one (`ALGORITHM:ENCODED`,
/// with a known algorithm's length and hex checked). Nothing else may name a directory of the
/// cache.
pub(crate) fn is_digest(text: &str) -> bool {
    text.parse::<oci_spec::image::Digest>().is_ok()
}

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory of the manifest `digest`; none for a string that is not a digest, which
    /// could name a directory outside the cache (a registry answers the digest of a tag).
    fn entry(&self, digest: &str) -> Option<PathBuf> {
        is_digest(digest).then(|| self.dir.join(digest.replace(':', "-")))
    }

    /// The cached component of the manifest `digest`, if it was pulled before.
    pub fn component(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.entry(digest)?;
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| path.extension().is_some_and(|e| e == "wasm"))
    }

    /// Writes the component of the manifest `digest` and its signature files, whole.
    pub fn store(
        &self,
        digest: &str,
        file_name: &str,
        component: &[u8],
        signatures: &Files,
    ) -> Result<PathBuf, RegistryError> {
        // Checked before anything is written.
        let entry = self.entry(digest).ok_or_else(|| RegistryError::BadDigest {
            reference: file_name.into(),
            digest: digest.into(),
        })?;
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Cache { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(failed(&self.dir))?;
        let staging = tempfile::Builder::new()
            .prefix(".pulling-")
            .tempdir_in(&self.dir)
            .map_err(failed(&self.dir))?;
        let file = staging.path().join(file_name);
        std::fs::write(&file, component).map_err(failed(&file))?;
        for (suffix, bytes) in &signatures.0 {
            let path = with_suffix(&file, suffix);
            std::fs::write(&path, bytes).map_err(failed(&path))?;
        }
        match std::fs::rename(staging.path(), &entry) {
            Ok(()) => {
                // Moved into place: nothing left for the guard to remove.
                let _ = staging.keep();
            }
            // Another process cached it first; theirs is the same component.
            Err(_) if entry.is_dir() => {}
            Err(source) => {
                return Err(RegistryError::Cache {
                    path: entry,
                    source,
                });
            }
        }
        Ok(entry.join(file_name))
    }

    /// Remembers that the tag `key` (`HOST/REPO:TAG`) named the manifest `digest`.
    pub fn remember_tag(&self, key: &str, digest: &str) {
        let path = self.tag_file(key);
        // Only an offline fallback depends on it: failing to write it fails nothing.
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| {
                let mut file = tempfile::NamedTempFile::new_in(path.parent().expect("a parent"))?;
                std::io::Write::write_all(&mut file, digest.as_bytes())?;
                file.persist(&path).map_err(|e| e.error)?;
                Ok(())
            });
        if let Err(e) = written {
            tracing::debug!(
                "cannot remember {key} → {digest} in {}: {e}",
                path.display()
            );
        }
    }

    /// The digest the tag `key` named when last resolved, and its cached component.
    pub fn tag(&self, key: &str) -> Option<(String, PathBuf)> {
        let digest = std::fs::read_to_string(self.tag_file(key)).ok()?;
        let path = self.component(&digest)?;
        Some((digest, path))
    }

    fn tag_file(&self, key: &str) -> PathBuf {
        self.dir.join("tags").join(Digest::of(key.as_bytes()).hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_digest_names_a_directory_of_the_cache() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let sha512 = format!("sha512:{}", "0".repeat(128));
        for good in [digest.as_str(), sha512.as_str(), "multihash+base58:QmRZ=_-"] {
            assert!(is_digest(good), "{good}");
        }
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "../../decoy",
            "sha256:..",
            "sha256:../x",
            "..:abc",
            "sha256:a/b",
            "sha256:a:b",
            "SHA256:abc",
            "sha512:AbC=_-",
            "sha256:abc",
        ] {
            assert!(!is_digest(bad), "{bad}");
        }
        // A registry's made-up digest finds nothing, even where a component lies.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("decoy")).unwrap();
        std::fs::write(dir.path().join("decoy/decoy.wasm"), b"\0asm").unwrap();
        let cache = Cache::new(dir.path().join("cache/oci"));
        assert_eq!(cache.component("../../decoy"), None);
        assert!(matches!(
            cache.store("../../decoy", "x.wasm", b"\0asm", &Files::default()),
            Err(RegistryError::BadDigest { .. })
        ));
    }
}

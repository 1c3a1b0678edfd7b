//! From bytes to a checked, compiled component:
//! read → sha256 digest → trust check → compile (or load from the compile cache) → world and
//! import check. Bytes that fail the trust check never reach the compiler.

pub mod cache;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;

use baton_core::Digest;
use baton_core::text::one_line;
use baton_policy::requests::{self, Requests};
use baton_trust::check::{Provenance, Sidecars, TrustCheck, TrustError};
use cache::CompileCache;
use world::{Shape, WorldError};

/// Why a component could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a WebAssembly file ({found}); pass a component built for wasm32-wasip2",
        path.display()
    )]
    NotWasm { path: PathBuf, found: String },
    #[error(
        "{} is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)",
        path.display()
    )]
    CoreModule { path: PathBuf },
    #[error("{} is not a valid component: {reason}; the file may be truncated or corrupt, rebuild it", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{} ({digest}) is not trusted: {source}", path.display())]
    Untrusted {
        path: PathBuf,
        digest: Digest,
        source: TrustError,
    },
    #[error("{} cannot be used as a Baton plugin: {source}", path.display())]
    World { path: PathBuf, source: WorldError },
    #[error("{} cannot be used as a Baton plugin: {reason}; rebuild it with `baton build`", path.display())]
    Requests { path: PathBuf, reason: String },
}

/// A component that passed every check, ready to be linked.
#[derive(Clone)]
pub struct Loaded {
    pub source: PathBuf,
    /// The exact bytes, for bundles.
    pub bytes: Arc<[u8]>,
    pub digest: Digest,
    pub size: usize,
    pub provenance: Provenance,
    pub shape: Shape,
    /// What it says it needs (its signed `baton:requests` section; empty without one).
    pub requests: Requests,
    pub component: Component,
}

pub struct Loader {
    cache: CompileCache,
}

/// The component's `baton:requests` section, read from its top level: nested modules and
/// components are stepped over unread, so this costs little even for a large component.
fn requests(bytes: &[u8]) -> Result<Requests, String> {
    use wasmparser::{Chunk, Parser, Payload};
    let unparsable = |e: wasmparser::BinaryReaderError| format!("it cannot be parsed: {e}");
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true).map_err(unparsable)?
        else {
            unreachable!("all of the bytes are given at once");
        };
        rest = &rest[consumed..];
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The parent parser goes on after the nested bytes, which are not fed to it.
                rest = rest
                    .get(unchecked_range.len()..)
                    .ok_or("it cannot be parsed: a nested section runs past its end")?;
            }
            Payload::CustomSection(section) if section.name() == requests::SECTION => {
                return Requests::parse(section.data());
            }
            Payload::End(_) => return Ok(Requests::default()),
            _ => {}
        }
    }
}

/// The 8-byte preamble of a component (magic, version 0x0d, layer 1).
const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\0\x01\0";
/// The 8-byte preamble of a core module (magic, version 1, layer 0).
const CORE_MODULE_PREAMBLE: [u8; 8] = *b"\0asm\x01\0\0\0";

impl Loader {
    pub fn new(cache: CompileCache) -> Self {
        Self { cache }
    }

    /// Reads, checks and compiles the component at `path`, with the signatures beside it.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
        trust: &dyn TrustCheck,
    ) -> Result<Loaded, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(engine, path, &bytes, &Sidecars::beside(path), trust)
    }

    /// Checks and compiles `bytes`; `source` names them in messages. `trust` decides, from
    /// `sidecars`, whether they may be compiled at all.
    pub fn load_bytes(
        &self,
        engine: &Engine,
        source: &Path,
        bytes: &[u8],
        sidecars: &Sidecars,
        trust: &dyn TrustCheck,
    ) -> Result<Loaded, LoadError> {
        let path = || source.to_owned();
        check_preamble(source, bytes)?;
        let digest = Digest::of(bytes);
        let provenance =
            trust
                .check(bytes, &digest, sidecars)
                .map_err(|e| LoadError::Untrusted {
                    path: path(),
                    digest,
                    source: e,
                })?;
        let component = self
            .cache
            .load_or_compile(engine, &digest, bytes)
            .map_err(|e| LoadError::Invalid {
                path: path(),
                reason: one_line(&format!("{e:#}")),
            })?;
        let shape = world::check(engine, &component).map_err(|e| LoadError::World {
            path: path(),
            source: e,
        })?;
        let requests = requests(bytes).map_err(|reason| LoadError::Requests {
            path: path(),
            reason,
        })?;
        Ok(Loaded {
            source: path(),
            bytes: bytes.into(),
            digest,
            size: bytes.len(),
            provenance,
            shape,
            requests,
            component,
        })
    }
}

fn check_preamble(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if !bytes.starts_with(b"\0asm") {
        let found = if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            let head = &bytes[..bytes.len().min(8)];
            format!(
                "it starts with {}",
                String::from_utf8_lossy(head).escape_debug()
            )
            .replace("\\0", "\\x00")
        };
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
            found,
        });
    }
    match bytes.get(..8) {
        Some(p) if p == COMPONENT_PREAMBLE => Ok(()),
        Some(p) if p == CORE_MODULE_PREAMBLE => Err(LoadError::CoreModule {
            path: path.to_owned(),
        }),
        Some(_) => Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: "unsupported WebAssembly version or layer".into(),
        }),
        None => Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: "the file ends inside the WebAssembly header".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_wasm_and_says_what_it_starts_with() {
        let err = check_preamble(Path::new("x.wasm"), b"hello world").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.wasm is not a WebAssembly file (it starts with hello wo); pass a component built \
             for wasm32-wasip2"
        );
        let err = check_preamble(Path::new("e.wasm"), b"").unwrap_err();
        assert!(err.to_string().contains("the file is empty"));
    }

    #[test]
    fn core_modules_and_short_headers_are_told_apart() {
        assert!(matches!(
            check_preamble(Path::new("m.wasm"), &CORE_MODULE_PREAMBLE),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(matches!(
            check_preamble(Path::new("t.wasm"), b"\0asm\x0d"),
            Err(LoadError::Invalid { .. })
        ));
        assert!(check_preamble(Path::new("c.wasm"), &COMPONENT_PREAMBLE).is_ok());
    }
}

//! Component bytes up to the trust check and the world and import checks: bytes signed by a
//! trusted key are compiled and checked or refused with one line, never a panic; the same bytes
//! unsigned, or with their signature over other bytes, are never compiled at all.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_runtime::loader::cache::CompileCache;
use baton_runtime::loader::{LoadError, Loader};
use baton_runtime::trust::{PolicyTrust, Sidecars};
use baton_trust::policy::{TrustPolicy, TrustedKey};
use baton_trust::signing::{SigningKey, generate};
use libfuzzer_sys::fuzz_target;
use wasmtime::Engine;

struct Fixture {
    engine: Engine,
    loader: Loader,
    trust: PolicyTrust,
    key: SigningKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (private, public) = generate(b"fuzz").expect("a key pair");
        let policy = TrustPolicy {
            require_signatures: true,
            keys: vec![TrustedKey {
                name: "fuzz".into(),
                path: PathBuf::from("fuzz.pub"),
                pem: public,
                policy: "fuzz.toml".into(),
            }],
            ..TrustPolicy::default()
        };
        Fixture {
            engine: baton_sandbox::engine::build_engine().expect("an engine"),
            loader: Loader::new(CompileCache::disabled()),
            trust: PolicyTrust::new(&policy).expect("the key is trusted"),
            key: SigningKey::open(&private, "fuzz.key", b"fuzz").expect("it opens"),
        }
    })
}

fn load(bytes: &[u8], sig: Option<String>) -> Result<(), LoadError> {
    let f = fixture();
    let path = Path::new("fuzz.wasm");
    let sidecars = Sidecars {
        sig,
        base: path.to_owned(),
        ..Sidecars::default()
    };
    f.loader
        .load_bytes(&f.engine, path, bytes, &sidecars, &f.trust)
        .map(|loaded| assert_eq!(loaded.size, bytes.len()))
}

/// A component's header (magic, version 0x0d, layer 1).
const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\0\x01\0";

/// Whether `e` was decided before compiling: by the header or by the trust check.
fn before_compiling(e: &LoadError) -> bool {
    matches!(
        e,
        LoadError::NotWasm { .. }
            | LoadError::CoreModule { .. }
            | LoadError::Invalid { .. }
            | LoadError::Untrusted { .. }
    )
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let signature = f.key.sign(bytes).expect("it signs");
    match load(bytes, Some(STANDARD.encode(&signature))) {
        Ok(()) => {}
        Err(e @ LoadError::Untrusted { .. }) => panic!("signed by a trusted key, yet: {e}"),
        Err(e) => assert!(!e.to_string().contains('\n'), "an error of many lines: {e}"),
    }
    // Unsigned, or signed over other bytes: refused before compiling, by the trust check
    // once the header is a component's.
    let mut other = bytes.to_vec();
    other.push(0);
    let forged = STANDARD.encode(f.key.sign(&other).expect("it signs"));
    for sig in [None, Some(forged)] {
        let e = load(bytes, sig).expect_err("a component no trusted key signed loaded");
        match bytes.starts_with(COMPONENT_PREAMBLE) {
            true => assert!(matches!(e, LoadError::Untrusted { .. }), "{e}"),
            false => assert!(before_compiling(&e), "{e}"),
        }
    }
});

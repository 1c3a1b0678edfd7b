//! A registry that answers with bytes from the fuzzer: `baton pull`'s path (`Registry::pull`)
//! against a loopback server whose manifests, blobs, signature artifact and digest header are
//! the input. Never a panic or a hang; a pull that succeeds wrote its component inside the
//! cache, under the digest of the manifest served, with the bytes that manifest's layer pins;
//! pulling it again by that digest is answered from the cache. Beside the cache lies a decoy
//! component, where a digest the registry made up (`../../decoy`) might lead.
//!
//! Input: parts separated by `\n=====\n`: a first byte of flags (bit 0: the server answers
//! every blob request with the first blob, whatever digest was asked for; bit 1: every
//! request for a manifest by digest with the manifest, whatever digest), the digest header
//! the server sends for the tag (empty: the true digest), the manifest, the signature
//! artifact's manifest (empty: none), then blobs, each served under its own digest.

#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use baton_core::Digest;
use baton_registry::Registry;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

const SEPARATOR: &[u8] = b"\n=====\n";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Longer than any pull from a loopback server takes.
const HANG: Duration = Duration::from_secs(20);

/// What the server answers this input with.
#[derive(Default)]
struct Served {
    every_blob_is_the_first: bool,
    every_digest_is_the_manifest: bool,
    tag_digest: Option<Vec<u8>>,
    manifest: Vec<u8>,
    signatures: Option<Vec<u8>>,
    blobs: HashMap<String, Vec<u8>>,
    first_blob: Option<Vec<u8>>,
}

type Shared = Arc<Mutex<Served>>;

struct Fixture {
    runtime: Runtime,
    served: Shared,
    address: SocketAddr,
    cache: PathBuf,
    registry: Registry,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let served = Shared::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let app = Router::new().fallback(answer).with_state(served.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        // A component outside the cache, where a digest the registry made up might lead.
        std::fs::create_dir(dir.path().join("decoy")).expect("a directory");
        std::fs::write(dir.path().join("decoy/decoy.wasm"), b"\0asm").expect("a file");
        let cache = dir.path().join("cache");
        let registry = Registry::new(&cache);
        Fixture {
            runtime,
            served,
            address,
            cache,
            registry,
            _dir: dir,
        }
    })
}

/// The registry's answer to one request.
async fn answer(State(served): State<Shared>, uri: Uri) -> Response {
    let served = served.lock().unwrap_or_else(|e| e.into_inner());
    let path = uri.path();
    if path == "/v2/" || path == "/v2" {
        return (StatusCode::OK, "{}").into_response();
    }
    if let Some((_, reference)) = path.rsplit_once("/manifests/") {
        let manifest = match reference {
            r if r.starts_with("sha256-") && r.ends_with(".sig") => served.signatures.as_ref(),
            "1" => Some(&served.manifest),
            r if r == Digest::of(&served.manifest).to_string()
                || (served.every_digest_is_the_manifest && r.starts_with("sha256:")) =>
            {
                Some(&served.manifest)
            }
            r => served
                .signatures
                .as_ref()
                .filter(|s| r == Digest::of(s).to_string()),
        };
        let Some(manifest) = manifest else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let mut headers = HeaderMap::new();
        let media_type = serde_json::from_slice::<serde_json::Value>(manifest)
            .ok()
            .and_then(|m| m["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| MANIFEST_TYPE.into());
        if let Ok(value) = HeaderValue::from_str(&media_type) {
            headers.insert("content-type", value);
        }
        let digest = match (reference, &served.tag_digest) {
            ("1", Some(lie)) => HeaderValue::from_bytes(lie).ok(),
            _ => HeaderValue::from_str(&Digest::of(manifest).to_string()).ok(),
        };
        if let Some(digest) = digest {
            headers.insert("docker-content-digest", digest);
        }
        return (StatusCode::OK, headers, manifest.clone()).into_response();
    }
    if let Some((_, digest)) = path.rsplit_once("/blobs/") {
        let blob = match served.every_blob_is_the_first {
            true => served.first_blob.as_ref(),
            false => served.blobs.get(digest),
        };
        return match blob {
            Some(blob) => (StatusCode::OK, blob.clone()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    StatusCode::NOT_FOUND.into_response()
}

/// The input's parts, or nothing when it has too few.
fn served(data: &[u8]) -> Option<Served> {
    let mut parts = split(data);
    let flags = parts.next()?.first().copied().unwrap_or(0);
    let tag_digest = Some(parts.next()?.to_vec()).filter(|d| !d.is_empty());
    let manifest = parts.next()?.to_vec();
    let signatures = Some(parts.next()?.to_vec()).filter(|s| !s.is_empty());
    let blobs: Vec<Vec<u8>> = parts.map(<[u8]>::to_vec).collect();
    Some(Served {
        every_blob_is_the_first: flags & 1 == 1,
        every_digest_is_the_manifest: flags & 2 == 2,
        tag_digest,
        manifest,
        signatures,
        first_blob: blobs.first().cloned(),
        blobs: blobs
            .into_iter()
            .map(|b| (Digest::of(&b).to_string(), b))
            .collect(),
    })
}

fn split(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                let part = &data[..at];
                data = &data[at + SEPARATOR.len()..];
                Some(part)
            }
            None => Some(std::mem::take(&mut data)),
        }
    })
}

/// The digest the manifest's one layer pins, if it has one layer.
fn layer_digest(manifest: &[u8]) -> Option<String> {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let layers = manifest["layers"].as_array()?;
    match layers.as_slice() {
        [layer] => layer["digest"].as_str().map(str::to_owned),
        _ => None,
    }
}

fn inside(path: &Path, dir: &Path) -> bool {
    let (Ok(path), Ok(dir)) = (path.canonicalize(), dir.canonicalize()) else {
        return false;
    };
    path.starts_with(dir)
}

fuzz_target!(|data: &[u8]| {
    let Some(served) = self::served(data) else {
        return;
    };
    let f = fixture();
    let manifest_digest = Digest::of(&served.manifest).to_string();
    let pinned_layer = layer_digest(&served.manifest);
    *f.served.lock().unwrap() = served;
    let tag = format!("oci://{}/fuzz/tool:1", f.address);
    let pulled = f
        .runtime
        .block_on(async { tokio::time::timeout(HANG, f.registry.pull(&tag)).await })
        .expect("a pull from a loopback registry ends");
    let Ok(pulled) = pulled else {
        return;
    };
    assert!(
        inside(&pulled.path, &f.cache),
        "{} is outside the cache",
        pulled.path.display()
    );
    assert_eq!(pulled.manifest, manifest_digest, "not the manifest served");
    let bytes = std::fs::read(&pulled.path).expect("the pulled component reads");
    assert_eq!(
        Some(Digest::of(&bytes).to_string()),
        pinned_layer,
        "not the bytes the manifest's layer pins"
    );
    let again = f
        .runtime
        .block_on(f.registry.pull(&format!(
            "oci://{}/fuzz/tool@{}",
            f.address, pulled.manifest
        )))
        .expect("a pull by digest of what was pulled");
    assert!(again.cached && again.path == pulled.path);
});

//! Components in OCI registries, as WebAssembly OCI artifacts (a config of type
//! `application/vnd.wasm.config.v0+json` and one `application/wasm` layer), through the
//! `oci-client` and `oci-wasm` crates.
//!
//! A component's signature and attestation travel beside it under cosign's tag convention: an
//! artifact tagged `sha256-<manifest digest>.sig` in the same repository, whose layers are the
//! files `baton sign` writes (`FILE.sig`, `FILE.intoto.json`, or a Sigstore bundle). A tag
//! works on every registry, the referrers API only on those that implement OCI 1.1.
//!
//! Pulling never decides trust: it writes the component and its signature files into a cache
//! keyed by the manifest's digest, and the host's loader verifies them there, as it does any
//! file, before compiling anything. A reference by digest is served from the cache without the
//! network; a tag is resolved by the registry when it answers, and by the digest it last
//! resolved to when it does not.

mod cache;
mod error;
mod reference;
mod resolve;
mod signatures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_wasm::{WasmClient, WasmConfig};

pub use error::RegistryError;
pub use reference::OciReference;

use cache::Cache;

/// A registry client with its local cache.
pub struct Registry {
    cache: Cache,
    auth: RegistryAuth,
    /// One client per registry, kept: making one builds a TLS configuration, which costs
    /// more than a request to a registry nearby.
    clients: Mutex<BTreeMap<String, Client>>,
    /// The client a tag's digest is asked for with (`resolve`), made at the first tag.
    resolver: tokio::sync::OnceCell<reqwest::Client>,
}

/// A component pulled (or found in the cache).
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component, with its signature files beside it.
    pub path: PathBuf,
    /// The manifest's digest (`sha256:…`): `oci://REPO@DIGEST` names exactly this component.
    pub manifest: String,
    /// Whether it came from the cache, without asking the registry for its bytes.
    pub cached: bool,
}

/// What a push left in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `oci://HOST/REPO@sha256:…`: the pushed component, whatever its tag later names.
    pub pinned: String,
    /// Whether a signature went with it.
    pub signed: bool,
}

/// The environment variables a registry's basic credentials come from (anonymous without).
pub const USERNAME_VAR: &str = "BATON_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "BATON_REGISTRY_PASSWORD";

impl Registry {
    /// A client whose pulls are cached under `cache_dir/oci`.
    pub fn new(cache_dir: &Path) -> Self {
        let auth = match (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR)) {
            (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
            _ => RegistryAuth::Anonymous,
        };
        Self {
            cache: Cache::new(cache_dir.join("oci")),
            auth,
            clients: Mutex::default(),
            resolver: tokio::sync::OnceCell::new(),
        }
    }

    /// The client for `reference`'s registry.
    fn client(&self, reference: &OciReference) -> Client {
        let registry = reference.inner.registry();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(registry.to_string())
            .or_insert_with(|| client_for(registry))
            .clone()
    }

    /// Pushes the component `file` to `reference` (a tag), with the signature files beside it.
    pub async fn push(&self, file: &Path, reference: &str) -> Result<Pushed, RegistryError> {
        let target = OciReference::parse(reference)?;
        if target.inner.digest().is_some() || target.versions.is_some() {
            return Err(RegistryError::BadReference {
                reference: reference.into(),
                reason: "a push names a tag (oci://HOST/REPO:TAG), not a digest".into(),
            });
        }
        let bytes = std::fs::read(file).map_err(|source| RegistryError::Read {
            path: file.to_owned(),
            source,
        })?;
        let (config, layer) = WasmConfig::from_raw_component(bytes, None).map_err(|e| {
            RegistryError::NotAComponent {
                path: file.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let client = self.client(&target);
        let failed = |e: &dyn std::error::Error| target.failed("push", e);
        WasmClient::new(client.clone())
            .push(&target.inner, &self.auth, layer, config, None)
            .await
            .map_err(|e| failed(e.as_ref()))?;
        let digest = client
            .fetch_manifest_digest(&target.inner, &self.auth)
            .await
            .map_err(|e| failed(&e))?;
        let signatures = signatures::Files::beside(file);
        let signed = !signatures.is_empty();
        if signed {
            signatures
                .push(&client, &self.auth, &target.signatures_of(&digest))
                .await
                .map_err(|e| failed(&e))?;
        }
        Ok(Pushed {
            pinned: target.pinned(&digest),
            signed,
        })
    }

    /// The versions of `reference`'s repository that match its requirement, newest first, as
    /// references to their tags (tags that are not semver versions are not versions).
    pub async fn versions(&self, reference: &OciReference) -> Result<Vec<String>, RegistryError> {
        let Some(requirement) = &reference.versions else {
            return Ok(Vec::new());
        };
        let listed = self
            .client(reference)
            .list_tags(&reference.inner, &self.auth, None, None)
            .await
            .map_err(|e| reference.failed("list the tags of", &e))?;
        let mut versions: Vec<(semver::Version, String)> = listed
            .tags
            .into_iter()
            .filter_map(|tag| Some((semver::Version::parse(&tag).ok()?, tag)))
            .filter(|(version, _)| requirement.matches(version))
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(versions
            .into_iter()
            .map(|(_, tag)| reference.at_tag(&tag))
            .collect())
    }

    /// Pulls the component `reference` names into the cache (unless it is there) and returns
    /// where it is. Nothing is verified here: the loader does that before compiling it.
    pub async fn pull(&self, reference: &str) -> Result<Pulled, RegistryError> {
        let source = OciReference::parse(reference)?;
        if source.versions.is_some() {
            return Err(RegistryError::BadReference {
                reference: reference.into(),
                reason: "it names versions, not one component: the host chooses among them".into(),
            });
        }
        if let Some(digest) = source.inner.digest()
            && let Some(path) = self.cache.component(digest)
        {
            return Ok(Pulled {
                path,
                manifest: digest.to_string(),
                cached: true,
            });
        }
        let digest = match source.inner.digest() {
            Some(digest) => digest.to_string(),
            None => match self.resolve(&source).await {
                Ok(digest) if !cache::is_digest(&digest) => {
                    return Err(RegistryError::BadDigest {
                        reference: reference.into(),
                        digest,
                    });
                }
                Ok(digest) => {
                    self.cache.remember_tag(&source.key(), &digest);
                    digest
                }
                // A registry that does not answer: the tag's last known digest, if cached.
                Err(e) if error::unreachable(&e) => {
                    let Some((digest, path)) = self.cache.tag(&source.key()) else {
                        return Err(source.failed("pull", &e));
                    };
                    tracing::warn!(
                        "{} did not answer ({}); using {digest}, which the tag named when last \
                         pulled",
                        source.inner.registry(),
                        baton_core::text::one_line(&e.to_string())
                    );
                    return Ok(Pulled {
                        path,
                        manifest: digest,
                        cached: true,
                    });
                }
                Err(e) => return Err(source.failed("pull", &e)),
            },
        };
        if let Some(path) = self.cache.component(&digest) {
            return Ok(Pulled {
                path,
                manifest: digest,
                cached: true,
            });
        }
        let client = self.client(&source);
        let pinned = source.with_digest(&digest);
        let image = WasmClient::new(client.clone())
            .pull(&pinned, &self.auth)
            .await
            .map_err(|e| source.failed("pull", e.as_ref()))?;
        let component = image
            .layers
            .into_iter()
            .next()
            .expect("oci-wasm checks there is exactly one layer")
            .data;
        let signatures =
            signatures::Files::pull(&client, &self.auth, &source.signatures_of(&digest))
                .await
                .map_err(|e| source.failed("pull the signature of", &e))?;
        let path = self
            .cache
            .store(&digest, &source.file_name(), &component, &signatures)?;
        Ok(Pulled {
            path,
            manifest: digest,
            cached: false,
        })
    }

    /// The digest the tag `source` names now, in one request when the registry answers it
    /// without credentials.
    async fn resolve(&self, source: &OciReference) -> Result<String, OciDistributionError> {
        let http = self
            .resolver
            .get_or_try_init(|| async { resolve::client() });
        if let Some(digest) = resolve::head(http.await?, &source.inner).await? {
            return Ok(digest);
        }
        self.client(source)
            .fetch_manifest_digest(&source.inner, &self.auth)
            .await
    }
}

/// A client speaking plain HTTP to `registry` when it is on this machine (as a development
/// registry is), and HTTPS to every other.
fn client_for(registry: &str) -> Client {
    let protocol = match reference::is_loopback(registry) {
        true => ClientProtocol::HttpsExcept(vec![registry.to_string()]),
        false => ClientProtocol::Https,
    };
    Client::new(ClientConfig {
        protocol,
        // A registry that accepts a connection and then says nothing is not waited for
        // forever: it counts as not answering.
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    })
}

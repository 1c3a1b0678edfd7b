//! A component's signature files, carried as the layers of an artifact tagged
//! `sha256-<manifest digest>.sig` beside it.

use std::path::Path;

use baton_trust::check::with_suffix;
use oci_client::client::{Config, ImageLayer};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// The artifact's type, and its layers' media types by the file suffix each is kept under.
const ARTIFACT_TYPE: &str = "application/vnd.baton.signatures.v1";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
const LAYERS: [(&str, &str); 3] = [
    // `baton sign`'s and cosign sign-blob's: base64 DER ECDSA over the component's bytes.
    (".sig", "application/vnd.baton.signature.v1+base64"),
    (
        ".sigstore.json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    ),
    (".intoto.json", "application/vnd.dsse.envelope.v1+json"),
];

/// The files, by suffix, with their bytes.
#[derive(Debug, Default)]
pub struct Files(pub Vec<(&'static str, Vec<u8>)>);

impl Files {
    /// Those of `FILE.sig`, `FILE.sigstore.json` and `FILE.intoto.json` that exist.
    pub fn beside(file: &Path) -> Self {
        Self(
            LAYERS
                .iter()
                .filter_map(|(suffix, _)| {
                    std::fs::read(with_suffix(file, suffix))
                        .ok()
                        .map(|bytes| (*suffix, bytes))
                })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pushes them as the artifact `reference`.
    pub async fn push(
        &self,
        client: &Client,
        auth: &RegistryAuth,
        reference: &Reference,
    ) -> Result<(), OciDistributionError> {
        let layers: Vec<ImageLayer> = self
            .0
            .iter()
            .map(|(suffix, bytes)| {
                let media_type = LAYERS.iter().find(|(s, _)| s == suffix).expect("known").1;
                ImageLayer::new(bytes.clone(), media_type.into(), None)
            })
            .collect();
        let config = Config::new(b"{}".to_vec(), EMPTY_CONFIG.into(), None);
        let mut manifest = OciImageManifest::build(&layers, &config, None);
        manifest.artifact_type = Some(ARTIFACT_TYPE.into());
        client
            .push(reference, &layers, config, auth, Some(manifest))
            .await
            .map(|_| ())
    }

    /// The artifact `reference`, or no files when the registry has none (an unsigned
    /// component, which the loader then refuses).
    pub async fn pull(
        client: &Client,
        auth: &RegistryAuth,
        reference: &Reference,
    ) -> Result<Self, OciDistributionError> {
        let media_types = LAYERS.iter().map(|(_, m)| *m).collect();
        let image = match client.pull(reference, auth, media_types).await {
            Ok(image) => image,
            Err(e) if crate::error::not_found(&e) => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        Ok(Self(
            image
                .layers
                .into_iter()
                .filter_map(|layer| {
                    let (suffix, _) = LAYERS.iter().find(|(_, m)| *m == layer.media_type)?;
                    Some((*suffix, layer.data.to_vec()))
                })
                .collect(),
        ))
    }
}

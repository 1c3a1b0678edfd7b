//! A tag resolved to its manifest's digest in one request.
//!
//! A tag is resolved on every load, so that a moved tag is noticed at once. Through oci-client
//! that costs two round trips: it asks the registry's `/v2/` how to authenticate before every
//! request for which it holds no token, and anonymous access never gives it one. So the
//! manifest's `HEAD` goes first on its own, without credentials, as container runtimes resolve
//! tags; every answer but a digest (a challenge for credentials, a redirect, an error) is left
//! to oci-client, which authenticates and reports errors as it does for every other request.

use std::time::Duration;

use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::header::ACCEPT;

use crate::reference::is_loopback;

/// The manifests a tag may name, as oci-client accepts them.
const MANIFESTS: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// How long a registry may take to answer which digest a tag names before it counts as not
/// answering (and the digest the tag last named stands in).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The client the `HEAD` goes through, one for every registry.
pub(crate) fn client() -> Result<reqwest::Client, OciDistributionError> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        // A redirect is oci-client's to follow, with its checks.
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The digest `tag` names, if the registry gives it to an anonymous `HEAD`; `None` when
/// oci-client must ask. A registry that cannot be reached is an error, not asked twice.
pub(crate) async fn head(
    http: &reqwest::Client,
    tag: &Reference,
) -> Result<Option<String>, OciDistributionError> {
    let (Some(name), None) = (tag.tag(), tag.namespace()) else {
        return Ok(None);
    };
    let registry = tag.resolve_registry();
    // The same choice as the oci-client clients make: plain HTTP on this machine only.
    let scheme = if is_loopback(registry) {
        "http"
    } else {
        "https"
    };
    let url = format!(
        "{scheme}://{registry}/v2/{}/manifests/{name}",
        tag.repository()
    );
    let request = http.head(url).header(ACCEPT, MANIFESTS.join(", "));
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() || e.is_timeout() => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    if response.status() != reqwest::StatusCode::OK {
        return Ok(None);
    }
    Ok(response
        .headers()
        .get("docker-content-digest")
        .and_then(|digest| digest.to_str().ok())
        .map(str::to_owned))
}

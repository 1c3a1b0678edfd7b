//! Where a component comes from: a file, or a reference into an OCI registry
//! (`oci://HOST/REPO:TAG` or `oci://HOST/REPO@sha256:…`), which the registry layer pulls into a
//! local cache before the component is loaded like any file.

use std::path::Path;

/// The scheme that marks a component reference as an OCI registry's.
pub const OCI_SCHEME: &str = "oci://";

/// Whether `path`, as given, is an OCI reference rather than a file.
pub fn is_oci(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with(OCI_SCHEME))
}

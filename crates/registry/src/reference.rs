//! `oci://HOST[:PORT]/REPO[:TAG|@sha256:…]`.

use std::net::IpAddr;

use baton_core::source::OCI_SCHEME;
use oci_client::Reference;
use semver::VersionReq;

use crate::RegistryError;

/// A parsed `oci://` reference. In place of a tag it may name a semver requirement
/// (`oci://HOST/REPO:^1.2`): the versions, among the repository's tags, it may be.
#[derive(Debug, Clone)]
pub struct OciReference {
    pub(crate) inner: Reference,
    pub versions: Option<VersionReq>,
}

/// Characters a semver requirement may have and an OCI tag may not.
const REQUIREMENT: &[char] = &['^', '~', '<', '>', '=', '*', ',', ' '];

impl OciReference {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::BadReference {
            reference: text.into(),
            reason,
        };
        let rest = text
            .strip_prefix(OCI_SCHEME)
            .ok_or_else(|| bad(format!("it does not start with {OCI_SCHEME}")))?;
        // Without a host, the client would assume a public registry.
        if !rest
            .split('/')
            .next()
            .is_some_and(|host| host.contains(['.', ':']) || host == "localhost")
            || !rest.contains('/')
        {
            return Err(bad(
                "it names no registry host: write oci://HOST[:PORT]/REPO:TAG".into(),
            ));
        }
        // `REPO:^1.2`: the part after the repository's last colon is a requirement.
        let (rest, versions) = match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') && tag.contains(REQUIREMENT) => {
                let versions = VersionReq::parse(tag).map_err(|e| {
                    bad(format!(
                        "'{tag}' is neither a tag nor a semver requirement ({e})"
                    ))
                })?;
                (repository, Some(versions))
            }
            _ => (rest, None),
        };
        let inner: Reference = rest
            .parse()
            .map_err(|e: oci_client::ParseError| bad(e.to_string()))?;
        Ok(Self { inner, versions })
    }

    /// The same repository at `tag`, as text.
    pub fn at_tag(&self, tag: &str) -> String {
        format!(
            "{OCI_SCHEME}{}/{}:{tag}",
            self.inner.registry(),
            self.inner.repository()
        )
    }

    /// The same repository at `digest`.
    pub(crate) fn with_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.inner.registry().into(),
            self.inner.repository().into(),
            digest.into(),
        )
    }

    /// The tag the signatures of the manifest `digest` are kept under (cosign's convention).
    pub(crate) fn signatures_of(&self, digest: &str) -> Reference {
        Reference::with_tag(
            self.inner.registry().into(),
            self.inner.repository().into(),
            format!("{}.sig", digest.replace(':', "-")),
        )
    }

    /// `oci://HOST/REPO@DIGEST`.
    pub fn pinned(&self, digest: &str) -> String {
        format!(
            "{OCI_SCHEME}{}/{}@{digest}",
            self.inner.registry(),
            self.inner.repository()
        )
    }

    /// What the cache remembers a tag under: `HOST/REPO:TAG`.
    pub(crate) fn key(&self) -> String {
        self.inner.whole()
    }

    /// The file name a pulled component is cached under: the repository's last part.
    pub(crate) fn file_name(&self) -> String {
        let last = self
            .inner
            .repository()
            .rsplit('/')
            .next()
            .unwrap_or("component");
        format!("{last}.wasm")
    }

    /// An error of `what` (push, pull) against this reference's registry.
    pub(crate) fn failed(&self, what: &str, error: &dyn std::error::Error) -> RegistryError {
        RegistryError::Failed {
            what: what.into(),
            reference: format!("{OCI_SCHEME}{}", self.inner.whole()),
            // With its causes: a request error alone does not say why the request failed.
            reason: baton_core::text::causes(error),
        }
    }
}

/// Whether `registry` (`HOST[:PORT]`) is this machine.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        // `[::1]:5000`, `127.0.0.1:5000`, `localhost:5000`
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_host_a_repository_and_a_tag_or_digest() {
        let tagged = OciReference::parse("oci://127.0.0.1:5000/tools/greet:1.0.0").unwrap();
        assert_eq!(tagged.inner.registry(), "127.0.0.1:5000");
        assert_eq!(tagged.inner.repository(), "tools/greet");
        assert_eq!(tagged.inner.tag(), Some("1.0.0"));
        assert_eq!(tagged.file_name(), "greet.wasm");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = OciReference::parse(&format!("oci://localhost:5000/greet@{digest}")).unwrap();
        assert_eq!(pinned.inner.digest(), Some(digest.as_str()));
        assert_eq!(
            pinned.signatures_of(&digest).tag(),
            Some(format!("sha256-{}.sig", "a".repeat(64)).as_str())
        );
        for bad in [
            "127.0.0.1:5000/greet:1",
            "oci://greet:1",
            "oci://",
            "oci://host.example/Greet",
        ] {
            assert!(OciReference::parse(bad).is_err(), "{bad}");
        }
        // What a workflow gave is quoted on one line, its controls escaped.
        for bad in [
            "oci://localhost:5000/greet:^1\n2",
            "oci://localhost:5000/gr\neet",
        ] {
            let error = OciReference::parse(bad).unwrap_err().to_string();
            assert!(!error.contains('\n'), "{error}");
            assert!(error.contains(&bad.replace('\n', r"\n")), "{error}");
        }
    }

    #[test]
    fn only_this_machine_is_spoken_to_in_plain_http() {
        for local in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["registry.example:5000", "10.0.0.1:5000", "example.com"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}

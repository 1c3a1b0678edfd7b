//! `[plugins.<name>.fs]`: host directories preopened for a plugin, read-only or writable,
//! each at its guest path.

use std::path::PathBuf;

use serde::Deserialize;

/// `[plugins.<name>.fs]`: host directories preopened for the plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFsSpec")]
pub(crate) struct FsSpec {
    read: Vec<MountSpec>,
    write: Vec<MountSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFsSpec {
    #[serde(default)]
    read: Vec<MountSpec>,
    #[serde(default)]
    write: Vec<MountSpec>,
}

impl TryFrom<RawFsSpec> for FsSpec {
    type Error = String;

    fn try_from(raw: RawFsSpec) -> Result<Self, String> {
        let mut seen = std::collections::BTreeSet::new();
        for mount in raw.read.iter().chain(&raw.write) {
            if !seen.insert(mount.guest.as_str()) {
                return Err(format!(
                    "guest path {} is mounted twice; give each directory its own guest path \
                     (HOST:/GUEST)",
                    mount.guest
                ));
            }
        }
        Ok(FsSpec {
            read: raw.read,
            write: raw.write,
        })
    }
}

/// One preopen: `"HOST"` or `"HOST:/GUEST"`. Without a guest path the directory appears at
/// `/<its last component>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountSpec {
    host: PathBuf,
    guest: String,
}

impl<'de> Deserialize<'de> for MountSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MountSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl MountSpec {
    fn parse(text: &str) -> Result<Self, String> {
        // Split at the last ':' followed by '/', so that `C:\data` stays a host path.
        let (host, guest) = match text.rfind(":/") {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        if host.is_empty() {
            return Err(format!("'{text}' names no host directory"));
        }
        let host = PathBuf::from(host);
        let guest = match guest {
            Some(guest) => guest.trim_end_matches('/').to_string(),
            None => {
                let last = host
                    .components()
                    .next_back()
                    .and_then(|c| match c {
                        std::path::Component::Normal(name) => name.to_str(),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        format!("'{text}' has no name to mount it at; write it as '{text}:/GUEST'")
                    })?;
                format!("/{last}")
            }
        };
        let plain = guest.len() > 1
            && guest.starts_with('/')
            && guest[1..]
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !plain {
            return Err(format!(
                "'{text}': the guest path must be absolute, not '/', without '.' or '..' parts"
            ));
        }
        Ok(MountSpec { host, guest })
    }
}

/// A host directory preopened for a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsMount {
    /// The host directory, relative paths resolved against the policy file's directory.
    pub host: PathBuf,
    /// Where the guest sees it (absolute).
    pub guest: String,
    pub writable: bool,
    /// The file that granted it.
    pub source: String,
}

impl FsSpec {
    /// The directories this section, written in `file`, grants: relative host paths are
    /// relative to the file's directory.
    pub(crate) fn mounts(&self, file: &str) -> Vec<FsMount> {
        let mount = |m: &MountSpec, writable| FsMount {
            host: crate::file::relative_to(file, &m.host),
            guest: m.guest.clone(),
            writable,
            source: file.to_string(),
        };
        (self.read.iter().map(|m| mount(m, false)))
            .chain(self.write.iter().map(|m| mount(m, true)))
            .collect()
    }
}

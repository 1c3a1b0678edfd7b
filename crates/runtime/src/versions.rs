//! Choosing among versions of a tool: of each name found, the newest that matches what the
//! workflow asks for (`greet@^1.2`) and that its policy grants everything it requests. A newer
//! version asking for more than it is granted is held, and the one before it runs instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_core::source::is_oci;
use baton_core::text::{escape_controls, quote};
use semver::{Version, VersionReq};

use crate::error::Error;
use crate::host::Host;
use crate::plugin::{Plugin, wasm_files};

/// A tool name and the versions it may be: `NAME@REQUIREMENT`, e.g. `greet@^1.2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub name: String,
    pub versions: VersionReq,
}

impl Requirement {
    /// `text` as a requirement, if it is written as one (`NAME@...`, not a path or a
    /// reference); `Some(Err)` when it is, but the version part is not a semver requirement.
    pub fn parse(text: &str) -> Option<Result<Self, String>> {
        let (name, versions) = text.split_once('@')?;
        let is_name = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !is_name || is_oci(Path::new(text)) || text.contains('/') {
            return None;
        }
        Some(
            VersionReq::parse(versions)
                .map(|versions| Requirement {
                    name: name.into(),
                    versions,
                })
                .map_err(|e| {
                    format!(
                        "'{}' names no versions: '{}' is not a semver requirement ({}), e.g. greet@^1.2",
                        quote(text, 200),
                        quote(versions, 100),
                        escape_controls(&e.to_string())
                    )
                }),
        )
    }
}

/// Which version of a tool was chosen, and which newer ones were held.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// The requirement it was chosen for, if any.
    pub requirement: Option<String>,
    /// Newer matching versions not run, each with what it requests beyond its grant.
    pub held: Vec<(String, String)>,
    /// Every version of that name found, newest first (more than one: a choice was made).
    pub found: Vec<String>,
}

impl Host {
    /// Loads the tool components in `paths` (directories, files or `oci://` references) and
    /// makes one version of each name callable: the newest that matches its entry in
    /// `requirements` (if any) and is not held. Fails when a requirement matches nothing, or
    /// only held versions.
    pub async fn add_tools_choosing(
        &mut self,
        paths: &[PathBuf],
        requirements: &[Requirement],
    ) -> Result<Vec<Chosen>, Error> {
        let mut found: BTreeMap<String, Vec<Plugin>> = BTreeMap::new();
        for path in paths {
            let files = match path.is_dir() {
                true => wasm_files(path)?,
                false => vec![path.clone()],
            };
            for file in files {
                // A registry's versions (`oci://HOST/REPO:^1.2`) are chosen among as they load.
                let plugin = match is_oci(&file) {
                    true => self.load(&file).await?,
                    false => self.examine(&file).await?,
                };
                if plugin.is_tool() {
                    found
                        .entry(plugin.name().to_string())
                        .or_default()
                        .push(plugin);
                }
            }
        }
        let mut chosen = Vec::new();
        for requirement in requirements {
            if !found.contains_key(&requirement.name) {
                return Err(Error::NoVersion {
                    requirement: format!("{}@{}", requirement.name, requirement.versions),
                    found: "no tool of that name".into(),
                });
            }
        }
        for (name, mut versions) in found {
            // Newest first; a version that is not semver was refused at load.
            versions.sort_by_key(|p| std::cmp::Reverse(version(p)));
            let requirement = requirements.iter().find(|r| r.name == name);
            let all: Vec<String> = versions
                .iter()
                .map(|p| p.info.version().to_string())
                .collect();
            let matching: Vec<Plugin> = versions
                .into_iter()
                .filter(|p| requirement.is_none_or(|r| r.versions.matches(&version(p))))
                .collect();
            let mut held = Vec::new();
            let mut pick = None;
            for plugin in matching {
                let unmet = self.unmet_requests(&plugin);
                if unmet.is_empty() {
                    pick = Some(plugin);
                    break;
                }
                held.push((plugin, baton_policy::requests::list(&unmet)));
            }
            let Some(plugin) = pick else {
                return Err(match (held.into_iter().next(), requirement) {
                    (Some((plugin, unmet)), _) => Error::Held {
                        path: plugin.loaded.source.clone(),
                        name,
                        version: plugin.info.version().to_string(),
                        unmet,
                    },
                    (None, requirement) => Error::NoVersion {
                        requirement: format!(
                            "{name}@{}",
                            requirement
                                .map(|r| r.versions.to_string())
                                .unwrap_or_default()
                        ),
                        found: format!("found {}", all.join(", ")),
                    },
                });
            };
            chosen.push(Chosen {
                name: name.clone(),
                version: plugin.info.version().to_string(),
                digest: plugin.loaded.digest.to_string(),
                requirement: requirement.map(|r| r.versions.to_string()),
                held: held
                    .into_iter()
                    .map(|(p, unmet)| (p.info.version().to_string(), unmet))
                    .collect(),
                found: all,
            });
            self.add_tool(plugin)?;
        }
        Ok(chosen)
    }
}

fn version(plugin: &Plugin) -> Version {
    Version::parse(plugin.info.version()).expect("checked at load")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_names_with_semver_ranges() {
        let r = Requirement::parse("greet@^1.2").unwrap().unwrap();
        assert_eq!(r.name, "greet");
        assert!(r.versions.matches(&Version::new(1, 4, 0)));
        assert!(!r.versions.matches(&Version::new(2, 0, 0)));
        assert!(Requirement::parse(">=1, <2").is_none());
        for not_one in [
            "tools",
            "tools/greet@1",
            "oci://host/greet@sha256:ab",
            "./x@1",
        ] {
            assert!(Requirement::parse(not_one).is_none(), "{not_one}");
        }
        let bad = Requirement::parse("greet@latest").unwrap().unwrap_err();
        assert!(
            bad.contains("'latest' is not a semver requirement"),
            "{bad}"
        );
        // What a workflow gave is quoted on one line (found by the workflows fuzz target).
        let bad = Requirement::parse("greet@^1te\nnet1 1.0")
            .unwrap()
            .unwrap_err();
        assert!(!bad.contains('\n'), "{bad}");
        assert!(
            bad.contains(r"'greet@^1te\nnet1 1.0' names no versions"),
            "{bad}"
        );
    }
}

//! Authoring components: `baton new` writes a project from a template, `baton build` runs
//! its language's toolchain. A project says what it is in `baton.toml`.

pub mod build;
pub mod new;

use std::path::Path;

use baton::policy::requests::Requests;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::Failure;

/// The world a component is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Tool,
    Prompt,
    Planner,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Prompt => "prompt",
            Kind::Planner => "planner",
        }
    }
}

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    Js,
}

impl Language {
    fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
        }
    }
}

/// `baton.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    component: Component,
    /// What the component needs, written into it (and so signed with it) by `baton build`.
    #[serde(default)]
    requests: Requests,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Component {
    name: String,
    kind: Kind,
    language: Language,
}

const MANIFEST: &str = "baton.toml";

impl Manifest {
    fn read(dir: &Path) -> Result<Manifest, Failure> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::Usage(match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "{} has no {MANIFEST}: `baton build` builds a project made by `baton new` \
                     (e.g. `baton new tool my-tool --lang rust`)",
                    dir.display()
                ),
                _ => format!("cannot read {}: {e}", path.display()),
            })
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| {
            Failure::Usage(format!(
                "{} is not a valid project manifest: {}; it needs [component] with name, kind \
                 (tool, prompt or planner) and language (rust, python or js), and may have \
                 [requests] (net, env, secrets, tools, llm)",
                path.display(),
                e.message()
            ))
        })?;
        check_name(&manifest.component.name)?;
        Ok(manifest)
    }
}

/// A component's name is its tool name in policies, its package name and its file name:
/// lowercase letters, digits and single dashes, starting with a letter.
fn check_name(name: &str) -> Result<(), Failure> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 64;
    match valid {
        true => Ok(()),
        false => Err(Failure::Usage(format!(
            "'{name}' is not a valid component name: use lowercase letters, digits and single \
             dashes, starting with a letter (e.g. 'word-count')"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_kebab_case() {
        for good in ["greet", "word-count", "v2-tool"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Greet",
            "2tool",
            "word_count",
            "word--count",
            "tool-",
            "a b",
            "ünï",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}

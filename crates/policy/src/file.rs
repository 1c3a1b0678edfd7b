//! A policy file as written: its sections, parsed with line and column in every error, and
//! how one file's section applies to a component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::PolicyError;
use crate::grants::{EnvSpec, FsSpec, LlmSpec, NetSpec, ToolBoundsSpec, ToolsSpec, VarName};
use crate::limits::LimitsSpec;
use crate::{flow, journal, llm, trust};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginSection {
    /// When set, the section applies only to the component with this digest.
    #[serde(default, deserialize_with = "digest")]
    pub(crate) digest: Option<String>,
    /// When set, the section applies only to a component signed by this signer (a trusted
    /// key's name, or a keyless subject).
    pub(crate) signer: Option<String>,
    #[serde(default)]
    pub(crate) limits: LimitsSpec,
    pub(crate) net: Option<NetSpec>,
    pub(crate) env: Option<EnvSpec>,
    /// Names of secrets injected into this plugin's environment.
    pub(crate) secrets: Option<Vec<VarName>>,
    pub(crate) fs: Option<FsSpec>,
    pub(crate) tools: Option<ToolsSpec>,
    pub(crate) llm: Option<LlmSpec>,
    /// What one step (a call of this plugin) may spend.
    pub(crate) budget: Option<llm::BudgetSpec>,
    /// `false`: never serve this plugin's calls from the cache of pure calls, nor keep
    /// their results in it.
    pub(crate) cache: Option<bool>,
    /// What its invocations may send, and what its output carries.
    pub(crate) flow: Option<flow::PluginFlowSpec>,
}

/// `[secrets]`: where secret values come from besides the host environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretsSpec {
    /// A TOML file of `NAME = "value"` lines, relative to the policy file.
    pub(crate) file: Option<PathBuf>,
}

fn digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    let hex = text.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(Some(text.to_ascii_lowercase()))
    } else {
        Err(serde::de::Error::custom(format!(
            "'{text}' is not a digest of the form sha256:<64 hex digits> (see `baton inspect`)"
        )))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyFile {
    #[serde(default)]
    pub(crate) limits: LimitsSpec,
    #[serde(default)]
    pub(crate) secrets: SecretsSpec,
    #[serde(default)]
    pub(crate) tools: ToolBoundsSpec,
    #[serde(default)]
    pub(crate) trust: trust::TrustSpec,
    #[serde(default)]
    pub(crate) journal: journal::JournalSpec,
    #[serde(default)]
    pub(crate) llm: llm::LlmSection,
    #[serde(default)]
    pub(crate) cache: llm::CacheSpec,
    /// What one run may spend.
    #[serde(default)]
    pub(crate) budget: llm::BudgetSpec,
    /// What the data of each source carries.
    #[serde(default)]
    pub(crate) labels: flow::LabelsSpec,
    /// What requests to each destination may carry.
    #[serde(default)]
    pub(crate) flow: flow::FlowSpec,
    #[serde(default)]
    pub(crate) plugins: BTreeMap<String, PluginSection>,
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// How messages name this file.
    pub(crate) name: String,
    /// The file as written, for bundles.
    pub(crate) text: String,
    pub(crate) file: PolicyFile,
    /// The secrets file named in `[secrets]`, resolved, and its values (never journaled).
    pub(crate) secrets_file: Option<PathBuf>,
    pub(crate) secrets: BTreeMap<String, String>,
}

/// The component a plugin section is resolved for: its digest and who signed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub digest: &'a str,
    /// The verified signer's name (`None` when unsigned).
    pub signer: Option<&'a str>,
}

impl<'a> From<&'a str> for Subject<'a> {
    /// An unsigned component with this digest.
    fn from(digest: &'a str) -> Self {
        Subject {
            digest,
            signer: None,
        }
    }
}

impl Layer {
    /// This file's section for `plugin`, unless it is pinned to another digest or bound to
    /// another signer than `subject`'s.
    pub(crate) fn section(&self, plugin: &str, subject: Subject) -> Option<&PluginSection> {
        let section = self.file.plugins.get(plugin)?;
        let digest_ok = section
            .digest
            .as_deref()
            .is_none_or(|d| d == subject.digest);
        let signer_ok = section.signer.is_none() || section.signer.as_deref() == subject.signer;
        (digest_ok && signer_ok).then_some(section)
    }
}

/// `path` as named in the policy file `file`: relative paths are relative to its directory.
pub(crate) fn relative_to(file: &str, path: &Path) -> PathBuf {
    Path::new(file)
        .parent()
        .unwrap_or(Path::new("."))
        .join(path)
}

/// Reads the secrets file a policy names, relative to the policy's directory.
pub(crate) fn load_secrets(
    name: &str,
    file: &PolicyFile,
) -> Result<(Option<PathBuf>, BTreeMap<String, String>), PolicyError> {
    let Some(relative) = &file.secrets.file else {
        return Ok((None, BTreeMap::new()));
    };
    let path = relative_to(name, relative);
    let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::ReadSecrets {
        path: path.clone(),
        policy: name.into(),
        source,
    })?;
    let values: BTreeMap<String, String> = toml::from_str(&text).map_err(|e| {
        // The message never quotes the file, which holds secrets.
        PolicyError::Parse {
            file: path.display().to_string(),
            line: e
                .span()
                .map_or(1, |s| baton_core::text::line_and_column(&text, s.start).0),
            column: 1,
            message: "a secrets file holds only NAME = \"value\" lines".into(),
        }
    })?;
    Ok((Some(path), values))
}

pub(crate) fn parse(name: &str, text: &str) -> Result<PolicyFile, PolicyError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| baton_core::text::line_and_column(text, span.start))
            .unwrap_or((1, 1));
        PolicyError::Parse {
            file: name.into(),
            line,
            column,
            message: e.message().trim().replace('\n', " "),
        }
    })
}

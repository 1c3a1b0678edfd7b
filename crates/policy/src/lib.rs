//! Policy files: the limits each plugin runs under (and, as Baton grows, what it may reach).
//!
//! A policy is a stack of layers: the built-in `policies/default.toml`, then the file given
//! with `--policy`. Within each layer `[plugins.<name>]` overrides `[limits]`; command-line
//! flags override everything. Every resolved value remembers where it came from, so an error
//! can say which file set the limit that was hit.

pub mod explain;
pub mod llm;
pub mod net;
pub mod trust;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use baton_budget::BudgetLimits;
use baton_core::limits::{LimitKind, Limits};
use net::NetPattern;

/// The built-in default policy, kept in the repository as `policies/default.toml`.
const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");
const DEFAULT_POLICY_NAME: &str = "policies/default.toml";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {}: {source}; check the path given with --policy", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read secrets file {} named in [secrets] of {policy}: {source}",
        path.display()
    )]
    ReadSecrets {
        path: PathBuf,
        policy: String,
        source: std::io::Error,
    },
    #[error(
        "cannot read {} named in [trust] of {policy}: {source}",
        path.display()
    )]
    ReadTrust {
        path: PathBuf,
        policy: String,
        source: std::io::Error,
    },
    /// A policy file that must be signed (see `require_signed_policies`) is not.
    #[error("policy {} is not trusted: {reason}", path.display())]
    Unsigned { path: PathBuf, reason: String },
    /// The layers' `[llm]` sections do not fit together.
    #[error("policy {files}: {message}")]
    Llm { files: String, message: String },
    #[error("policy {file}, line {line}, column {column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Limits as written in one place: any of them may be missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default, deserialize_with = "values::de::fuel")]
    pub fuel: Option<u64>,
    #[serde(default, deserialize_with = "values::de::memory")]
    pub memory: Option<u64>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::de::output")]
    pub output: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginSection {
    /// When set, the section applies only to the component with this digest.
    #[serde(default, deserialize_with = "digest")]
    digest: Option<String>,
    /// When set, the section applies only to a component signed by this signer (a trusted
    /// key's name, or a keyless subject).
    signer: Option<String>,
    #[serde(default)]
    limits: LimitsSpec,
    net: Option<NetSpec>,
    env: Option<EnvSpec>,
    /// Names of secrets injected into this plugin's environment.
    secrets: Option<Vec<VarName>>,
    fs: Option<FsSpec>,
    tools: Option<ToolsSpec>,
    llm: Option<LlmSpec>,
    /// What one step (a call of this plugin) may spend.
    budget: Option<llm::BudgetSpec>,
}

/// `[plugins.<name>.fs]`: host directories preopened for the plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFsSpec")]
struct FsSpec {
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

/// `[plugins.<name>.tools]`: tools the plugin may call through the host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsSpec {
    #[serde(default)]
    call: Vec<String>,
}

/// `[plugins.<name>.llm]`: models the plugin may use through the host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmSpec {
    #[serde(default)]
    models: Vec<String>,
    max_tokens: Option<u32>,
    /// Whether this plugin's completions may be served from (and stored in) the cache;
    /// default: `[cache] enabled`.
    cache: Option<bool>,
}

/// Top-level `[tools]`: bounds on tool-to-tool calls.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolBoundsSpec {
    max_depth: Option<u32>,
    max_calls: Option<u32>,
}

/// `[plugins.<name>.env]`: host environment variables passed through.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSpec {
    #[serde(default)]
    allow: Vec<VarName>,
}

/// An environment variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VarName(String);

impl<'de> Deserialize<'de> for VarName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(VarName(name))
        } else {
            Err(serde::de::Error::custom(format!(
                "'{name}' is not an environment variable name (letters, digits and _)"
            )))
        }
    }
}

/// `[secrets]`: where secret values come from besides the host environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsSpec {
    /// A TOML file of `NAME = "value"` lines, relative to the policy file.
    file: Option<PathBuf>,
}

/// `[plugins.<name>.net]`: outgoing HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetSpec {
    #[serde(default)]
    allow: Vec<NetPattern>,
    methods: Option<Vec<Method>>,
    #[serde(default, deserialize_with = "values::de::output")]
    max_response_bytes: Option<u64>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    timeout: Option<Duration>,
    /// A PEM file of certificate authorities trusted for https, besides the public ones.
    ca: Option<PathBuf>,
}

/// An HTTP method name, uppercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Method(String);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let text = String::deserialize(d)?.to_ascii_uppercase();
        if KNOWN.contains(&text.as_str()) {
            Ok(Method(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "'{text}' is not an HTTP method Baton grants ({})",
                KNOWN.join(", ")
            )))
        }
    }
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

/// What a plugin may reach over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct NetGrant {
    pub allow: Vec<NetPattern>,
    /// Uppercase method names.
    pub methods: Vec<String>,
    pub max_response_bytes: u64,
    /// Host-side deadline of one request (connect to last byte).
    pub timeout: Duration,
    /// Extra certificate authorities (a PEM file) trusted for https.
    pub ca: Option<PathBuf>,
    /// The file that granted it.
    pub source: String,
}

impl NetGrant {
    /// The pattern that allows `scheme://host:port`, if any.
    pub fn pattern_for(&self, scheme: &str, host: &str, port: u16) -> Option<&NetPattern> {
        self.allow.iter().find(|p| p.matches(scheme, host, port))
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

/// Which models a plugin may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmGrant {
    pub models: Vec<String>,
    /// The most tokens one completion may ask for.
    pub max_tokens: Option<u32>,
    /// Whether the cache may answer it (`None`: as `[cache] enabled` says).
    pub cache: Option<bool>,
}

/// Everything a policy grants one plugin. Nothing granted means nothing reachable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub net: Option<NetGrant>,
    /// Host environment variables passed through (when set).
    pub env: Vec<String>,
    /// Secrets injected as environment variables.
    pub secrets: Vec<String>,
    /// Preopened directories.
    pub fs: Vec<FsMount>,
    /// Tools it may call through the host, by name.
    pub tools: Vec<String>,
    pub llm: Option<LlmGrant>,
}

/// How deep tool-to-tool calls may nest, and how many one top-level call may make in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolBounds {
    pub max_depth: u32,
    pub max_calls: u32,
}

impl Default for ToolBounds {
    fn default() -> Self {
        Self {
            max_depth: 4,
            max_calls: 64,
        }
    }
}

/// Defaults of a `[net]` section.
const DEFAULT_METHODS: [&str; 2] = ["GET", "HEAD"];
const DEFAULT_MAX_RESPONSE: u64 = 1 << 20;
const DEFAULT_NET_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    secrets: SecretsSpec,
    #[serde(default)]
    tools: ToolBoundsSpec,
    #[serde(default)]
    trust: trust::TrustSpec,
    #[serde(default)]
    llm: llm::LlmSection,
    #[serde(default)]
    cache: llm::CacheSpec,
    /// What one run may spend.
    #[serde(default)]
    budget: llm::BudgetSpec,
    #[serde(default)]
    plugins: BTreeMap<String, PluginSection>,
}

#[derive(Debug, Clone)]
struct Layer {
    /// How messages name this file.
    name: String,
    /// The file as written, for bundles.
    text: String,
    file: PolicyFile,
    /// The secrets file named in `[secrets]`, resolved, and its values (never journaled).
    secrets_file: Option<PathBuf>,
    secrets: BTreeMap<String, String>,
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
    fn section(&self, plugin: &str, subject: Subject) -> Option<&PluginSection> {
        let section = self.file.plugins.get(plugin)?;
        let digest_ok = section
            .digest
            .as_deref()
            .is_none_or(|d| d == subject.digest);
        let signer_ok = section.signer.is_none() || section.signer.as_deref() == subject.signer;
        (digest_ok && signer_ok).then_some(section)
    }
}

/// Where a resolved limit came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `[limits]` of a policy file.
    File(String),
    /// `[plugins.<plugin>.limits]` of a policy file.
    PluginSection {
        file: String,
        plugin: String,
    },
    CommandLine,
    /// What was left of the run's or step's budget (`--budget`, `[budget]`).
    Budget,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(file) => f.write_str(file),
            Source::PluginSection { file, plugin } => {
                write!(f, "{file} [plugins.{plugin}.limits]")
            }
            Source::CommandLine => f.write_str("the command line"),
            Source::Budget => f.write_str("what was left of the budget"),
        }
    }
}

/// Limits for one plugin, with the source of each.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLimits {
    pub limits: Limits,
    pub fuel: Source,
    pub memory: Source,
    pub timeout: Source,
    pub output: Source,
}

impl ResolvedLimits {
    pub fn source(&self, kind: LimitKind) -> &Source {
        match kind {
            LimitKind::Fuel => &self.fuel,
            LimitKind::Memory => &self.memory,
            LimitKind::Timeout => &self.timeout,
            LimitKind::Output => &self.output,
        }
    }

    fn apply(&mut self, spec: &LimitsSpec, source: &Source) {
        if let Some(v) = spec.fuel {
            (self.limits.fuel, self.fuel) = (v, source.clone());
        }
        if let Some(v) = spec.memory {
            (self.limits.memory, self.memory) = (v, source.clone());
        }
        if let Some(v) = spec.timeout {
            (self.limits.timeout, self.timeout) = (v, source.clone());
        }
        if let Some(v) = spec.output {
            (self.limits.output, self.output) = (v, source.clone());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    /// The built-in defaults, complete.
    base: Limits,
    layers: Vec<Layer>,
    trust: trust::TrustPolicy,
    llm: llm::LlmConfig,
}

impl Policy {
    /// The built-in default policy alone.
    pub fn builtin() -> Self {
        Self::layered(
            vec![(DEFAULT_POLICY_NAME.into(), DEFAULT_POLICY.into())],
            true,
        )
        .expect("policies/default.toml is checked by the test suite")
    }

    /// The built-in defaults with the policy file at `path` on top.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        Self::load_all(std::slice::from_ref(&path.to_owned()))
    }

    /// The built-in defaults with the policy files at `paths` layered on top, in order. When a
    /// layer's `[trust]` sets `require_signed_policies`, every file above it must carry a
    /// signature (`FILE.sig`) by a key the layers up to it trust.
    pub fn load_all(paths: &[PathBuf]) -> Result<Self, PolicyError> {
        let mut texts = vec![(DEFAULT_POLICY_NAME.to_string(), DEFAULT_POLICY.to_string())];
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.to_owned(),
                source,
            })?;
            texts.push((path.display().to_string(), text));
        }
        let policy = Self::layered(texts, true)?;
        policy.check_signed_layers(paths)?;
        Ok(policy)
    }

    /// Enforces `require_signed_policies`: each file layer above one that sets it must be
    /// signed by a key trusted by the layers below it.
    fn check_signed_layers(&self, paths: &[PathBuf]) -> Result<(), PolicyError> {
        for (index, path) in paths.iter().enumerate() {
            // File `index` is layer `index + 1`; the layers below it decide.
            let below = &self.layers[..=index];
            let trust = trust::resolve(below, true)?;
            if !trust.require_signed_policies {
                continue;
            }
            let text = &self.layers[index + 1].text;
            trust::check_policy_signature(path, text.as_bytes(), &trust).map_err(|reason| {
                PolicyError::Unsigned {
                    path: path.clone(),
                    reason,
                }
            })?;
        }
        Ok(())
    }

    /// A policy from named texts, layered in order, as a replay rebuilds a recorded run's
    /// policy. Secrets files are not read: a replay serves the recorded (redacted) values.
    pub fn from_texts(texts: Vec<(String, String)>) -> Result<Self, PolicyError> {
        Self::layered(texts, false)
    }

    /// Layers named texts in order. The first must set every limit (as the built-in
    /// `policies/default.toml` does).
    fn layered(texts: Vec<(String, String)>, read_files: bool) -> Result<Self, PolicyError> {
        let mut layers = Vec::new();
        for (name, text) in texts {
            let file = parse(&name, &text)?;
            let (secrets_file, secrets) = match read_files {
                true => load_secrets(&name, &file)?,
                false => (None, BTreeMap::new()),
            };
            layers.push(Layer {
                name,
                text,
                file,
                secrets_file,
                secrets,
            });
        }
        let incomplete = |name: &str| PolicyError::Parse {
            file: name.into(),
            line: 1,
            column: 1,
            message: "the first policy must set fuel, memory, timeout and output in [limits]"
                .into(),
        };
        let first = layers.first().ok_or_else(|| incomplete("(none)"))?;
        let l = &first.file.limits;
        let base = l
            .fuel
            .zip(l.memory)
            .zip(l.timeout.zip(l.output))
            .map(|((fuel, memory), (timeout, output))| Limits {
                fuel,
                memory,
                timeout,
                output,
            })
            .ok_or_else(|| incomplete(&first.name))?;
        let trust = trust::resolve(&layers, read_files)?;
        let mut llm = llm::LlmConfig::default();
        for layer in &layers {
            llm.layer(&layer.name, &layer.file.llm);
            llm.cache.apply(&layer.file.cache);
        }
        llm.policy_version = layers
            .iter()
            .map(|l| baton_core::Digest::of(l.text.as_bytes()).to_string())
            .collect::<Vec<_>>()
            .join(",");
        llm.validate().map_err(|message| PolicyError::Llm {
            files: layers
                .iter()
                .map(|l| l.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            message,
        })?;
        Ok(Policy {
            base,
            layers,
            trust,
            llm,
        })
    }

    /// The value of secret `name`: from the secrets files (the last layer's first), else from
    /// the host environment.
    pub fn secret(&self, name: &str) -> Result<String, String> {
        for layer in self.layers.iter().rev() {
            if let Some(value) = layer.secrets.get(name) {
                return Ok(value.clone());
            }
        }
        std::env::var(name).map_err(|_| {
            let files: Vec<String> = self
                .layers
                .iter()
                .filter_map(|l| l.secrets_file.as_ref().map(|f| f.display().to_string()))
                .collect();
            match files.as_slice() {
                [] => format!("set {name} in the environment"),
                _ => format!("set {name} in the environment or in {}", files.join(", ")),
            }
        })
    }

    /// Each layer's name and text, built-in defaults first.
    pub fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.layers
            .iter()
            .map(|l| (l.name.as_str(), l.text.as_str()))
    }

    /// The sections for `plugin` that apply to the component with `digest`, each with the
    /// name of its file, built-in first.
    fn sections<'a>(
        &'a self,
        plugin: &'a str,
        subject: Subject<'a>,
    ) -> impl Iterator<Item = (&'a str, &'a PluginSection)> {
        self.layers
            .iter()
            .filter_map(move |layer| Some((layer.name.as_str(), layer.section(plugin, subject)?)))
    }

    /// The files whose section for `plugin` is pinned to a digest other than `digest`.
    pub fn pinned_elsewhere<'a>(
        &self,
        plugin: &str,
        subject: impl Into<Subject<'a>>,
    ) -> Vec<String> {
        let subject = subject.into();
        let mut notes = Vec::new();
        for layer in &self.layers {
            let Some(section) = layer.file.plugins.get(plugin) else {
                continue;
            };
            if let Some(pinned) = section.digest.as_ref().filter(|d| *d != subject.digest) {
                notes.push(format!(
                    "{} pins [plugins.{plugin}] to {pinned}",
                    layer.name
                ));
            }
            if let Some(bound) = section.signer.as_ref()
                && subject.signer != Some(bound.as_str())
            {
                let actual = subject.signer.map_or("it is unsigned".to_string(), |s| {
                    format!("it is signed by {s}")
                });
                notes.push(format!(
                    "{} binds [plugins.{plugin}] to signer {bound}, but {actual}",
                    layer.name
                ));
            }
        }
        notes
    }

    /// The plugins the topmost policy file has sections for.
    pub fn plugin_sections(&self) -> Vec<String> {
        let top = self
            .layers
            .last()
            .expect("a policy has at least the built-in layer");
        top.file.plugins.keys().cloned().collect()
    }

    /// What the policy grants `plugin` for `subject` (its digest and signer). A section pinned to
    /// another digest, or bound to another signer, grants nothing. The last file that grants a
    /// capability decides it.
    pub fn grants_for<'a>(&self, plugin: &str, subject: impl Into<Subject<'a>>) -> Grants {
        let mut grants = Grants::default();
        for (file, section) in self.sections(plugin, subject.into()) {
            if let Some(env) = &section.env {
                grants.env = env.allow.iter().map(|v| v.0.clone()).collect();
            }
            if let Some(secrets) = &section.secrets {
                grants.secrets = secrets.iter().map(|v| v.0.clone()).collect();
            }
            if let Some(fs) = &section.fs {
                let mount = |m: &MountSpec, writable| FsMount {
                    host: relative_to(file, &m.host),
                    guest: m.guest.clone(),
                    writable,
                    source: file.to_string(),
                };
                grants.fs = (fs.read.iter().map(|m| mount(m, false)))
                    .chain(fs.write.iter().map(|m| mount(m, true)))
                    .collect();
            }
            if let Some(tools) = &section.tools {
                grants.tools = tools.call.clone();
            }
            if let Some(llm) = &section.llm {
                grants.llm = Some(LlmGrant {
                    models: llm.models.clone(),
                    max_tokens: llm.max_tokens,
                    cache: llm.cache,
                });
            }
            if let Some(net) = &section.net {
                grants.net = Some(NetGrant {
                    allow: net.allow.clone(),
                    methods: net.methods.as_ref().map_or_else(
                        || DEFAULT_METHODS.map(String::from).to_vec(),
                        |m| m.iter().map(|m| m.0.clone()).collect(),
                    ),
                    max_response_bytes: net.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE),
                    timeout: net.timeout.unwrap_or(DEFAULT_NET_TIMEOUT),
                    ca: net.ca.as_ref().map(|ca| relative_to(file, ca)),
                    source: file.to_string(),
                });
            }
        }
        grants
    }

    /// Where model calls go: providers and model routes.
    pub fn llm(&self) -> &llm::LlmConfig {
        &self.llm
    }

    /// What a run may spend: the last file that sets each limit wins.
    pub fn run_budget(&self) -> BudgetLimits {
        self.layers.iter().fold(BudgetLimits::default(), |b, l| {
            b.overridden_by(&l.file.budget.0)
        })
    }

    /// What one call of `plugin` (a step, with the calls it makes to other tools) may spend.
    pub fn step_budget<'a>(&self, plugin: &str, subject: impl Into<Subject<'a>>) -> BudgetLimits {
        self.sections(plugin, subject.into())
            .filter_map(|(_, s)| s.budget)
            .fold(BudgetLimits::default(), |b, spec| b.overridden_by(&spec.0))
    }

    /// Whose signatures make a component loadable.
    pub fn trust(&self) -> &trust::TrustPolicy {
        &self.trust
    }

    /// Bounds on tool-to-tool calls: the last file that sets each wins.
    pub fn tool_bounds(&self) -> ToolBounds {
        let mut bounds = ToolBounds::default();
        for layer in &self.layers {
            let spec = layer.file.tools;
            bounds.max_depth = spec.max_depth.unwrap_or(bounds.max_depth);
            bounds.max_calls = spec.max_calls.unwrap_or(bounds.max_calls);
        }
        bounds
    }

    /// The limits for `plugin`, with `overrides` from the command line applied last.
    /// A section pinned to another digest does not apply.
    pub fn limits_for<'a>(
        &self,
        plugin: &str,
        subject: impl Into<Subject<'a>>,
        overrides: &LimitsSpec,
    ) -> ResolvedLimits {
        let subject = subject.into();
        let origin = Source::File(self.layers[0].name.clone());
        let mut resolved = ResolvedLimits {
            limits: self.base,
            fuel: origin.clone(),
            memory: origin.clone(),
            timeout: origin.clone(),
            output: origin,
        };
        for layer in &self.layers {
            resolved.apply(&layer.file.limits, &Source::File(layer.name.clone()));
            if let Some(section) = layer.section(plugin, subject) {
                let source = Source::PluginSection {
                    file: layer.name.clone(),
                    plugin: plugin.into(),
                };
                resolved.apply(&section.limits, &source);
            }
        }
        resolved.apply(overrides, &Source::CommandLine);
        resolved
    }
}

/// `path` as named in the policy file `file`: relative paths are relative to its directory.
fn relative_to(file: &str, path: &Path) -> PathBuf {
    Path::new(file)
        .parent()
        .unwrap_or(Path::new("."))
        .join(path)
}

/// Reads the secrets file a policy names, relative to the policy's directory.
fn load_secrets(
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
            line: e.span().map_or(1, |s| line_and_column(&text, s.start).0),
            column: 1,
            message: "a secrets file holds only NAME = \"value\" lines".into(),
        }
    })?;
    Ok((Some(path), values))
}

fn parse(name: &str, text: &str) -> Result<PolicyFile, PolicyError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((1, 1));
        PolicyError::Parse {
            file: name.into(),
            line,
            column,
            message: e.message().trim().replace('\n', " "),
        }
    })
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_from(text: &str) -> Result<Policy, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        Policy::load(&path)
    }

    #[test]
    fn builtin_policy_matches_the_documented_defaults() {
        let resolved = Policy::builtin().limits_for("any", "", &LimitsSpec::default());
        assert_eq!(
            resolved.limits,
            Limits {
                fuel: 1_000_000_000,
                memory: 64 << 20,
                timeout: Duration::from_secs(5),
                output: 1 << 20,
            }
        );
        assert_eq!(resolved.fuel, Source::File("policies/default.toml".into()));
    }

    #[test]
    fn plugin_sections_override_defaults_and_flags_override_both() {
        let policy = policy_from(
            "[limits]\nmemory = \"32 MiB\"\n[plugins.calc.limits]\nfuel = 5000\ntimeout = \"1s\"\n",
        )
        .unwrap();
        let flags = LimitsSpec {
            timeout: Some(Duration::from_millis(250)),
            ..LimitsSpec::default()
        };
        let calc = policy.limits_for("calc", "", &flags);
        assert_eq!(calc.limits.fuel, 5000);
        assert!(matches!(&calc.fuel, Source::PluginSection { plugin, .. } if plugin == "calc"));
        assert_eq!(calc.limits.memory, 32 << 20);
        assert!(matches!(&calc.memory, Source::File(f) if f.ends_with("p.toml")));
        assert_eq!(calc.limits.timeout, Duration::from_millis(250));
        assert_eq!(calc.timeout, Source::CommandLine);

        let other = policy.limits_for("text-stats", "", &LimitsSpec::default());
        assert_eq!(other.limits.fuel, 1_000_000_000);
        assert_eq!(other.limits.timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_section_pinned_to_another_digest_sets_no_limits() {
        let pinned = format!("sha256:{}", "a".repeat(64));
        let policy = policy_from(&format!(
            "[plugins.calc]\ndigest = \"{pinned}\"\n[plugins.calc.limits]\nfuel = 5000\n"
        ))
        .unwrap();
        let none = LimitsSpec::default();
        assert_eq!(
            policy
                .limits_for("calc", pinned.as_str(), &none)
                .limits
                .fuel,
            5000
        );
        let other = policy.limits_for("calc", format!("sha256:{}", "b".repeat(64)).as_str(), &none);
        assert_eq!(other.limits.fuel, 1_000_000_000);
        assert_eq!(other.fuel, Source::File("policies/default.toml".into()));
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        let err = policy_from("[limits]\nfuel = 10\nfule = 20\n").unwrap_err();
        let PolicyError::Parse {
            line,
            column,
            message,
            ..
        } = &err
        else {
            panic!("expected a parse error, got {err}");
        };
        assert_eq!((*line, *column), (3, 1));
        assert!(message.contains("unknown field `fule`"), "{message}");
    }

    #[test]
    fn bad_values_are_errors_at_their_position() {
        let err = policy_from("[plugins.x.limits]\nmemory = \"9 GiB\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("between 64 KiB and 4 GiB"), "{text}");
        let err = policy_from("[limits]\ntimeout = 5\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn fs_grants_resolve_beside_the_policy_with_their_guest_paths() {
        let policy = policy_from(
            "[plugins.notes.fs]\nread = [\"fixtures/notes\", \"/srv/a:/docs\"]\nwrite = [\"out:/out\"]\n",
        )
        .unwrap();
        let fs = policy.grants_for("notes", "").fs;
        let got: Vec<(String, &str, bool)> = fs
            .iter()
            .map(|m| {
                let host = m.host.file_name().unwrap().to_string_lossy().into_owned();
                (host, m.guest.as_str(), m.writable)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("notes".into(), "/notes", false),
                ("a".into(), "/docs", false),
                ("out".into(), "/out", true),
            ]
        );
        assert!(fs[0].host.ends_with("fixtures/notes"));
        assert_eq!(fs[1].host, Path::new("/srv/a"));
        assert!(policy.grants_for("other", "").fs.is_empty());
    }

    #[test]
    fn a_missing_policy_file_says_so() {
        let err = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read policy /nonexistent/policy.toml")
        );
    }
}

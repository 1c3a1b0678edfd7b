//! Information-flow control: the labels data carries from its sources, and the labels each
//! sink accepts.
//!
//! Labels are names; what data carries is a set of them (the lattice of sets, joined by
//! union), and `public` is the empty set. Sources:
//!
//! - `[labels] secrets = { NAME = [...] }`: a secret's value (default `secret`);
//! - `[labels] fs = { "DIR" = [...] }`: what is read beneath a granted directory (a host
//!   directory, relative to the policy file; a granted directory no entry covers is
//!   `private`);
//! - `[labels] egress = { "scheme://host[:port]" = [...] }`: responses from matching
//!   destinations (any other response is public);
//! - `[plugins.X.flow] output = [...]`: what a tool's output carries besides.
//!
//! Sinks: `[plugins.X.flow] may_send = [...]` is what an invocation of X may carry when it
//! sends an HTTP request, writes a file, calls a tool or asks a model (default: anything), and
//! `[flow] egress = { "scheme://host[:port]" = [...] }` what a request to a destination may
//! carry. `[plugins.X.flow] declassify = [...]` names labels X's output sheds; it is allowed
//! only in a section bound to the component's signer or digest, so that only the signed tool
//! the rule names can declassify.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::FsMount;
use crate::file::{Layer, PluginSection, relative_to};
use crate::net::{Host, NetPattern};

/// The label of data nothing restricts: the empty set.
pub const PUBLIC: &str = "public";
/// What a secret's value carries unless `[labels] secrets` says otherwise.
pub const SECRET: &str = "secret";
/// What a granted directory's files carry unless `[labels] fs` says otherwise.
pub const PRIVATE: &str = "private";

/// A label's name: lowercase letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Label(String);

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        match valid {
            true => Ok(Label(name)),
            false => Err(serde::de::Error::custom(format!(
                "'{name}' is not a label name (lowercase letters, digits, - and _)"
            ))),
        }
    }
}

/// Label names as a set, `public` (the empty set) left out.
fn names(labels: &[Label]) -> BTreeSet<String> {
    labels
        .iter()
        .filter(|l| l.0 != PUBLIC)
        .map(|l| l.0.clone())
        .collect()
}

/// `[labels]`: what the data of each source carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelsSpec {
    #[serde(default)]
    secrets: BTreeMap<String, Vec<Label>>,
    #[serde(default)]
    fs: BTreeMap<PathBuf, Vec<Label>>,
    #[serde(default)]
    egress: PatternLabels,
}

/// `[flow]`: what requests to each destination may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowSpec {
    #[serde(default)]
    egress: PatternLabels,
}

/// Labels by egress pattern, in the order written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "BTreeMap<String, Vec<Label>>")]
struct PatternLabels(Vec<(NetPattern, BTreeSet<String>)>);

impl TryFrom<BTreeMap<String, Vec<Label>>> for PatternLabels {
    type Error = String;

    fn try_from(map: BTreeMap<String, Vec<Label>>) -> Result<Self, String> {
        map.into_iter()
            .map(|(pattern, labels)| Ok((pattern.parse()?, names(&labels))))
            .collect::<Result<_, String>>()
            .map(PatternLabels)
    }
}

/// `[plugins.<name>.flow]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginFlowSpec {
    may_send: Option<Vec<Label>>,
    #[serde(default)]
    output: Vec<Label>,
    declassify: Option<Vec<Label>>,
}

impl PluginFlowSpec {
    pub(crate) fn declassifies(&self) -> bool {
        self.declassify.as_ref().is_some_and(|d| !d.is_empty())
    }
}

/// Labels and where they were set, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub labels: BTreeSet<String>,
    /// "[plugins.fetch.flow] may_send in policy.toml".
    pub source: String,
}

/// What the policy says of one plugin's data flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginFlow {
    /// The labels its invocations may carry when they send anything out (`None`: any).
    pub may_send: Option<Rule>,
    /// The labels its output carries besides those of what it read.
    pub output: BTreeSet<String>,
    /// The labels its output sheds.
    pub declassify: Option<Rule>,
}

/// The policy's sources and destination sinks, layered: the last file that names a secret,
/// directory or pattern decides it.
#[derive(Debug, Clone, Default)]
pub struct FlowConfig {
    secrets: BTreeMap<String, Rule>,
    /// Normalized host directory → its labels.
    fs: Vec<(PathBuf, Rule)>,
    egress_sources: Vec<(NetPattern, Rule)>,
    egress_sinks: Vec<(NetPattern, Rule)>,
}

impl FlowConfig {
    pub(crate) fn resolve(layers: &[Layer]) -> Self {
        let mut config = FlowConfig::default();
        for layer in layers {
            let rule = |labels: BTreeSet<String>, key: &str| Rule {
                labels,
                source: format!("[{key}] in {}", layer.name),
            };
            let spec = &layer.file.labels;
            for (name, labels) in &spec.secrets {
                let rule = rule(names(labels), "labels.secrets");
                config.secrets.insert(name.clone(), rule);
            }
            for (dir, labels) in &spec.fs {
                let dir = normalize(&relative_to(&layer.name, dir));
                config.fs.retain(|(d, _)| *d != dir);
                config.fs.push((dir, rule(names(labels), "labels.fs")));
            }
            for (pattern, labels) in &spec.egress.0 {
                config.egress_sources.retain(|(p, _)| p != pattern);
                let rule = rule(labels.clone(), "labels.egress");
                config.egress_sources.push((pattern.clone(), rule));
            }
            for (pattern, labels) in &layer.file.flow.egress.0 {
                config.egress_sinks.retain(|(p, _)| p != pattern);
                let rule = rule(labels.clone(), "flow.egress");
                config.egress_sinks.push((pattern.clone(), rule));
            }
        }
        config
    }

    /// What the value of secret `name` carries.
    pub fn secret(&self, name: &str) -> BTreeSet<String> {
        self.secrets.get(name).map_or_else(
            || BTreeSet::from([SECRET.to_string()]),
            |r| r.labels.clone(),
        )
    }

    /// What is read beneath `mount` carries: the labels of the deepest `[labels] fs`
    /// directory at or above it, else `private`.
    pub fn directory(&self, mount: &FsMount) -> BTreeSet<String> {
        let host = normalize(&mount.host);
        self.fs
            .iter()
            .filter(|(dir, _)| host.starts_with(dir))
            .max_by_key(|(dir, _)| dir.components().count())
            .map_or_else(
                || BTreeSet::from([PRIVATE.to_string()]),
                |(_, r)| r.labels.clone(),
            )
    }

    /// What a response from `scheme://host:port` carries.
    pub fn response(&self, scheme: &str, host: &str, port: u16) -> BTreeSet<String> {
        self.egress_sources
            .iter()
            .filter(|(p, _)| p.matches(scheme, host, port))
            .flat_map(|(_, r)| r.labels.iter().cloned())
            .collect()
    }

    /// What a request to `scheme://host:port` may carry, when a `[flow] egress` pattern
    /// matches it.
    pub fn destination(&self, scheme: &str, host: &str, port: u16) -> Option<&Rule> {
        self.egress_sinks
            .iter()
            .find(|(p, _)| p.matches(scheme, host, port))
            .map(|(_, r)| r)
    }

    /// What responses from the destinations `granted` allows carry (for `policy explain`).
    pub fn response_from(&self, granted: &NetPattern) -> BTreeSet<String> {
        self.egress_sources
            .iter()
            .filter(|(p, _)| covers(p, granted))
            .flat_map(|(_, r)| r.labels.iter().cloned())
            .collect()
    }

    /// The `[flow] egress` rule for requests to the destinations `granted` allows (for
    /// `policy explain`).
    pub fn destination_of(&self, granted: &NetPattern) -> Option<&Rule> {
        self.egress_sinks
            .iter()
            .find(|(p, _)| covers(p, granted))
            .map(|(_, r)| r)
    }
}

/// Whether `rule`'s pattern covers every destination `granted` allows: the same pattern, or
/// one matching its exact host.
fn covers(rule: &NetPattern, granted: &NetPattern) -> bool {
    let host = match &granted.host {
        Host::Name(name) => name.clone(),
        Host::Ip(ip) => ip.to_string(),
        Host::Wildcard(_) => return rule == granted,
    };
    rule == granted || rule.matches(&granted.scheme, &host, granted.port)
}

impl PluginFlow {
    /// Takes in one file's `[plugins.<plugin>.flow]`: the last file that sets a key decides it.
    pub(crate) fn apply(&mut self, file: &str, plugin: &str, section: &PluginSection) {
        let Some(spec) = &section.flow else {
            return;
        };
        let rule = |labels: &[Label], key: &str| Rule {
            labels: names(labels),
            source: format!("[plugins.{plugin}.flow] {key} in {file}"),
        };
        if let Some(may_send) = &spec.may_send {
            self.may_send = Some(rule(may_send, "may_send"));
        }
        if !spec.output.is_empty() {
            self.output = names(&spec.output);
        }
        if let Some(declassify) = &spec.declassify {
            self.declassify = Some(rule(declassify, "declassify"));
        }
    }
}

/// `path` without `.` parts and with `..` parts applied, as written (a replay on another
/// machine must label the same directories the same way, so the filesystem is not asked).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if normal.file_name().is_some() => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Refuses a `declassify` in a section bound to no signer or digest: anyone could build a
/// component with the same name.
pub(crate) fn check_declassify(layer: &Layer) -> Result<(), String> {
    for (plugin, section) in &layer.file.plugins {
        let declassifies = section.flow.as_ref().is_some_and(|f| f.declassifies());
        if declassifies && section.signer.is_none() && section.digest.is_none() {
            return Err(format!(
                "[plugins.{plugin}.flow] declassify must be bound to the component it trusts: \
                 set signer = \"...\" or digest = \"sha256:...\" in [plugins.{plugin}]"
            ));
        }
    }
    Ok(())
}

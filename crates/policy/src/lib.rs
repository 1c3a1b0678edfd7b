//! Policy files: the limits each plugin runs under, what it may reach, what runs may spend
//! and whose signatures are trusted.
//!
//! A policy is a stack of layers: the built-in `policies/default.toml`, then the files given
//! with `--policy`. Within each layer `[plugins.<name>]` overrides `[limits]`; command-line
//! flags override everything. Every resolved value remembers where it came from, so an error
//! can say which file set the limit that was hit.
//!
//! - [`file`]: a policy file as written, parsed with line and column in every error;
//! - [`grants`]: what a plugin section grants, one module per capability;
//! - [`limits`]: limits as written and as resolved, with their sources;
//! - [`llm`], [`trust`], [`net`], [`values`]: the model routes, trust roots, egress patterns
//!   and value syntax; [`explain`]: what a policy grants a component, in words.

mod error;
pub mod explain;
mod file;
pub mod flow;
mod grants;
pub mod journal;
mod limits;
pub mod llm;
pub mod net;
pub mod requests;
pub mod routes;
pub mod trust;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_budget::BudgetLimits;
use baton_core::limits::Limits;

pub use error::PolicyError;
pub use file::Subject;
pub use grants::{FsMount, Grants, LlmGrant, NetGrant, ToolBounds};
pub use limits::{LimitsSpec, ResolvedLimits, Source};

use file::{Layer, PluginSection, load_secrets, parse};

/// The built-in default policy, kept in the repository as `policies/default.toml`.
const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");
const DEFAULT_POLICY_NAME: &str = "policies/default.toml";
/// The largest input a call takes unless a policy or `--max-input` says otherwise.
const DEFAULT_MAX_INPUT: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub struct Policy {
    /// The built-in defaults, complete.
    base: Limits,
    layers: Vec<Layer>,
    trust: trust::TrustPolicy,
    llm: llm::LlmConfig,
    run_signing: Option<journal::RunSigning>,
    flow: flow::FlowConfig,
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
        if let Some((layer, plugin)) = layers.iter().find_map(|layer| {
            layer
                .file
                .plugins
                .iter()
                .find(|(_, section)| section.limits.max_input.is_some())
                .map(|(name, _)| (layer, name))
        }) {
            return Err(PolicyError::Parse {
                file: layer.name.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "max_input in [plugins.{plugin}.limits]: the largest input is checked before \
                     a component is known; set it in [limits]"
                ),
            });
        }
        for layer in &layers {
            flow::check_declassify(layer).map_err(|message| PolicyError::Parse {
                file: layer.name.clone(),
                line: 1,
                column: 1,
                message,
            })?;
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
            llm.layer(&layer.name, &layer.file.llm)
                .map_err(|message| PolicyError::Llm {
                    files: layer.name.clone(),
                    message,
                })?;
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
        let run_signing = journal::resolve(&layers);
        let flow = flow::FlowConfig::resolve(&layers);
        Ok(Policy {
            base,
            layers,
            trust,
            llm,
            run_signing,
            flow,
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

    /// The directories the last policy file grants (`[plugins.X.fs]`) that are not directories
    /// on this machine, each with the plugin it is granted to.
    pub fn missing_directories(&self) -> Vec<(String, grants::FsMount)> {
        let top = self
            .layers
            .last()
            .expect("a policy has at least the built-in layer");
        top.file
            .plugins
            .iter()
            .filter_map(|(name, section)| Some((name, section.fs.as_ref()?)))
            .flat_map(|(name, fs)| fs.mounts(&top.name).into_iter().map(|m| (name.clone(), m)))
            .filter(|(_, mount)| !mount.host.is_dir())
            .collect()
    }

    /// What the policy grants `plugin` for `subject` (its digest and signer). A section pinned to
    /// another digest, or bound to another signer, grants nothing. The last file that grants a
    /// capability decides it.
    pub fn grants_for<'a>(&self, plugin: &str, subject: impl Into<Subject<'a>>) -> Grants {
        let mut grants = Grants::default();
        for (file, section) in self.sections(plugin, subject.into()) {
            grants.apply(file, section);
        }
        grants
    }

    /// What the policy says of `plugin`'s data flow for `subject` (its digest and signer).
    pub fn flow_for<'a>(&self, plugin: &str, subject: impl Into<Subject<'a>>) -> flow::PluginFlow {
        let mut rules = flow::PluginFlow::default();
        for (file, section) in self.sections(plugin, subject.into()) {
            rules.apply(file, plugin, section);
        }
        rules
    }

    /// The labels of the policy's sources and the destinations' sinks.
    pub fn flow(&self) -> &flow::FlowConfig {
        &self.flow
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

    /// The largest input a call takes, and where that limit was set: `overrides` (the
    /// command line), else the last policy file whose `[limits]` sets `max_input`, else 16 MiB.
    pub fn max_input(&self, overrides: &LimitsSpec) -> (u64, String) {
        if let Some(limit) = overrides.max_input {
            return (limit, "--max-input".into());
        }
        self.layers
            .iter()
            .rev()
            .find_map(|l| {
                let limit = l.file.limits.max_input?;
                Some((limit, format!("[limits] max_input in {}", l.name)))
            })
            .unwrap_or((DEFAULT_MAX_INPUT, "the default (--max-input)".into()))
    }

    /// The most one run may record of what its calls read, fetched and returned
    /// (`[journal] max_bytes`), and the policy file that set it.
    pub fn journal_max_bytes(&self) -> (u64, String) {
        journal::max_bytes(&self.layers)
    }

    /// How this host signs the runs it records (`[journal]`), if it does.
    pub fn run_signing(&self) -> Option<&journal::RunSigning> {
        self.run_signing.as_ref()
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

#[cfg(test)]
mod tests;

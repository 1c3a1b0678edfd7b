//! `[llm]` and `[budget]`: where model calls go and what they may spend.
//!
//! ```toml
//! [llm.providers.openai]          # any OpenAI-compatible chat-completions endpoint
//! kind = "openai"
//! base_url = "http://127.0.0.1:8000/v1"
//! api_key_env = "OPENAI_API_KEY"
//!
//! [llm.models.gpt-4o-mini]        # the name plugins ask for
//! provider = "openai"
//! input_per_1k = 0.00015          # USD per 1000 input tokens
//! output_per_1k = 0.0006
//! context_window = 128000
//! fallbacks = ["smollm2"]         # cheaper models used when the budget cannot cover this one
//!
//! [budget]                        # per run; [plugins.<name>.budget] per step
//! tokens = 20000
//! usd = 0.10
//! time = "60s"
//! ```
//!
//! A provider or model entry in a later policy file replaces the earlier entry of that name
//! whole; budget keys override one by one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values;
use baton_budget::{BudgetLimits, Usd};

/// The model file the local provider loads unless `model_file` says otherwise.
pub const DEFAULT_LOCAL_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model directory the embedding provider loads unless `model_file` says otherwise.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LlmSection {
    #[serde(default)]
    providers: BTreeMap<String, ProviderSpec>,
    #[serde(default)]
    models: BTreeMap<String, ModelSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// An OpenAI-compatible chat-completions endpoint over HTTP.
    Openai,
    /// A GGUF model run on this machine with candle.
    Local,
    /// A sentence-transformers BERT model (a directory) run on this machine with candle.
    Embedding,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSpec {
    kind: ProviderKind,
    base_url: Option<String>,
    /// The environment variable holding the API key (sent as a bearer token).
    api_key_env: Option<String>,
    /// The local provider's GGUF file, or the embedding provider's model directory,
    /// relative to the policy file.
    model_file: Option<PathBuf>,
    /// The same, by name in the models directory (`$BATON_MODELS`, else `baton/models` in
    /// the user's data directory), where `cargo xtask models` puts them.
    model: Option<String>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    timeout: Option<Duration>,
    retries: Option<u32>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    backoff: Option<Duration>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    max_backoff: Option<Duration>,
    breaker_failures: Option<u32>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    breaker_cooldown: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    provider: String,
    /// The provider's name for the model (default: the entry's name).
    name: Option<String>,
    #[serde(default, deserialize_with = "price")]
    input_per_1k: Usd,
    #[serde(default, deserialize_with = "price")]
    output_per_1k: Usd,
    context_window: Option<u32>,
    #[serde(default)]
    fallbacks: Vec<String>,
    /// Whether the cache may answer this model (when `[cache]` is enabled).
    cache: Option<bool>,
}

/// Retries of one provider: exponential backoff with jitter, honouring Retry-After up to
/// `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// A provider's circuit breaker: open after `failures` consecutive failures, half-open after
/// `cooldown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    pub failures: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Chat completions go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub model_file: PathBuf,
    /// Deadline of one attempt.
    pub timeout: Duration,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    /// The policy file that configured it.
    pub source: String,
}

/// Where a model name is routed, and what it costs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRoute {
    pub name: String,
    pub provider: String,
    /// The provider's name for it.
    pub remote: String,
    pub input_per_1k: Usd,
    pub output_per_1k: Usd,
    pub context_window: u32,
    pub fallbacks: Vec<String>,
    pub cache: bool,
}

/// The routing table: providers and the models they serve, and the cache in front of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelRoute>,
    pub cache: CacheSettings,
    /// The digests of the policy files in force: part of every semantic-cache namespace, so
    /// that a changed policy never reuses answers given under another.
    pub policy_version: String,
}

/// `[cache]`: the completion cache (see `baton_llm::cache`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheSpec {
    enabled: Option<bool>,
    semantic: Option<bool>,
    threshold: Option<f32>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    ttl: Option<Duration>,
    max_entries: Option<u64>,
    /// Namespaces with more entries are searched through a vector index.
    index_above: Option<u64>,
    /// Serve requests with temperature above 0 from the semantic tier too.
    sampled: Option<bool>,
    embedding_model: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub enabled: bool,
    pub semantic: bool,
    /// Least cosine similarity of the user turns for a semantic hit.
    pub threshold: f32,
    pub ttl: Duration,
    pub max_entries: u64,
    /// Namespaces with more entries than this are searched through a vector index rather
    /// than scanned.
    pub index_above: u64,
    pub sampled: bool,
    pub embedding_model: String,
}

/// The semantic tier's default threshold, chosen on the labelled pairs of
/// `benches/data/cache-pairs.jsonl` (see BENCHMARKS.md): no false hits, with a margin.
pub const DEFAULT_THRESHOLD: f32 = 0.92;

/// Up to this many entries a namespace is scanned exactly: 20,000 384-dimension vectors take
/// a few milliseconds, and the index would take seconds to build.
pub const DEFAULT_INDEX_ABOVE: u64 = 20_000;

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            semantic: true,
            threshold: DEFAULT_THRESHOLD,
            ttl: Duration::from_secs(7 * 24 * 3600),
            max_entries: 100_000,
            index_above: DEFAULT_INDEX_ABOVE,
            sampled: false,
            embedding_model: DEFAULT_EMBEDDING_MODEL.into(),
        }
    }
}

impl CacheSettings {
    pub(super) fn apply(&mut self, spec: &CacheSpec) {
        self.enabled = spec.enabled.unwrap_or(self.enabled);
        self.semantic = spec.semantic.unwrap_or(self.semantic);
        self.threshold = spec.threshold.unwrap_or(self.threshold);
        self.ttl = spec.ttl.unwrap_or(self.ttl);
        self.max_entries = spec.max_entries.unwrap_or(self.max_entries);
        self.index_above = spec.index_above.unwrap_or(self.index_above);
        self.sampled = spec.sampled.unwrap_or(self.sampled);
        if let Some(model) = &spec.embedding_model {
            self.embedding_model.clone_from(model);
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(20);
const DEFAULT_BREAKER_FAILURES: u32 = 5;
const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(30);
const DEFAULT_CONTEXT_WINDOW: u32 = 8192;
const DEFAULT_OPENAI_URL: &str = "https://api.openai.com/v1";

/// Where local model files live unless a policy names one: `$BATON_MODELS`, else `models`
/// in the user's data directory.
pub fn models_dir() -> PathBuf {
    std::env::var_os(MODELS_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(default_models_dir)
}

const MODELS_VAR: &str = "BATON_MODELS";

/// `baton/models` in the user's data directory, where `cargo xtask models` also puts them.
pub fn default_models_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("baton")
        .join("models")
}

/// Where Baton looked for a model file and how to put it there, for errors about a missing
/// model.
pub fn models_hint() -> String {
    let looked = match std::env::var_os(MODELS_VAR) {
        Some(dir) => format!("{MODELS_VAR} is {}", PathBuf::from(dir).display()),
        None => format!(
            "{MODELS_VAR} is unset, so Baton looks in {}",
            default_models_dir().display()
        ),
    };
    format!(
        "{looked}; `cargo xtask models` fetches the models into target/models and {}, or set \
         {MODELS_VAR} to a directory that holds them",
        default_models_dir().display()
    )
}

impl LlmConfig {
    /// Adds one policy file's `[llm]` (`file` names it, and relative paths are relative to
    /// it), replacing entries of the same names.
    pub(super) fn layer(&mut self, file: &str, section: &LlmSection) -> Result<(), String> {
        for (name, spec) in &section.providers {
            let model_file = match (&spec.model_file, &spec.model, spec.kind) {
                (Some(_), Some(_), _) => {
                    return Err(format!(
                        "[llm.providers.{name}] gives both model and model_file; keep model (a \
                         name in the models directory) or model_file (a path), not both"
                    ));
                }
                (Some(path), None, _) => crate::file::relative_to(file, path),
                (None, Some(model), _) => {
                    if model.contains(['/', '\\']) || model == ".." || model.is_empty() {
                        return Err(format!(
                            "[llm.providers.{name}] model '{model}' is not a name in the models \
                             directory; give a file or directory name, or a path as model_file"
                        ));
                    }
                    models_dir().join(model)
                }
                (None, None, ProviderKind::Embedding) => models_dir().join(DEFAULT_EMBEDDING_MODEL),
                (None, None, _) => models_dir().join(DEFAULT_LOCAL_MODEL),
            };
            let base_url = spec
                .base_url
                .clone()
                .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
                .unwrap_or_else(|| DEFAULT_OPENAI_URL.into());
            self.providers.insert(
                name.clone(),
                ProviderConfig {
                    name: name.clone(),
                    kind: spec.kind,
                    base_url: base_url.trim_end_matches('/').to_string(),
                    api_key_env: spec.api_key_env.clone(),
                    model_file,
                    timeout: spec.timeout.unwrap_or(DEFAULT_TIMEOUT),
                    retry: RetrySettings {
                        retries: spec.retries.unwrap_or(DEFAULT_RETRIES),
                        backoff: spec.backoff.unwrap_or(DEFAULT_BACKOFF),
                        max_backoff: spec.max_backoff.unwrap_or(DEFAULT_MAX_BACKOFF),
                    },
                    breaker: BreakerSettings {
                        failures: spec.breaker_failures.unwrap_or(DEFAULT_BREAKER_FAILURES),
                        cooldown: spec.breaker_cooldown.unwrap_or(DEFAULT_BREAKER_COOLDOWN),
                    },
                    source: file.to_string(),
                },
            );
        }
        for (name, spec) in &section.models {
            self.models.insert(
                name.clone(),
                ModelRoute {
                    name: name.clone(),
                    provider: spec.provider.clone(),
                    remote: spec.name.clone().unwrap_or_else(|| name.clone()),
                    input_per_1k: spec.input_per_1k,
                    output_per_1k: spec.output_per_1k,
                    context_window: spec.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW),
                    fallbacks: spec.fallbacks.clone(),
                    cache: spec.cache.unwrap_or(true),
                },
            );
        }
        Ok(())
    }

    /// Checks that every model's provider and fallbacks exist, once all layers are in.
    pub fn validate(&self) -> Result<(), String> {
        for route in self.models.values() {
            if !self.providers.contains_key(&route.provider) {
                return Err(format!(
                    "[llm.models.{}] names provider '{}', which no [llm.providers.{}] defines",
                    route.name, route.provider, route.provider
                ));
            }
            if let Some(missing) = route
                .fallbacks
                .iter()
                .find(|f| !self.models.contains_key(*f))
            {
                return Err(format!(
                    "[llm.models.{}] falls back to '{missing}', which no [llm.models.{missing}] \
                     defines",
                    route.name
                ));
            }
        }
        Ok(())
    }
}

/// A price in USD per 1000 tokens: a number, 0 or more.
fn price<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
    let value = f64::deserialize(d)?;
    Usd::from_f64(value).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{value} is not a price in USD per 1000 tokens (0 or more)"
        ))
    })
}

/// `[budget]` or `[plugins.<name>.budget]`: the same keys as `--budget`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BudgetSpec(pub BudgetLimits);

impl<'de> Deserialize<'de> for BudgetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, toml::Value>::deserialize(d)?;
        let mut limits = BudgetLimits::default();
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "budget {key} = {other} is neither a number nor a string"
                    )));
                }
            };
            limits.set(&key, &text).map_err(serde::de::Error::custom)?;
        }
        Ok(BudgetSpec(limits))
    }
}

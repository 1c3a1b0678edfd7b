//! Workflow files: what `baton run` runs. A workflow names the planner, the tools, the
//! policies and budget, the planner's configuration and how steps run (see
//! `docs/workflows.md`). Paths are relative to the workflow file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_runtime::versions::Requirement;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use baton_budget::BudgetLimits;
use baton_policy::llm::DEFAULT_EMBEDDING_MODEL;

/// Steps run at once when a workflow does not say.
pub const DEFAULT_MAX_PARALLEL: usize = 8;
/// How many tools a planner is shown at most when a workflow does not say.
pub const DEFAULT_TOOL_SEARCH_TOP_K: usize = 16;
/// Steps (and planner decisions) a run may take when a workflow does not say.
pub const DEFAULT_MAX_STEPS: u32 = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    name: Option<String>,
    task: Option<String>,
    input: Option<toml::Value>,
    planner: PathBuf,
    #[serde(default)]
    tools: Vec<PathBuf>,
    #[serde(default)]
    prompts: Vec<PathBuf>,
    #[serde(default)]
    policy: Vec<PathBuf>,
    budget: Option<String>,
    max_parallel: Option<usize>,
    max_steps: Option<u32>,
    #[serde(default)]
    retries: u32,
    retry_backoff: Option<String>,
    timeout: Option<String>,
    planner_timeout: Option<String>,
    embedding_model: Option<String>,
    tool_search_top_k: Option<usize>,
    cache: Option<bool>,
    config: Option<toml::Value>,
    #[serde(default)]
    steps: BTreeMap<String, StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    retries: Option<u32>,
    timeout: Option<String>,
    budget: Option<String>,
}

/// A workflow file, read and checked, its paths resolved.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub path: PathBuf,
    /// The task when `--task` gives none.
    pub task: Option<String>,
    /// The input when `--input` gives none.
    pub input: Value,
    pub planner: PathBuf,
    /// Directories of tool components, single components, and the versions of a tool it
    /// needs (`greet@^1.2`, see `baton_runtime::versions::Requirement`).
    pub tools: Vec<PathBuf>,
    /// Prompt components the planner may render (directories or single components).
    pub prompts: Vec<PathBuf>,
    /// Policy files layered over those of the command line.
    pub policies: Vec<PathBuf>,
    /// Budget limits under those of the command line.
    pub budget: BudgetLimits,
    pub settings: Settings,
}

/// How a run proceeds, as journaled: a replay runs under the recorded settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub name: String,
    /// The planner's configuration (`run-state.config`).
    pub config: Value,
    pub max_parallel: usize,
    pub max_steps: u32,
    /// Retries of a failed step (0: run once).
    pub retries: u32,
    /// The wait before the first retry, doubling before each further one.
    pub retry_backoff_ms: u64,
    /// Deadline of each step, replacing the policy's timeout (`None`: the policy's).
    pub timeout_ms: Option<u64>,
    /// Deadline of each planner decision (`None`: the steps' deadline, else the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner_timeout_ms: Option<u64>,
    /// Settings of single steps, by step id.
    pub steps: BTreeMap<String, StepSettings>,
    /// The model whose embeddings compare replicates' outputs.
    #[serde(default = "default_embedding_model")]
    pub embedding_model: String,
    /// With more tools than this, the planner sees only the this many closest to the task
    /// (0: all of them).
    #[serde(default)]
    pub tool_search_top_k: usize,
    /// Whether the cache of pure calls may answer the run's tool calls (`cache = false` in
    /// the workflow says no). Journaled only when it does not.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub cache: bool,
    /// The run this one forked, and the step it forked at (`baton replay --fork-at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ForkPoint>,
    /// Inputs given to steps instead of those the plan renders (a fork's `--input`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    /// Results given to steps instead of running them (a fork's `--response`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
}

/// Where a fork left its parent run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkPoint {
    pub run: String,
    pub step: String,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_embedding_model() -> String {
    DEFAULT_EMBEDDING_MODEL.into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    pub retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    /// What the step may spend (its replicates and retries together), as `--budget` reads
    /// it; journaled only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name: String::new(),
            config: Value::Null,
            max_parallel: DEFAULT_MAX_PARALLEL,
            max_steps: DEFAULT_MAX_STEPS,
            retries: 0,
            retry_backoff_ms: 200,
            timeout_ms: None,
            planner_timeout_ms: None,
            steps: BTreeMap::new(),
            embedding_model: default_embedding_model(),
            tool_search_top_k: DEFAULT_TOOL_SEARCH_TOP_K,
            cache: true,
            forked_from: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Retries and deadline of step `id`.
    pub fn for_step(&self, id: &str) -> (u32, Option<Duration>) {
        let step = self.steps.get(id);
        let retries = step.and_then(|s| s.retries).unwrap_or(self.retries);
        let timeout = step.and_then(|s| s.timeout_ms).or(self.timeout_ms);
        (retries, timeout.map(Duration::from_millis))
    }

    /// What step `id` may spend, by its `[steps.ID] budget` (unlimited without one).
    pub fn step_budget(&self, id: &str) -> BudgetLimits {
        self.steps
            .get(id)
            .and_then(|s| s.budget.as_deref())
            .and_then(|text| BudgetLimits::parse(text).ok())
            .unwrap_or_default()
    }

    /// The deadline of a planner decision: `planner_timeout`, else the workflow's `timeout`
    /// (`None`: the policy's).
    pub fn planner_timeout(&self) -> Option<Duration> {
        self.planner_timeout_ms
            .or(self.timeout_ms)
            .map(Duration::from_millis)
    }
}

impl Workflow {
    /// A workflow of `planner` alone, with the defaults (`baton run --planner`), named after
    /// its file.
    pub fn of_planner(planner: PathBuf, task: Option<String>) -> Self {
        let name = planner
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            path: PathBuf::new(),
            task,
            input: Value::Null,
            planner,
            tools: Vec::new(),
            prompts: Vec::new(),
            policies: Vec::new(),
            budget: BudgetLimits::default(),
            settings: Settings {
                name,
                ..Settings::default()
            },
        }
    }

    /// Reads and checks the workflow file at `path`; the error says what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        Self::parse(&text, path)
    }

    /// Checks `text` as the workflow file at `path` (files it names are relative to `path`'s
    /// directory; nothing is read).
    pub fn parse(text: &str, path: &Path) -> Result<Self, String> {
        // Where and what, never the offending line itself (a hostile file's bytes would reach
        // the terminal).
        let file: WorkflowFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| {
                baton_core::text::line_and_column(text, span.start)
            });
            let message = baton_core::text::one_line(e.message());
            format!("line {line}, column {column}: {message}")
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        // Files are relative to the workflow; `oci://` references and tool requirements
        // (`greet@^1.2`) are not files.
        let resolve = |p: &PathBuf| {
            let requirement = p.to_str().and_then(Requirement::parse).is_some();
            match baton_core::source::is_oci(p) || requirement {
                true => p.clone(),
                false => dir.join(p),
            }
        };
        for entry in file.tools.iter().filter_map(|p| p.to_str()) {
            if let Some(Err(e)) = Requirement::parse(entry) {
                return Err(format!("tools: {e}"));
            }
        }
        let duration = |what: &str, text: &str| {
            baton_core::limits::duration(text)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| format!("{what}: {e}"))
        };
        let json = |value: Option<toml::Value>| {
            value.map_or(Ok(Value::Null), |v| {
                serde_json::to_value(v).map_err(|e| format!("cannot be JSON: {e}"))
            })
        };
        let max_parallel = file.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL);
        if max_parallel == 0 {
            return Err("max_parallel must be at least 1".into());
        }
        let mut steps = BTreeMap::new();
        for (id, step) in file.steps {
            if !super::plan::is_step_id(&id) {
                // A TOML key may hold anything: quoted on one line, controls escaped.
                let id = baton_core::text::quote(&id, 60);
                return Err(format!("[steps.{id}]: '{id}' is not a step id"));
            }
            let timeout_ms = step
                .timeout
                .as_deref()
                .map(|t| duration(&format!("[steps.{id}] timeout"), t))
                .transpose()?;
            let budget = step
                .budget
                .as_deref()
                .map(BudgetLimits::parse)
                .transpose()
                .map_err(|e| format!("[steps.{id}] budget: {e}"))?
                .map(|limits| limits.to_text());
            steps.insert(
                id,
                StepSettings {
                    retries: step.retries,
                    timeout_ms,
                    budget,
                },
            );
        }
        let name = file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Self {
            path: path.to_owned(),
            task: file.task,
            input: json(file.input).map_err(|e| format!("input {e}"))?,
            planner: resolve(&file.planner),
            tools: file.tools.iter().map(resolve).collect(),
            prompts: file.prompts.iter().map(resolve).collect(),
            policies: file.policy.iter().map(resolve).collect(),
            budget: file
                .budget
                .as_deref()
                .map(BudgetLimits::parse)
                .transpose()
                .map_err(|e| format!("budget: {e}"))?
                .unwrap_or_default(),
            settings: Settings {
                name,
                config: json(file.config).map_err(|e| format!("config {e}"))?,
                max_parallel,
                max_steps: file.max_steps.unwrap_or(DEFAULT_MAX_STEPS),
                retries: file.retries,
                retry_backoff_ms: file
                    .retry_backoff
                    .as_deref()
                    .map(|t| duration("retry_backoff", t))
                    .transpose()?
                    .unwrap_or(Settings::default().retry_backoff_ms),
                timeout_ms: file
                    .timeout
                    .as_deref()
                    .map(|t| duration("timeout", t))
                    .transpose()?,
                planner_timeout_ms: file
                    .planner_timeout
                    .as_deref()
                    .map(|t| duration("planner_timeout", t))
                    .transpose()?,
                steps,
                embedding_model: file.embedding_model.unwrap_or_else(default_embedding_model),
                tool_search_top_k: file.tool_search_top_k.unwrap_or(DEFAULT_TOOL_SEARCH_TOP_K),
                cache: file.cache.unwrap_or(true),
                ..Settings::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Workflow, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.toml");
        std::fs::write(&path, text).unwrap();
        Workflow::load(&path)
    }

    #[test]
    fn a_workflow_resolves_paths_and_settings() {
        let flow = load(
            r#"
            planner = "planners/static.wasm"
            tools = ["tools"]
            max_parallel = 2
            retries = 1
            timeout = "2s"
            budget = "tokens=100"
            [config]
            steps = [{ id = "a", tool = "calc", input = { expression = "1+1" } }]
            [steps.a]
            retries = 3
            "#,
        )
        .unwrap();
        assert!(flow.planner.ends_with("planners/static.wasm"));
        assert_eq!(flow.settings.name, "flow");
        assert_eq!(
            flow.settings.config["steps"][0]["input"]["expression"],
            "1+1"
        );
        assert_eq!(
            flow.settings.for_step("a"),
            (3, Some(Duration::from_secs(2)))
        );
        assert_eq!(
            flow.settings.for_step("b"),
            (1, Some(Duration::from_secs(2)))
        );
        assert_eq!(flow.budget.tokens, Some(100));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(load("tools = []").unwrap_err().contains("planner"));
        assert!(
            load("planner = \"p\"\nmax_paralel = 2")
                .unwrap_err()
                .contains("max_paralel")
        );
        assert!(
            load("planner = \"p\"\ntimeout = \"soon\"")
                .unwrap_err()
                .contains("timeout: 'soon' is not a duration")
        );
        assert!(
            load("planner = \"p\"\nmax_parallel = 0")
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            load("planner = \"p\"\n[steps.B]\nretries = 1")
                .unwrap_err()
                .contains("not a step id")
        );
        // A quoted key may hold a newline or an escape sequence: shown escaped, on one line.
        let err = load("planner = \"p\"\n[steps.\"a\\nb\\u001b[2J\"]\nretries = 1").unwrap_err();
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.contains("'a\\nb\\u{1b}[2J' is not a step id"), "{err}");
    }
}

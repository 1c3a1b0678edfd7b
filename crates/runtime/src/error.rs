//! The library's error: every way a Baton operation fails, each with a one-line message
//! that says what failed, why, and what to do. (Which exit status each means is the
//! command line's business.)

use std::path::PathBuf;

use baton_core::limits::LimitExceeded;
use baton_core::text::{one_line, truncate};
use baton_effects::Divergence;
use baton_journal::chain::ChainBreak;
use baton_journal::store::StoreError;
use baton_policy::{PolicyError, ResolvedLimits};
use baton_sandbox::SandboxError;

use crate::bindings::types::{Error as HostError, ToolError};
use crate::loader::LoadError;
use crate::schema::SchemaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A component that requests what its policy does not grant: not run until it is.
    #[error(
        "{} ({name} {version}) is held: it requests {unmet}, which its policy does not grant; \
         grant them in [plugins.{name}] to run it (`baton policy diff OLD NEW` compares two \
         versions)",
        path.display()
    )]
    Held {
        path: PathBuf,
        name: String,
        version: String,
        unmet: String,
    },
    /// A workflow asked for versions of a tool that no component found has.
    #[error(
        "no tool matches {requirement} ({found}); add a matching version to the tool directories"
    )]
    NoVersion { requirement: String, found: String },
    /// A component named by an OCI reference could not be pulled.
    #[error(transparent)]
    Registry(#[from] baton_registry::RegistryError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A component's `describe()` returned something Baton cannot use.
    #[error("{} cannot be used as a Baton plugin: {reason}", path.display())]
    BadInfo { path: PathBuf, reason: String },
    /// A component was used in a way its world does not support.
    #[error("{} is a {world} component; {what}", path.display())]
    WrongWorld {
        path: PathBuf,
        world: crate::loader::world::World,
        what: &'static str,
    },
    #[error("cannot read the input: {0}")]
    InputUnreadable(String),
    #[error(
        "input is not JSON: {reason}; pass a JSON document, e.g. --input '{{\"text\": \"hi\"}}'"
    )]
    InputNotJson { reason: String },
    #[error(
        "input is {}, larger than the {} a call may take ({set_by}); raise it with --max-input \
         or [limits] max_input",
        baton_core::limits::size(*size),
        baton_core::limits::size(*limit)
    )]
    InputTooLarge {
        size: u64,
        limit: u64,
        set_by: String,
    },
    #[error("tool '{tool}' refused the call: {error}; `baton inspect` shows the schema")]
    InputSchema { tool: String, error: SchemaError },
    /// A component was cut short by the sandbox.
    #[error("{}", describe_sandbox_error(who, error, limits))]
    Sandbox {
        /// "tool 'calc'", or the file while it is being described.
        who: String,
        error: SandboxError,
        limits: Box<ResolvedLimits>,
    },
    #[error("tool '{tool}' failed: {}", describe_tool_error(error))]
    ToolFailed { tool: String, error: ToolError },
    #[error("tool '{tool}' returned output that is not JSON ({reason}); this is a bug in the tool")]
    OutputNotJson { tool: String, reason: String },
    #[error("tool '{tool}' broke its own contract: {error}; this is a bug in the tool")]
    OutputSchema { tool: String, error: SchemaError },
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Journal(#[from] StoreError),
    #[error("secret '{name}' granted to '{plugin}' has no value: {hint}")]
    SecretMissing {
        plugin: String,
        name: String,
        hint: String,
    },
    #[error(
        "directory {} granted to '{plugin}' by {policy} cannot be opened: {reason}; create it or fix the policy",
        host.display()
    )]
    FsMount {
        plugin: String,
        host: PathBuf,
        policy: String,
        reason: std::io::Error,
    },
    /// A policy's `[trust]` names something that is not a usable key.
    #[error("policy [trust]: {0}; fix the key file or the policy")]
    TrustConfig(String),
    /// A key that cannot be made, read or used.
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    /// A file Baton does not know how to sign.
    #[error("cannot sign {}: {reason}", path.display())]
    Sign { path: PathBuf, reason: String },
    /// A file whose signature or attestation is missing or does not verify.
    #[error("{} ({digest}) is not verified: {reason}", path.display())]
    Unverified {
        path: PathBuf,
        digest: String,
        reason: String,
    },
    /// A journal or bundle whose hash chains do not verify.
    #[error("{} fails verification: {source}; it was altered or damaged after it was written", path.display())]
    Tampered { path: PathBuf, source: ChainBreak },
    /// A journal or bundle whose blobs (components, policies) do not match their digests.
    #[error("{} fails verification: {reason}", path.display())]
    TamperedBlob { path: PathBuf, reason: String },
    /// A run whose host signature is missing, does not verify, or signs another record.
    #[error("{} is not proven: {source}", path.display())]
    Unproven {
        path: PathBuf,
        source: crate::provenance::ProofError,
    },
    /// Two tools of one name in a directory of tools.
    #[error(
        "{} holds two tools named '{name}' ({} and {}); keep one there, or give `baton run` the \
         version it needs ({name}@VERSION)",
        dir.display(), files.0.display(), files.1.display()
    )]
    DuplicateTool {
        name: String,
        dir: PathBuf,
        files: (PathBuf, PathBuf),
    },
    /// No run of that id (or prefix) is recorded where it was looked for.
    #[error("no such run '{run}' in {store}; `baton trace ls` lists the runs there")]
    NoSuchRun { run: String, store: String },
    /// A bundle that verifies but cannot be replayed.
    #[error("{} cannot be replayed: {reason}", path.display())]
    BundleInvalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Diverged(Divergence),
    #[error("cannot run a step of run '{run}' on this worker: {reason}")]
    Step { run: String, reason: String },
    #[error("cannot resume run '{run}': {reason}")]
    Resume { run: String, reason: String },
    #[error("cannot fork the run in {}: {reason}", bundle.display())]
    Fork { bundle: PathBuf, reason: String },
    #[error("workflow {}: {reason}", path.display())]
    Workflow { path: PathBuf, reason: String },
    /// A run or step whose budget cannot cover a call.
    #[error("{0}")]
    Budget(#[from] baton_budget::Exceeded),
    /// A budget refusal before a call started, as journaled (and replayed).
    #[error("{0}")]
    BudgetRefused(String),
    /// The completion cache cannot be read or changed.
    #[error("the completion cache: {0}")]
    Cache(String),
    /// A completion or embedding asked for from the command line failed (`kind`: the baton:plugin error
    /// variant).
    #[error("the model call failed ({}): {message}", kind.replace('-', " "))]
    Llm { kind: String, message: String },
}

impl Error {
    /// Whether this is a call its caller cancelled (not a failure of the call).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            Error::Sandbox {
                error: SandboxError::Cancelled,
                ..
            }
        )
    }
}

fn describe_sandbox_error(who: &str, error: &SandboxError, limits: &ResolvedLimits) -> String {
    match error {
        SandboxError::Limit(limit) => match limit.kind() {
            Some(kind) => match limits.source(kind) {
                baton_policy::Source::Budget => format!(
                    "{who} {limit} (all that was left of the budget; raise it with \
                     --budget {}=... or in the policy's [budget])",
                    kind.budget_key()
                ),
                source => format!(
                    "{who} {limit} (limit from {source}; raise it with {})",
                    kind.flag()
                ),
            },
            None => match limit {
                LimitExceeded::Handles { .. } => format!(
                    "{who} {limit}; this host limit is fixed, so the component must release what \
                     it no longer uses"
                ),
                _ => format!(
                    "{who} {limit}; the call stack size is fixed, so the component must recurse \
                     less"
                ),
            },
        },
        SandboxError::Trap { .. } => format!("{who} {error}; this is a bug in the component"),
        SandboxError::Instantiate { .. } | SandboxError::Cancelled => format!("{who} {error}"),
    }
}

fn describe_tool_error(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(m) => format!("invalid input: {}", guest_line(m)),
        ToolError::Failed(m) => guest_line(m),
        ToolError::Host(e) => format!("a host call failed: {}", describe_host_error(e)),
    }
}

fn describe_host_error(error: &HostError) -> String {
    let (kind, message) = host_error_parts(error);
    format!("{}: {}", kind.replace('-', " "), guest_line(message))
}

/// A baton:plugin error's variant, by its WIT name, and its message.
pub fn host_error_parts(error: &HostError) -> (&'static str, &str) {
    match error {
        HostError::NotGranted(m) => ("not-granted", m),
        HostError::InvalidArgument(m) => ("invalid-argument", m),
        HostError::BudgetExceeded(m) => ("budget-exceeded", m),
        HostError::Timeout(m) => ("timeout", m),
        HostError::Unavailable(m) => ("unavailable", m),
        HostError::Failed(m) => ("failed", m),
    }
}

/// The baton:plugin error of variant `kind` (its WIT name) with `message`.
pub fn host_error_from(kind: &str, message: String) -> HostError {
    match kind {
        "not-granted" => HostError::NotGranted(message),
        "invalid-argument" => HostError::InvalidArgument(message),
        "budget-exceeded" => HostError::BudgetExceeded(message),
        "timeout" => HostError::Timeout(message),
        "unavailable" => HostError::Unavailable(message),
        _ => HostError::Failed(message),
    }
}

/// Guest-supplied text, made safe for a one-line message.
fn guest_line(text: &str) -> String {
    truncate(&one_line(text), 500)
}

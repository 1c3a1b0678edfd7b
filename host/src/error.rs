//! The library's error: every way a Baton operation fails, each with a one-line message
//! that says what failed, why, and what to do, and the process exit status the CLI uses.

use std::path::PathBuf;

use crate::orchestrator::result::RunStatus;

use crate::bindings::types::{Error as HostError, ToolError};
use crate::effect::Divergence;
use crate::journal::chain::ChainBreak;
use crate::journal::store::StoreError;
use crate::loader::LoadError;
use crate::policy::{PolicyError, ResolvedLimits};
use crate::sandbox::SandboxError;
use crate::schema::SchemaError;

/// Exit statuses of the `baton` binary.
pub mod exit {
    pub const TOOL_FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const LIMIT: u8 = 3;
    /// A policy that cannot be used (malformed, or missing what it refers to).
    /// A signature or attestation that does not verify, or is missing.
    pub const UNTRUSTED: u8 = 4;
    pub const POLICY: u8 = 5;
    /// Replay divergence, or a journal or bundle that fails verification.
    pub const VERIFICATION: u8 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
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
    /// A bundle that verifies but cannot be replayed.
    #[error("{} cannot be replayed: {reason}", path.display())]
    BundleInvalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Diverged(Divergence),
    #[error("cannot resume run '{run}': {reason}")]
    Resume { run: String, reason: String },
    #[error("workflow {}: {reason}", path.display())]
    Workflow { path: PathBuf, reason: String },
    /// A `baton run` that ended without success (its result is still reported).
    #[error("the run {}: {reason}", status.name().replace('_', " "))]
    RunEnded {
        status: crate::orchestrator::result::RunStatus,
        reason: String,
    },
    /// A run or step whose budget cannot cover a call.
    #[error("{0}")]
    Budget(#[from] crate::budget::Exceeded),
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
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ToolFailed { .. } | Error::OutputNotJson { .. } | Error::OutputSchema { .. } => {
                exit::TOOL_FAILED
            }
            Error::Sandbox {
                error: SandboxError::Limit(_),
                ..
            } => exit::LIMIT,
            Error::Sandbox {
                error: SandboxError::Trap { .. },
                ..
            } => exit::TOOL_FAILED,
            Error::Tampered { .. } | Error::BundleInvalid { .. } | Error::Diverged(_) => {
                exit::VERIFICATION
            }
            Error::Policy(PolicyError::Unsigned { .. }) => exit::UNTRUSTED,
            Error::Budget(_) | Error::BudgetRefused(_) => exit::LIMIT,
            Error::Workflow { .. } | Error::Resume { .. } => exit::BAD_INPUT,
            Error::RunEnded { status, .. } => match status {
                RunStatus::BudgetExceeded | RunStatus::MaxSteps => exit::LIMIT,
                RunStatus::Failed | RunStatus::Succeeded => exit::TOOL_FAILED,
            },
            Error::Cache(_) => exit::BAD_INPUT,
            Error::Llm { kind, .. } => match kind.as_str() {
                "budget-exceeded" => exit::LIMIT,
                "invalid-argument" => exit::BAD_INPUT,
                "not-granted" => exit::POLICY,
                _ => exit::TOOL_FAILED,
            },
            Error::Policy(_)
            | Error::SecretMissing { .. }
            | Error::FsMount { .. }
            | Error::TrustConfig(_) => exit::POLICY,
            Error::Unverified { .. } | Error::Load(LoadError::Untrusted { .. }) => exit::UNTRUSTED,
            Error::Load(_)
            | Error::Journal(_)
            | Error::BadInfo { .. }
            | Error::WrongWorld { .. }
            | Error::InputUnreadable(_)
            | Error::InputNotJson { .. }
            | Error::InputSchema { .. }
            | Error::Sandbox { .. }
            | Error::Key { .. }
            | Error::Sign { .. }
            | Error::Engine(_) => exit::BAD_INPUT,
        }
    }
}

fn describe_sandbox_error(who: &str, error: &SandboxError, limits: &ResolvedLimits) -> String {
    match error {
        SandboxError::Limit(limit) => match limit.kind() {
            Some(kind) => match limits.source(kind) {
                crate::policy::Source::Budget => format!(
                    "{who} {limit} (all that was left of the budget; raise it with \
                     --budget {}=... or in the policy's [budget])",
                    kind.budget_key()
                ),
                source => format!(
                    "{who} {limit} (limit from {source}; raise it with {})",
                    kind.flag()
                ),
            },
            None => format!(
                "{who} {limit}; the call stack size is fixed, so the component must recurse less"
            ),
        },
        SandboxError::Trap { .. } => format!("{who} {error}; this is a bug in the component"),
        SandboxError::Instantiate { .. } => format!("{who} {error}"),
    }
}

fn describe_tool_error(error: &ToolError) -> String {
    match error {
        ToolError::InvalidInput(m) => format!("invalid input: {}", one_line(m)),
        ToolError::Failed(m) => one_line(m),
        ToolError::Host(e) => format!("a host call failed: {}", describe_host_error(e)),
    }
}

fn describe_host_error(error: &HostError) -> String {
    let (kind, message) = host_error_parts(error);
    format!("{}: {}", kind.replace('-', " "), one_line(message))
}

/// A baton:plugin error's variant, by its WIT name, and its message.
pub(crate) fn host_error_parts(error: &HostError) -> (&'static str, &str) {
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
pub(crate) fn host_error_from(kind: &str, message: String) -> HostError {
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
fn one_line(text: &str) -> String {
    crate::sandbox::truncate(&crate::loader::one_line(text), 500)
}

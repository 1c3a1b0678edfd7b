//! The `baton` command's exit statuses, and which one each library error means.

use baton_policy::PolicyError;
use baton_runtime::Error;
use baton_runtime::loader::LoadError;
use baton_sandbox::SandboxError;

pub const TOOL_FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const LIMIT: u8 = 3;
/// A signature or attestation that does not verify, or is missing.
pub const UNTRUSTED: u8 = 4;
/// A policy that cannot be used (malformed, or missing what it refers to).
pub const POLICY: u8 = 5;
/// Replay divergence, or a journal or bundle that fails verification.
pub const VERIFICATION: u8 = 6;

/// The exit status `error` ends the command with.
pub fn code(error: &Error) -> u8 {
    match error {
        Error::ToolFailed { .. } | Error::OutputNotJson { .. } | Error::OutputSchema { .. } => {
            TOOL_FAILED
        }
        Error::Sandbox {
            error: SandboxError::Limit(_),
            ..
        } => LIMIT,
        Error::Sandbox {
            error: SandboxError::Trap { .. },
            ..
        } => TOOL_FAILED,
        Error::Tampered { .. }
        | Error::TamperedBlob { .. }
        | Error::BundleInvalid { .. }
        | Error::Diverged(_) => VERIFICATION,
        Error::Policy(PolicyError::Unsigned { .. }) => UNTRUSTED,
        Error::Budget(_) | Error::BudgetRefused(_) => LIMIT,
        Error::Workflow { .. } | Error::Resume { .. } | Error::Fork { .. } | Error::Step { .. } => {
            BAD_INPUT
        }
        Error::NoSuchRun { .. } | Error::DuplicateTool { .. } => BAD_INPUT,
        Error::Cache(_) => BAD_INPUT,
        Error::Llm { kind, .. } => match kind.as_str() {
            "budget-exceeded" => LIMIT,
            "invalid-argument" => BAD_INPUT,
            "not-granted" => POLICY,
            _ => TOOL_FAILED,
        },
        Error::Policy(_)
        | Error::SecretMissing { .. }
        | Error::FsMount { .. }
        | Error::TrustConfig(_)
        | Error::Held { .. } => POLICY,
        Error::Unverified { .. }
        | Error::Load(LoadError::Untrusted { .. })
        | Error::Unproven { .. } => UNTRUSTED,
        Error::Load(_)
        | Error::Registry(_)
        | Error::NoVersion { .. }
        | Error::Journal(_)
        | Error::BadInfo { .. }
        | Error::WrongWorld { .. }
        | Error::InputUnreadable(_)
        | Error::InputNotJson { .. }
        | Error::InputTooLarge { .. }
        | Error::InputSchema { .. }
        | Error::Sandbox { .. }
        | Error::Key { .. }
        | Error::Sign { .. }
        | Error::Engine(_) => BAD_INPUT,
    }
}

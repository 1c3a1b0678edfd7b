//! Why a policy cannot be used: every message names the file (and, for a syntax or value
//! error, the line and column).

use std::path::PathBuf;

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

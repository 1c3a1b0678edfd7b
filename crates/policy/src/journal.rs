//! `[journal]`: how a host signs the runs it records. The key is a file (from `baton keygen
//! --host`); its password never appears in a policy: it comes from an environment variable
//! (`BATON_HOST_KEY_PASSWORD` unless `password_env` names another) or a file
//! (`password_file`). The last policy file that sets `signing_key` decides all three.
//! `max_bytes` is what one run may record of what its calls read, fetched and returned; the
//! last file that sets it decides.

use std::path::PathBuf;

use serde::Deserialize;

use crate::file::{Layer, relative_to};
use crate::values;

/// What one run may record of payload when no policy file says (policies/default.toml does).
const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// The environment variable a host key's password is read from by default.
pub const DEFAULT_PASSWORD_ENV: &str = "BATON_HOST_KEY_PASSWORD";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalSpec {
    /// The host's private key, relative to the policy file.
    signing_key: Option<PathBuf>,
    /// The environment variable holding its password.
    password_env: Option<String>,
    /// A file holding its password (its first line), relative to the policy file.
    password_file: Option<PathBuf>,
    /// What one run may record of payload (see `baton_journal`'s `payload_bytes`).
    #[serde(default, deserialize_with = "values::de::output")]
    max_bytes: Option<u64>,
}

/// The most one run may record of payload, and the policy file that set it.
pub(crate) fn max_bytes(layers: &[Layer]) -> (u64, String) {
    layers
        .iter()
        .rev()
        .find_map(|layer| Some((layer.file.journal.max_bytes?, layer.name.clone())))
        // A run's recorded policies may predate the key (policies/default.toml sets it now).
        .unwrap_or((
            DEFAULT_MAX_BYTES,
            "the default ([journal] max_bytes)".into(),
        ))
}

/// Where a host's signing key and its password are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSigning {
    pub key: PathBuf,
    pub password: KeyPassword,
    /// The policy file that named the key, as messages name it.
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPassword {
    Env(String),
    File(PathBuf),
}

/// Resolves `[journal]` across `layers`.
pub(crate) fn resolve(layers: &[Layer]) -> Option<RunSigning> {
    layers.iter().rev().find_map(|layer| {
        let spec = &layer.file.journal;
        let key = spec.signing_key.as_ref()?;
        let password = match (&spec.password_file, &spec.password_env) {
            (Some(file), _) => KeyPassword::File(relative_to(&layer.name, file)),
            (None, Some(env)) => KeyPassword::Env(env.clone()),
            (None, None) => KeyPassword::Env(DEFAULT_PASSWORD_ENV.into()),
        };
        Some(RunSigning {
            key: relative_to(&layer.name, key),
            password,
            policy: layer.name.clone(),
        })
    })
}

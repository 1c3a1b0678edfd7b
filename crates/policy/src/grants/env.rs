//! `[plugins.<name>.env]` and `secrets`: host environment variables passed through, and
//! secrets injected into the environment.

use serde::Deserialize;

/// `[plugins.<name>.env]`: host environment variables passed through.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvSpec {
    #[serde(default)]
    allow: Vec<VarName>,
}

/// An environment variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarName(pub(crate) String);

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

impl EnvSpec {
    /// The variables this section passes through.
    pub(crate) fn names(&self) -> Vec<String> {
        self.allow.iter().map(|v| v.0.clone()).collect()
    }
}

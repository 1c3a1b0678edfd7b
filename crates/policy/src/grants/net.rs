//! `[plugins.<name>.net]`: outgoing HTTP, granted by URL pattern and method.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::net::NetPattern;
use crate::values;

/// `[plugins.<name>.net]`: outgoing HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetSpec {
    #[serde(default)]
    allow: Vec<NetPattern>,
    methods: Option<Vec<Method>>,
    #[serde(default, deserialize_with = "values::de::output")]
    max_response_bytes: Option<u64>,
    #[serde(default, deserialize_with = "values::de::timeout")]
    timeout: Option<Duration>,
    /// A PEM file of certificate authorities trusted for https, besides the public ones.
    ca: Option<PathBuf>,
}

/// An HTTP method name, uppercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Method(String);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let text = String::deserialize(d)?.to_ascii_uppercase();
        if KNOWN.contains(&text.as_str()) {
            Ok(Method(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "'{text}' is not an HTTP method Baton grants ({})",
                KNOWN.join(", ")
            )))
        }
    }
}

/// What a plugin may reach over HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct NetGrant {
    pub allow: Vec<NetPattern>,
    /// Uppercase method names.
    pub methods: Vec<String>,
    pub max_response_bytes: u64,
    /// Host-side deadline of one request (connect to last byte).
    pub timeout: Duration,
    /// Extra certificate authorities (a PEM file) trusted for https.
    pub ca: Option<PathBuf>,
    /// The file that granted it.
    pub source: String,
}

impl NetGrant {
    /// The pattern that allows `scheme://host:port`, if any.
    pub fn pattern_for(&self, scheme: &str, host: &str, port: u16) -> Option<&NetPattern> {
        self.allow.iter().find(|p| p.matches(scheme, host, port))
    }
}

/// Defaults of a `[net]` section.
const DEFAULT_METHODS: [&str; 2] = ["GET", "HEAD"];
const DEFAULT_MAX_RESPONSE: u64 = 1 << 20;
const DEFAULT_NET_TIMEOUT: Duration = Duration::from_secs(10);

impl NetSpec {
    /// What this section, written in `file`, grants.
    pub(crate) fn grant(&self, file: &str) -> NetGrant {
        NetGrant {
            allow: self.allow.clone(),
            methods: self.methods.as_ref().map_or_else(
                || DEFAULT_METHODS.map(String::from).to_vec(),
                |m| m.iter().map(|m| m.0.clone()).collect(),
            ),
            max_response_bytes: self.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE),
            timeout: self.timeout.unwrap_or(DEFAULT_NET_TIMEOUT),
            ca: self
                .ca
                .as_ref()
                .map(|ca| crate::file::relative_to(file, ca)),
            source: file.to_string(),
        }
    }
}

//! What a component says it needs: the `baton:requests` custom section `baton build` writes into
//! it from its project's `[requests]`, signed with the rest of its bytes. A component whose
//! requests its grants do not cover is held: it is not run until a policy grants them, and a
//! newer version that asks for more than its predecessor was granted does not silently take
//! its place.

use serde::{Deserialize, Serialize};

use crate::Grants;
use crate::explain::Item;
use crate::net::{Host, NetPattern};

/// The name of the custom section that carries them (JSON).
pub const SECTION: &str = "baton:requests";

/// A component's requests, one list per capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    /// Origins it reaches over HTTP, in `[plugins.NAME.net] allow`'s syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<NetPattern>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Tools it calls through the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Models it asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm: Vec<String>,
}

impl Requests {
    /// Parses the section's JSON.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(json).map_err(|e| format!("its {SECTION} section is not valid: {e}"))
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Each request, and whether `grants` covers it.
    pub fn against(&self, grants: &Grants) -> Vec<(Item, bool)> {
        let names = |capability: &str, asked: &[String], granted: &[String]| {
            asked
                .iter()
                .map(|name| (item(capability, name), granted.contains(name)))
                .collect::<Vec<_>>()
        };
        let models = grants
            .llm
            .as_ref()
            .map(|g| g.models.clone())
            .unwrap_or_default();
        let mut all: Vec<(Item, bool)> = self
            .net
            .iter()
            .map(|pattern| {
                let covered = grants
                    .net
                    .as_ref()
                    .is_some_and(|grant| grant.allow.iter().any(|g| covers(g, pattern)));
                (item("net", &pattern.to_string()), covered)
            })
            .collect();
        all.extend(names("env", &self.env, &grants.env));
        all.extend(names("secrets", &self.secrets, &grants.secrets));
        all.extend(names("tools", &self.tools, &grants.tools));
        all.extend(names("llm", &self.llm, &models));
        all
    }

    /// What it requests that `grants` does not cover.
    pub fn unmet(&self, grants: &Grants) -> Vec<Item> {
        self.against(grants)
            .into_iter()
            .filter(|(_, covered)| !covered)
            .map(|(item, _)| item)
            .collect()
    }
}

fn item(capability: &str, detail: &str) -> Item {
    Item {
        capability: capability.into(),
        detail: detail.into(),
    }
}

/// Whether the granted pattern `grant` allows everything the requested pattern `asked` names.
fn covers(grant: &NetPattern, asked: &NetPattern) -> bool {
    match &asked.host {
        Host::Name(name) => grant.matches(&asked.scheme, name, asked.port),
        Host::Ip(ip) => grant.matches(&asked.scheme, &ip.to_string(), asked.port),
        Host::Wildcard(suffix) => {
            grant.scheme == asked.scheme
                && grant.port == asked.port
                && matches!(&grant.host, Host::Wildcard(granted)
                    if suffix == granted || suffix.ends_with(&format!(".{granted}")))
        }
    }
}

/// Formats items as `net https://a, env TZ`.
pub fn list(items: &[Item]) -> String {
    items
        .iter()
        .map(|i| format!("{} {}", i.capability, i.detail))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NetGrant;

    fn grants(allow: &[&str], env: &[&str]) -> Grants {
        Grants {
            net: Some(NetGrant {
                allow: allow.iter().map(|p| p.parse().unwrap()).collect(),
                methods: vec!["GET".into()],
                max_response_bytes: 1,
                timeout: std::time::Duration::from_secs(1),
                ca: None,
                source: "test".into(),
            }),
            env: env.iter().map(|s| s.to_string()).collect(),
            ..Grants::default()
        }
    }

    #[test]
    fn requests_are_met_only_by_grants_that_cover_them() {
        let requests = Requests::parse(
            br#"{"net": ["https://api.example.com", "https://*.cdn.example.com",
                         "http://127.0.0.1:8080"], "env": ["TZ", "HOME"]}"#,
        )
        .unwrap();
        let granted = grants(
            &["https://api.example.com", "https://*.example.com"],
            &["TZ"],
        );
        assert_eq!(
            list(&requests.unmet(&granted)),
            "net http://127.0.0.1:8080, env HOME"
        );
        let all = grants(
            &[
                "https://*.example.com",
                "https://api.example.com",
                "http://127.0.0.1:8080",
            ],
            &["TZ", "HOME"],
        );
        assert!(requests.unmet(&all).is_empty());
        // A wildcard grant does not cover the bare domain, nor a wider wildcard.
        let narrow =
            Requests::parse(br#"{"net": ["https://example.com", "https://*.com"]}"#).unwrap();
        assert_eq!(narrow.unmet(&all).len(), 2);
    }

    #[test]
    fn a_malformed_section_is_an_error_that_names_it() {
        let error = Requests::parse(br#"{"egress": []}"#).unwrap_err();
        assert!(
            error.starts_with("its baton:requests section is not valid"),
            "{error}"
        );
        assert!(Requests::parse(br#"{"net": ["ftp://x"]}"#).is_err());
    }
}

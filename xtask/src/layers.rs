//! The workspace's one-way order: which of Baton's crates each may depend on. A lower crate
//! never names a higher one; where it must call up, it declares a trait the higher one
//! implements (see docs/architecture.md). `cargo xtask layers` (and `cargo xtask test`)
//! compares every dependency `cargo metadata` reports with this list and fails on any other.

use serde_json::Value;

use crate::Result;
use crate::workspace::metadata;

/// Each Baton crate and the Baton crates it may depend on, bottom first. A new crate is
/// added here, with the crates below it that it needs.
const LAYERS: &[(&str, &[&str])] = &[
    ("baton-core", &[]),
    ("baton-budget", &["baton-core"]),
    ("baton-journal", &["baton-core"]),
    ("baton-trust", &["baton-core"]),
    (
        "baton-postgres",
        &["baton-core", "baton-budget", "baton-journal"],
    ),
    (
        "baton-policy",
        &["baton-core", "baton-budget", "baton-trust"],
    ),
    ("baton-sandbox", &["baton-core"]),
    ("baton-registry", &["baton-core", "baton-trust"]),
    (
        "baton-effects",
        &["baton-core", "baton-journal", "baton-policy"],
    ),
    (
        "baton-llm",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-policy",
            "baton-postgres",
        ],
    ),
    (
        "baton-runtime",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-trust",
            "baton-policy",
            "baton-sandbox",
            "baton-effects",
            "baton-llm",
            "baton-registry",
            "baton-postgres",
        ],
    ),
    (
        "baton-orchestrator",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-policy",
            "baton-sandbox",
            "baton-effects",
            "baton-llm",
            "baton-runtime",
        ],
    ),
    (
        "baton-cluster",
        &[
            "baton-budget",
            "baton-journal",
            "baton-orchestrator",
            "baton-postgres",
            "baton-runtime",
        ],
    ),
    (
        "baton-mcp",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-llm",
            "baton-policy",
            "baton-runtime",
        ],
    ),
    (
        "baton-serve",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-effects",
            "baton-llm",
            "baton-policy",
            "baton-runtime",
            "baton-orchestrator",
            "baton-postgres",
        ],
    ),
    (
        "baton",
        &[
            "baton-core",
            "baton-budget",
            "baton-journal",
            "baton-trust",
            "baton-policy",
            "baton-sandbox",
            "baton-registry",
            "baton-effects",
            "baton-llm",
            "baton-runtime",
            "baton-orchestrator",
            "baton-mcp",
            "baton-serve",
            "baton-postgres",
            "baton-cluster",
        ],
    ),
];

/// Fails, naming every edge, if a Baton crate depends on one the list does not allow it.
pub fn check() -> Result<()> {
    let wrong = wrong_edges(&metadata()?, LAYERS);
    if wrong.is_empty() {
        eprintln!("xtask: the crates depend on each other one way only");
        return Ok(());
    }
    Err(format!(
        "dependencies against the workspace's layering (xtask/src/layers.rs): {}",
        wrong.join("; ")
    ))
}

fn is_baton(name: &str) -> bool {
    name == "baton" || name.starts_with("baton-")
}

/// Every dependency (of any kind) of a Baton crate on a Baton crate that `layers` does not
/// allow, and every Baton crate `layers` does not list.
fn wrong_edges(meta: &Value, layers: &[(&str, &[&str])]) -> Vec<String> {
    let mut wrong = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        if !is_baton(name) {
            continue;
        }
        let Some((_, allowed)) = layers.iter().find(|(crate_, _)| *crate_ == name) else {
            wrong.push(format!("{name} is not in the list"));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let on = dependency["name"].as_str().unwrap_or_default();
            if is_baton(on) && !allowed.contains(&on) {
                wrong.push(format!("{name} depends on {on}"));
            }
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, dependencies: &[&str]) -> Value {
        let dependencies: Vec<Value> = dependencies
            .iter()
            .map(|d| serde_json::json!({"name": d, "kind": null}))
            .collect();
        serde_json::json!({"name": name, "dependencies": dependencies})
    }

    #[test]
    fn an_edge_going_up_is_named() {
        let meta = serde_json::json!({"packages": [
            package("baton-core", &["sha2"]),
            package("baton-journal", &["baton-core", "baton-runtime"]),
            package("baton-runtime", &["baton-core"]),
        ]});
        let layers: &[(&str, &[&str])] = &[
            ("baton-core", &[]),
            ("baton-journal", &["baton-core"]),
            ("baton-runtime", &["baton-core", "baton-journal"]),
        ];
        assert_eq!(
            wrong_edges(&meta, layers),
            ["baton-journal depends on baton-runtime"]
        );
    }

    #[test]
    fn a_crate_missing_from_the_list_is_named() {
        let meta = serde_json::json!({"packages": [package("baton-server", &[])]});
        assert_eq!(
            wrong_edges(&meta, LAYERS),
            ["baton-server is not in the list"]
        );
    }

    #[test]
    fn every_crate_below_may_be_listed_only_below_it() {
        // The list itself runs one way: a crate names only crates listed before it.
        for (index, (name, allowed)) in LAYERS.iter().enumerate() {
            for on in *allowed {
                let below = LAYERS[..index].iter().any(|(n, _)| n == on);
                assert!(below, "{name} may depend on {on}, which is not below it");
            }
        }
    }
}

//! The capability report: what a component asks for (its imports) against what a policy
//! grants it. A component whose imports need grants it does not have still loads; the
//! report says what it will be refused.

use serde::Serialize;

use super::{Grants, Policy, Subject};

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The capability (`net`, `env`, `secrets`, `llm`, `tools`, `fs`).
    pub capability: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub granted: Vec<Item>,
    /// Imported, but nothing granted: every use will be refused.
    pub denied: Vec<Item>,
    /// Granted, but the component cannot use it (it does not import the interface).
    pub unused: Vec<Item>,
    /// Sections for this name that do not apply because they are pinned to another digest.
    pub pinned_elsewhere: Vec<String>,
}

fn item(capability: &str, detail: impl Into<String>) -> Item {
    Item {
        capability: capability.into(),
        detail: detail.into(),
    }
}

fn imports(imports: &[String], interface: &str) -> bool {
    imports
        .iter()
        .any(|i| i.split('@').next() == Some(interface))
}

pub fn explain(
    policy: &Policy,
    plugin: &str,
    subject: Subject,
    component_imports: &[String],
) -> Explanation {
    let Grants {
        net,
        env,
        secrets,
        fs,
        tools,
        llm,
        ..
    } = policy.grants_for(plugin, subject);
    let mut report = Explanation {
        granted: Vec::new(),
        denied: Vec::new(),
        unused: Vec::new(),
        pinned_elsewhere: policy.pinned_elsewhere(plugin, subject),
    };

    let uses_http = imports(component_imports, "wasi:http/outgoing-handler");
    match (net, uses_http) {
        (Some(grant), uses) => {
            let allow: Vec<String> = grant.allow.iter().map(ToString::to_string).collect();
            let detail = format!(
                "{} ({}; responses up to {}; {} per request; from {})",
                if allow.is_empty() { "nothing".into() } else { allow.join(", ") },
                grant.methods.join(", "),
                baton_core::limits::size(grant.max_response_bytes),
                humantime::format_duration(grant.timeout),
                grant.source
            );
            if uses {
                report.granted.push(item("net", detail));
            } else {
                report.unused.push(item("net", format!("{detail}; the component does not import wasi:http/outgoing-handler")));
            }
        }
        (None, true) => report.denied.push(item(
            "net",
            "imports wasi:http/outgoing-handler but no net.allow is granted: every request will be refused",
        )),
        (None, false) => {}
    }

    let uses_env = imports(component_imports, "wasi:cli/environment");
    for (capability, names) in [("env", env), ("secrets", secrets)] {
        if names.is_empty() {
            continue;
        }
        if uses_env {
            report.granted.push(item(capability, names.join(", ")));
        } else {
            report.unused.push(item(
                capability,
                format!(
                    "{}; the component does not import wasi:cli/environment",
                    names.join(", ")
                ),
            ));
        }
    }

    let fs: Vec<String> = fs
        .iter()
        .map(|m| {
            let mode = if m.writable {
                "read-write"
            } else {
                "read-only"
            };
            format!(
                "{} at {} ({mode}, from {})",
                m.host.display(),
                m.guest,
                m.source
            )
        })
        .collect();
    let llm = llm.map(|grant| {
        let models = match grant.models.as_slice() {
            [] => "no models".to_string(),
            models => models.join(", "),
        };
        match grant.max_tokens {
            Some(max) => vec![format!("{models}; at most {max} tokens per completion")],
            None => vec![models],
        }
    });
    for (interface, capability, granted, why) in [
        (
            "baton:plugin/llm",
            "llm",
            llm.unwrap_or_default(),
            "no models are granted: every call will be refused",
        ),
        (
            "baton:plugin/tools",
            "tools",
            tools,
            "no tools.call is granted: every call will be refused",
        ),
        (
            "wasi:filesystem/preopens",
            "fs",
            fs,
            "no directories are preopened: the component sees no files",
        ),
    ] {
        let uses = imports(component_imports, interface);
        match (granted.is_empty(), uses) {
            (true, true) => report
                .denied
                .push(item(capability, format!("imports {interface}, but {why}"))),
            (true, false) => {}
            (false, true) => report.granted.push(item(capability, granted.join("; "))),
            (false, false) => report.unused.push(item(
                capability,
                format!(
                    "{}; the component does not import {interface}",
                    granted.join("; ")
                ),
            )),
        }
    }
    report
}

//! The routes data may take through a set of components under a policy: every source of a
//! label (a secret, a granted directory, a labelled destination, a tool's output labels) to
//! every sink (an HTTP destination, a writable directory, a tool call, a model), each allowed
//! or refused by the flow rules. What runs the components is assumed to route anything
//! anywhere, as an agent planner does (a planner's decisions carry what it was shown), so a
//! route is allowed exactly when the sink accepts the label.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::flow::Rule;
use crate::{Policy, Subject};

/// Where a label comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    pub label: String,
    /// "the secret TOKEN given to 'env-reader'".
    pub from: String,
}

/// Where data may be sent, and what may go there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sink {
    /// The component that sends.
    pub component: String,
    /// "GET http://127.0.0.1:8080", "a call to tool 'calc'".
    pub to: String,
    /// The labels it accepts (`None`: any), and the rules that say so.
    pub accepts: Option<BTreeSet<String>>,
    pub rules: Vec<String>,
}

/// One source's label reaching one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub label: String,
    pub from: String,
    pub component: String,
    pub to: String,
    pub allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routes {
    pub sources: Vec<Source>,
    pub sinks: Vec<Sink>,
    pub routes: Vec<Route>,
}

/// The routes through `components` (each a name and the component it is) under `policy`.
pub fn routes(policy: &Policy, components: &[(&str, Subject)]) -> Routes {
    let flow = policy.flow();
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    for &(name, subject) in components {
        let grants = policy.grants_for(name, subject);
        let rules = policy.flow_for(name, subject);
        let mut source = |labels: BTreeSet<String>, from: String| {
            sources.extend(labels.into_iter().map(|label| Source {
                label,
                from: from.clone(),
            }));
        };
        for secret in &grants.secrets {
            source(
                flow.secret(secret),
                format!("the secret {secret} given to '{name}'"),
            );
        }
        for mount in &grants.fs {
            let from = format!("files beneath {} granted to '{name}'", mount.host.display());
            source(flow.directory(mount), from);
        }
        for pattern in grants.net.iter().flat_map(|n| &n.allow) {
            let from = format!("responses from {pattern} fetched by '{name}'");
            source(flow.response_from(pattern), from);
        }
        source(rules.output.clone(), format!("the output of '{name}'"));
        let sink = |to: String, destination: Option<&Rule>| {
            let rules: Vec<&Rule> = rules.may_send.iter().chain(destination).collect();
            Sink {
                component: name.to_string(),
                to,
                accepts: rules
                    .iter()
                    .map(|r| r.labels.clone())
                    .reduce(|a, b| a.intersection(&b).cloned().collect()),
                rules: rules.iter().map(|r| r.source.clone()).collect(),
            }
        };
        if let Some(net) = &grants.net {
            for pattern in &net.allow {
                let to = format!("{} {pattern}", net.methods.join("/"));
                sinks.push(sink(to, flow.destination_of(pattern)));
            }
        }
        for mount in grants.fs.iter().filter(|m| m.writable) {
            sinks.push(sink(format!("files in {}", mount.host.display()), None));
        }
        for tool in &grants.tools {
            sinks.push(sink(format!("a call to tool '{tool}'"), None));
        }
        for model in grants.llm.iter().flat_map(|l| &l.models) {
            sinks.push(sink(format!("model '{model}'"), None));
        }
    }
    let routes = sources
        .iter()
        .flat_map(|source| {
            sinks.iter().map(move |sink| Route {
                label: source.label.clone(),
                from: source.from.clone(),
                component: sink.component.clone(),
                to: sink.to.clone(),
                allowed: sink
                    .accepts
                    .as_ref()
                    .is_none_or(|a| a.contains(&source.label)),
            })
        })
        .collect();
    Routes {
        sources,
        sinks,
        routes,
    }
}

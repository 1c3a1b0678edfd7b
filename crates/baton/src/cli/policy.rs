//! `baton policy`: validate a policy file; explain what a component will and will not get.

use std::path::{Path, PathBuf};

use baton::orchestrator::workflow::Workflow;
use baton::policy::explain::{Item, explain};
use baton::policy::routes::routes;
use baton::policy::{Policy, PolicyError, Subject, requests};
use baton::runtime::plugin::wasm_files;
use baton::{Error, Host};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check that a policy file is valid (syntax, keys, patterns, values)
    Check {
        /// The policy file
        file: PathBuf,
    },
    /// Compare what a component imports with what the policy (--policy) grants it: granted,
    /// requested but denied, and granted but unused. Given a workflow (.toml): every route
    /// from a labelled source to a sink its components have, allowed or refused by the
    /// policy's flow rules
    Explain {
        /// The component (.wasm), or a workflow (.toml)
        component: PathBuf,
        /// Print a JSON document instead of text
        #[arg(long)]
        json: bool,
    },
    /// Compare two versions of a component: what each requests against what the policy
    /// (--policy) grants it, and what the new one asks for beyond the old one's grant
    Diff {
        /// The version in use (.wasm or oci://)
        old: PathBuf,
        /// The version to upgrade to (.wasm or oci://)
        new: PathBuf,
    },
}

pub async fn run(host: &Host, command: PolicyCommand) -> Result<(), Error> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            // A grant of a directory that is not there would fail every call it applies to.
            if let Some((plugin, mount)) = policy.missing_directories().into_iter().next() {
                return Err(Error::FsMount {
                    plugin,
                    reason: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "it is not a directory on this machine",
                    ),
                    host: mount.host,
                    policy: mount.source,
                });
            }
            let plugins = policy.plugin_sections();
            let sections = match plugins.as_slice() {
                [] => "no plugin sections".to_string(),
                names => format!("sections for {}", names.join(", ")),
            };
            println!("ok: {} is a valid policy ({sections})", file.display());
            Ok(())
        }
        PolicyCommand::Explain { component, json }
            if component.extension().is_some_and(|e| e == "toml") =>
        {
            explain_workflow(host, &component, json).await
        }
        PolicyCommand::Explain { component, json } => {
            let plugin = host.examine(&component).await?;
            let digest = plugin.loaded.digest.to_string();
            let report = explain(
                host.policy(),
                plugin.name(),
                plugin.subject(),
                &plugin.loaded.shape.imports,
            );
            if json {
                super::print_json(&serde_json::to_value(&report).expect("reports serialize"));
                return Ok(());
            }
            println!("{} {} ({digest})", plugin.name(), plugin.info.version());
            let section = |title: &str, items: &[Item]| {
                println!("{title}:");
                if items.is_empty() {
                    println!("  (none)");
                }
                for item in items {
                    println!("  {:<8} {}", item.capability, item.detail);
                }
            };
            section("granted", &report.granted);
            section("requested but denied", &report.denied);
            section("granted but unused", &report.unused);
            for note in &report.pinned_elsewhere {
                println!("note: {note}; this component gets none of that section");
            }
            Ok(())
        }
        PolicyCommand::Diff { old, new } => diff(host, &old, &new).await,
    }
}

/// Prints the routes data may take through the components of the workflow at `path`, under
/// the policy with the workflow's own layers on top.
async fn explain_workflow(host: &Host, path: &Path, json: bool) -> Result<(), Error> {
    let workflow = Workflow::load(path).map_err(|reason| Error::Workflow {
        path: path.to_owned(),
        reason,
    })?;
    let mut texts: Vec<(String, String)> = host
        .policy()
        .texts()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    for layer in &workflow.policies {
        let text = std::fs::read_to_string(layer).map_err(|source| PolicyError::Read {
            path: layer.clone(),
            source,
        })?;
        texts.push((layer.display().to_string(), text));
    }
    let policy = Policy::from_texts(texts)?;
    let mut files = vec![workflow.planner.clone()];
    for path in workflow.tools.iter().chain(&workflow.prompts) {
        match path.is_dir() {
            true => files.extend(wasm_files(path).map_err(Error::Load)?),
            false => files.push(path.clone()),
        }
    }
    let mut components = Vec::new();
    for file in &files {
        components.push(host.examine(file).await?);
    }
    let named: Vec<(&str, Subject)> = components.iter().map(|p| (p.name(), p.subject())).collect();
    let found = routes(&policy, &named);
    if json {
        super::print_json(&serde_json::to_value(&found).expect("routes serialize"));
        return Ok(());
    }
    println!(
        "workflow {}: {}",
        path.display(),
        named.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
    println!("sources (the labels their data carries):");
    if found.sources.is_empty() {
        println!("  (none: everything its components read is public)");
    }
    for source in &found.sources {
        println!("  {:<10} {}", source.label, source.from);
    }
    println!("sinks (where data may be sent):");
    if found.sinks.is_empty() {
        println!("  (none)");
    }
    for sink in &found.sinks {
        let accepts = match &sink.accepts {
            None => "accepts any label".to_string(),
            Some(labels) if labels.is_empty() => "accepts public data only".to_string(),
            Some(labels) => format!(
                "accepts {}",
                labels.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        let rules = match sink.rules.is_empty() {
            true => String::new(),
            false => format!(" ({})", sink.rules.join("; ")),
        };
        println!("  {:<12} {}: {accepts}{rules}", sink.component, sink.to);
    }
    for (allowed, title) in [
        (true, "routes the policy allows"),
        (false, "routes the policy refuses"),
    ] {
        println!("{title}:");
        let chosen: Vec<_> = found
            .routes
            .iter()
            .filter(|r| r.allowed == allowed)
            .collect();
        if chosen.is_empty() {
            println!("  (none)");
        }
        for route in chosen {
            println!(
                "  {:<10} {} -> '{}': {}",
                route.label, route.from, route.component, route.to
            );
        }
    }
    Ok(())
}

/// Prints each version's requests against its grants, then what holds the new one.
async fn diff(host: &Host, old: &Path, new: &Path) -> Result<(), Error> {
    let old = host.examine(old).await?;
    let new = host.examine(new).await?;
    for plugin in [&old, &new] {
        let grants = host.policy().grants_for(plugin.name(), plugin.subject());
        println!(
            "{} {} ({})",
            plugin.name(),
            plugin.info.version(),
            plugin.loaded.digest
        );
        let requests = plugin.loaded.requests.against(&grants);
        if requests.is_empty() {
            println!("  requests nothing beyond computing on its input");
        }
        for (item, granted) in requests {
            let status = match granted {
                true => "granted",
                false => "NOT GRANTED",
            };
            println!("  {:<8} {:<40} {status}", item.capability, item.detail);
        }
    }
    // What the new version asks for that the old one's grant does not cover.
    let old_grants = host.policy().grants_for(old.name(), old.subject());
    let beyond = new.loaded.requests.unmet(&old_grants);
    match (beyond.is_empty(), host.unmet_requests(&new).is_empty()) {
        (true, true) => println!(
            "{} {} requests nothing beyond what {} is granted: it can replace it",
            new.name(),
            new.info.version(),
            old.info.version()
        ),
        (_, false) => println!(
            "{} {} is held until a policy grants it {}",
            new.name(),
            new.info.version(),
            requests::list(&host.unmet_requests(&new))
        ),
        (false, true) => println!(
            "{} {} requests more than {} was granted ({}), and its policy grants it",
            new.name(),
            new.info.version(),
            old.info.version(),
            requests::list(&beyond)
        ),
    }
    Ok(())
}

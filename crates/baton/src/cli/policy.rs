//! `baton policy`: validate a policy file; explain what a component will and will not get.

use std::path::PathBuf;

use baton::policy::Policy;
use baton::policy::explain::{Item, explain};
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
    /// requested but denied, and granted but unused
    Explain {
        /// The component (.wasm)
        component: PathBuf,
        /// Print a JSON document instead of text
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(host: &Host, command: PolicyCommand) -> Result<(), Error> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            let plugins = policy.plugin_sections();
            let sections = match plugins.as_slice() {
                [] => "no plugin sections".to_string(),
                names => format!("sections for {}", names.join(", ")),
            };
            println!("ok: {} is a valid policy ({sections})", file.display());
            Ok(())
        }
        PolicyCommand::Explain { component, json } => {
            let plugin = host.load(&component).await?;
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
    }
}

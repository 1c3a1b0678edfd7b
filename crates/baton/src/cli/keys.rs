//! `baton keys`: the API keys `baton serve` accepts. A key is shown once, when it is made;
//! the store keeps only its hash.

use baton::budget::BudgetLimits;
use baton::journal::store::StoreUrl;
use baton::postgres::PgStore;
use baton::serve::keys::{KeyError, KeyRecord, Keys, Scopes};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it (once: only its hash is kept)
    Create(CreateArgs),
    /// List the keys: name, scopes, budget and what each has spent
    Ls {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by name or id; it stops working at once
    Revoke {
        #[arg(value_name = "NAME|ID")]
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the key may spend over its life, e.g. "usd=5,tokens=1000000" (also calls and
    /// fuel) [default: no limit]
    #[arg(long, value_parser = BudgetLimits::parse, value_name = "LIMITS")]
    budget: Option<BudgetLimits>,
    /// What the key is for (unique among keys not revoked)
    #[arg(long)]
    name: String,
    /// What it may do: runs (submit and see its own runs), llm (the OpenAI-compatible
    /// gateway), admin (everything, every key's runs)
    #[arg(long, default_value = "runs,llm", value_parser = Scopes::parse)]
    scopes: Scopes,
}

/// Runs `command` on the keys of the store at `store`: `serve.db` beside a SQLite journal,
/// or the PostgreSQL store.
pub fn run(store: &StoreUrl, command: KeysCommand) -> Result<(), Failure> {
    // The PostgreSQL store stays open while its keys are used.
    let (keys, _open) = match store {
        StoreUrl::Sqlite(path) => (Keys::beside(path).map_err(usage)?, None),
        StoreUrl::Postgres(url) => {
            let opened = PgStore::open(url).map_err(baton::Error::from)?;
            (Keys::in_postgres(opened.database()), Some(opened))
        }
    };
    match command {
        KeysCommand::Create(args) => {
            let made = keys
                .create(&args.name, args.scopes, args.budget.unwrap_or_default())
                .map_err(usage)?;
            eprintln!(
                "key '{}' ({}): scopes {}, budget {}. It is shown only now: keep it safe.",
                made.record.name,
                made.record.id,
                made.record.scopes,
                budget_of(&made.record)
            );
            println!("{}", made.secret);
        }
        KeysCommand::Ls { json } => {
            let all = keys.list().map_err(usage)?;
            if json {
                let rows: Vec<_> = all.iter().map(as_json).collect();
                super::print_json(&serde_json::Value::Array(rows));
                return Ok(());
            }
            if all.is_empty() {
                eprintln!("no keys: make one with `baton keys create --name NAME`");
            }
            for key in &all {
                let state = match &key.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "live".into(),
                };
                println!(
                    "{:<16} {}  {:<14} budget {:<24} spent {} tokens, {}, {} calls  {state}",
                    key.name,
                    key.id,
                    key.scopes.to_string(),
                    budget_of(key),
                    key.spent.tokens,
                    key.spent.usd,
                    key.spent.calls,
                );
            }
        }
        KeysCommand::Revoke { key } => {
            let revoked = keys.revoke(&key).map_err(usage)?;
            eprintln!("revoked key '{}' ({})", revoked.name, revoked.id);
        }
    }
    Ok(())
}

fn budget_of(key: &KeyRecord) -> &str {
    match key.budget_text.is_empty() {
        true => "unlimited",
        false => &key.budget_text,
    }
}

fn as_json(key: &KeyRecord) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "scopes": key.scopes.to_string(),
        "budget": key.budget_text,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "spent": {
            "tokens": key.spent.tokens,
            "usd": key.spent.usd.to_string(),
            "calls": key.spent.calls,
            "fuel": key.spent.fuel,
        },
    })
}

fn usage(e: KeyError) -> Failure {
    Failure::Usage(e.to_string())
}

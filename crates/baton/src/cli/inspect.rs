//! `baton inspect`: what a component is, before running it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use baton::limits::size;
use baton::policy::ResolvedLimits;
use baton::runtime::loader::world::World;
use baton::{Error, Host, Info, Plugin};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// Print a JSON document instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub limits: super::LimitArgs,
}

#[derive(Serialize)]
struct Report {
    path: String,
    world: World,
    name: String,
    version: String,
    description: String,
    digest: String,
    size: usize,
    provenance: String,
    imports: Vec<String>,
    /// What it requests (its signed `baton:requests` section).
    requests: baton::policy::requests::Requests,
    /// Schema name ("input", "output", "vars", "config") → the schema.
    schemas: BTreeMap<&'static str, Value>,
    limits: Limits,
}

#[derive(Serialize)]
struct Limits {
    fuel: u64,
    memory: u64,
    timeout_ms: u128,
    output: u64,
}

pub async fn run(host: &Host, args: InspectArgs) -> Result<(), Error> {
    let plugin = host.examine(&args.component).await?;
    let limits = host.limits_for(&plugin);
    let report = report(&plugin, &limits);
    if args.json {
        super::print_json(&serde_json::to_value(&report).expect("the report serializes"));
    } else {
        print_text(&report, &limits);
    }
    Ok(())
}

fn report(plugin: &Plugin, limits: &ResolvedLimits) -> Report {
    let loaded = &plugin.loaded;
    let schemas = match &plugin.info {
        Info::Tool(t) => BTreeMap::from([
            ("input", schema(&t.input_schema)),
            ("output", schema(&t.output_schema)),
        ]),
        Info::Prompt(p) => BTreeMap::from([("vars", schema(&p.vars_schema))]),
        Info::Planner(p) => BTreeMap::from([("config", schema(&p.config_schema))]),
    };
    Report {
        path: loaded.source.display().to_string(),
        world: loaded.shape.world,
        name: plugin.info.name().into(),
        version: plugin.info.version().into(),
        description: plugin.info.description().into(),
        digest: loaded.digest.to_string(),
        size: loaded.size,
        provenance: loaded.provenance.to_string(),
        imports: loaded.shape.imports.clone(),
        requests: loaded.requests.clone(),
        schemas,
        limits: Limits {
            fuel: limits.limits.fuel,
            memory: limits.limits.memory,
            timeout_ms: limits.limits.timeout.as_millis(),
            output: limits.limits.output,
        },
    }
}

/// A declared schema as JSON, or as the text it is when it does not parse.
fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
}

fn print_text(r: &Report, limits: &ResolvedLimits) {
    let l = &limits.limits;
    println!("{}", r.path);
    println!("  world        {}", r.world);
    println!("  name         {}", r.name);
    println!("  version      {}", r.version);
    println!("  description  {}", r.description);
    println!("  digest       {}", r.digest);
    println!("  size         {} ({} bytes)", size(r.size as u64), r.size);
    println!("  signature    {}", r.provenance);
    println!("  limits       fuel {} ({})", l.fuel, limits.fuel);
    println!(
        "               memory {} ({})",
        size(l.memory),
        limits.memory
    );
    println!(
        "               timeout {} ({})",
        humantime::format_duration(l.timeout),
        limits.timeout
    );
    println!(
        "               output {} ({})",
        size(l.output),
        limits.output
    );
    println!("  imports");
    for import in &r.imports {
        println!("    {import}");
    }
    if !r.requests.is_empty() {
        let requests = serde_json::to_value(&r.requests).expect("requests serialize");
        println!("  requests");
        for (capability, items) in requests.as_object().into_iter().flatten() {
            let items: Vec<&str> = items
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            println!("    {capability:<8} {}", items.join(", "));
        }
    }
    for (name, schema) in &r.schemas {
        let text = serde_json::to_string_pretty(schema).expect("a Value serializes");
        println!("  {name} schema");
        for line in text.lines() {
            println!("    {line}");
        }
    }
}

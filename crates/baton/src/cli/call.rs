//! `baton call`: one tool call, or one prompt rendered, from the command line.

use std::path::PathBuf;

use baton::limits::size;
use baton::{Error, Host};
use clap::Args;

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool or prompt component (.wasm)
    component: PathBuf,
    /// The input document (JSON), or a prompt's variables; "-" reads it from standard input
    #[arg(long, short, value_name = "JSON")]
    input: String,
    /// The model whose tokenizer a prompt counts with [default: the MCP server's, smollm2]
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// The most tokens a prompt's messages may use
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_tokens: u32,
    /// Also write the run (journal, component, policy) to this bundle file, for
    /// `baton replay`; written even when the call fails
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// A directory of tool components (.wasm) the tool may call through the host, as its
    /// policy's tools.call allows; may be repeated
    #[arg(long, value_name = "DIR")]
    tools: Vec<PathBuf>,
    #[command(flatten)]
    pub limits: super::LimitArgs,
    #[command(flatten)]
    pub budget: super::BudgetArg,
}

pub async fn run(host: &mut Host, args: CallArgs) -> Result<(), Error> {
    let input = super::input_or_stdin(args.input, host.max_input().0)?;
    for dir in &args.tools {
        let names = host.add_tools_from(dir).await?;
        tracing::info!("tools from {}: {}", dir.display(), names.join(", "));
    }
    let plugin = host.load(&args.component).await?;
    let baton::runtime::ToolRun {
        run,
        budget,
        result,
    } = if plugin.is_prompt() {
        let mut budget = baton::mcp::catalog::default_prompt_budget();
        budget.max_tokens = args.max_tokens;
        if let Some(model) = args.model {
            budget.model = model;
        }
        host.run_prompt(&plugin, &input, &budget).await
    } else {
        host.run_tool(&plugin, &input).await
    };
    for denial in run.iter().flat_map(|r| &r.denials) {
        eprintln!("denied: {denial}");
    }
    if budget.spent.calls > 0 || budget.cache_hits > 0 || !budget.limits.is_unlimited() {
        eprintln!("budget: {budget}");
    }
    if let (Some(run), Some(journal)) = (&run, host.journal()) {
        tracing::info!(
            "run {} recorded in {} (root {})",
            run.id,
            journal.location(),
            run.root.get()?
        );
        if let Some(bundle) = &args.bundle {
            host.settle();
            journal.export(&run.id, bundle)?;
            tracing::info!("bundle written to {}", bundle.display());
        }
    }
    let call = result?;
    super::print_json(&call.output);
    tracing::info!(
        "{} {}: {} fuel, {} peak memory, {:.2?}",
        plugin.name(),
        plugin.info.version(),
        call.usage.fuel,
        size(call.usage.peak_memory),
        call.usage.duration
    );
    Ok(())
}

//! `baton llm complete`: one completion through the policy's routes, for quick checks.

use baton::journal::event::{LlmMessage, LlmOutcome, LlmRequest};
use baton::{Error, Host};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum LlmCommand {
    /// Send one prompt to a model and print its answer
    Complete(CompleteArgs),
}

#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The prompt (the user's message); "-" reads it from standard input
    prompt: String,
    /// The model, as the policy's [llm.models] names it
    #[arg(long, short, default_value = "smollm2")]
    model: String,
    /// A system message before the prompt
    #[arg(long)]
    system: Option<String>,
    /// The most tokens the answer may have
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// Sampling temperature, 0 to 2; 0 always takes the most likely token
    #[arg(long, default_value_t = 0.0, value_name = "T", value_parser = temperature)]
    temperature: f32,
    /// Seed for sampling (the same seed and prompt give the same answer)
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Stop the answer before this text; may be repeated
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Hold the answer to this regular expression (the `regex` crate's syntax): the whole
    /// answer matches it
    #[arg(long, value_name = "REGEX")]
    pattern: Option<String>,
    /// Repeating a key returns the stored result without a new request (for 24 hours)
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Print the whole outcome (text, model, tokens, finish reason) as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub budget: super::BudgetArg,
}

fn temperature(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(t) if (0.0..=2.0).contains(&t) => Ok(t),
        _ => Err(format!("'{text}' is not a temperature from 0 to 2")),
    }
}

pub async fn run(host: &Host, command: LlmCommand) -> Result<(), Error> {
    let LlmCommand::Complete(args) = command;
    let prompt = super::text_or_stdin(args.prompt)?;
    let system = args.system.map(|content| LlmMessage {
        content,
        role: "system".into(),
    });
    let user = LlmMessage {
        content: prompt,
        role: "user".into(),
    };
    if let Some(pattern) = &args.pattern {
        baton::llm::pattern::check(pattern).map_err(|e| Error::Llm {
            kind: "invalid-argument".into(),
            message: format!("--pattern: {e}"),
        })?;
    }
    let request = LlmRequest {
        idempotency_key: args.idempotency_key,
        max_tokens: args.max_tokens,
        messages: system.into_iter().chain([user]).collect(),
        model: args.model,
        seed: args.seed.map(|s| s.to_string()),
        stop: args.stop,
        temperature: args.temperature.to_string(),
        pattern: args.pattern,
    };
    let done = host.complete(request).await;
    if let Some(run) = &done.run {
        tracing::info!("run {} (root {})", run.id, run.root.get()?);
    }
    eprintln!("budget: {}", done.budget);
    let LlmOutcome::Completed {
        text,
        model,
        input_tokens,
        output_tokens,
        finish_reason,
    } = done.result()?
    else {
        unreachable!("a failure is an error");
    };
    if args.json {
        super::print_json(&serde_json::json!({
            "text": text,
            "model": model,
            "finish_reason": finish_reason,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": baton::orchestrator::result::dollars(done.budget.spent.usd),
            "run": done.run.as_ref().map(|r| r.id.clone()),
        }));
    } else {
        println!("{text}");
    }
    Ok(())
}

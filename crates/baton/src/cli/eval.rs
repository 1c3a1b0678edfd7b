//! `baton eval`: how close two texts are in meaning, by the embedding model.

use baton::{Error, Host};
use clap::Args;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The first text
    a: String,
    /// The second text
    b: String,
    /// The embedding model, as the policy's [llm.models] names it
    #[arg(long, short, default_value = "all-minilm-l6-v2")]
    model: String,
}

/// Prints the cosine similarity of the two texts' embeddings (1: same meaning, about 0:
/// unrelated).
pub async fn run(host: &Host, args: EvalArgs) -> Result<(), Error> {
    let similarity = host.similarity(&args.model, &args.a, &args.b).await?;
    println!("{similarity:.4}");
    Ok(())
}

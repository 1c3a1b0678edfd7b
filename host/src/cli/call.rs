//! `baton call`: one tool call from the command line.

use std::io::Read;
use std::path::PathBuf;

use baton::sandbox::limits::size;
use baton::{Error, Host};
use clap::Args;

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool component (.wasm)
    component: PathBuf,
    /// The input document (JSON); "-" reads it from standard input
    #[arg(long, short, value_name = "JSON")]
    input: String,
}

pub async fn run(host: &Host, args: CallArgs) -> Result<(), Error> {
    let input = if args.input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::InputUnreadable(format!("standard input: {e}")))?;
        text
    } else {
        args.input
    };
    let plugin = host.load(&args.component).await?;
    let call = host.call_tool(&plugin, &input).await?;
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

//! `baton trace show --flows`: which data reached which sink in a run, read back from its
//! journal. Each chain's `labels` events say what its invocation carried from that point on;
//! every HTTP request, file change, tool call and model request after one carried those
//! labels, and every flow the policy refused is a `denied` event of capability `flow`.

use std::collections::HashMap;

use baton::journal::event::{Event, EventKind};
use baton::runtime::flow::{CHANGING_OPS, FLOW_CAPABILITY};

/// Prints one line per sink of the run: its chain, what its data carried, and where it went.
pub(super) fn print(events: &[Event]) {
    let mut carried: HashMap<&str, String> = HashMap::new();
    let mut sinks = 0;
    let mut refused = 0;
    for event in events {
        let chain = event.chain.as_str();
        let sink = match &event.kind {
            EventKind::Labels { labels, .. } => {
                let names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
                carried.insert(chain, names.join(", "));
                continue;
            }
            EventKind::Http { request, .. } => format!("{} {}", request.method, request.url),
            EventKind::Fs { op, path, args, .. }
                if CHANGING_OPS.contains(&op.as_str())
                    || (op == "open_at"
                        && (args.contains("create") || args.contains("truncate"))) =>
            {
                format!("fs {op} {path}")
            }
            EventKind::ToolCall { tool, .. } => format!("tool '{tool}'"),
            EventKind::Llm { request, .. } => format!("model '{}'", request.model),
            EventKind::LlmEmbed { model, .. } => format!("embedding model '{model}'"),
            EventKind::Denied {
                capability,
                message,
            } if capability == FLOW_CAPABILITY => {
                refused += 1;
                println!("{chain}  refused: {message}");
                continue;
            }
            _ => continue,
        };
        sinks += 1;
        let labels = carried
            .get(chain)
            .filter(|l| !l.is_empty())
            .map_or("public", String::as_str);
        println!("{chain}  {labels} -> {sink}");
    }
    println!("{sinks} sends, {refused} refused by the policy's flow rules");
}

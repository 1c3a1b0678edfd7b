//! `baton repl`: an interactive shell over Baton's commands. Tools are named by the name they
//! report (`call calc {"expression": "6*7"}`), every command line `baton` takes works without
//! its `baton`, each call is journaled as `baton call` journals it, and a failure is the same
//! one-line error the command gives, after which the session goes on. Lines are edited with
//! history and completion (rustyline).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use baton::budget::{BudgetLimits, BudgetReport, Spend, Usd};
use baton::journal::event::EventKind;
use baton::runtime::plugin::wasm_files;
use baton::runtime::stores;
use baton::{Error, Host};
use clap::{Args, Parser};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::{Cli, Command, Failure, GlobalArgs};

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// Tool components, or directories of them, that `call`, `inspect` and `explain` name by
    /// the name each tool reports (repeatable)
    #[arg(long = "tools", value_name = "PATH")]
    tools: Vec<PathBuf>,
    /// Where the session's command history is kept [default: repl-history in the user's
    /// data directory]
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

/// The shell's own commands (every other line is a `baton` command line).
const OWN: &[(&str, &str)] = &[
    ("tools", "the tools of --tools: name, version, description"),
    (
        "call NAME JSON",
        "call a tool with JSON input, journaled as `baton call`",
    ),
    (
        "inspect NAME",
        "what a tool is: world, schemas, imports, limits",
    ),
    (
        "explain NAME",
        "what the policy grants the tool (`policy explain`)",
    ),
    ("llm PROMPT", "ask the default model (`llm complete`)"),
    (
        "budget",
        "what the session's runs spent on models, and what one run may spend",
    ),
    ("help", "this list"),
    ("quit", "end the session (or Ctrl-D)"),
];

/// `baton` commands offered for completion, besides the shell's own.
const COMMANDS: &[&str] = &[
    "run",
    "replay",
    "trace ls",
    "trace show",
    "trace verify",
    "trace export",
    "policy check",
    "policy explain",
    "llm complete",
    "cache stats",
    "cache ls",
    "eval",
    "verify",
    "pull",
];

/// A tool the session can name.
struct Tool {
    path: PathBuf,
    version: String,
    description: String,
}

pub fn run(global: GlobalArgs, args: ReplArgs) -> Result<(), Failure> {
    let tools = load_tools(&global, &args.tools)?;
    let mut editor: Editor<Completion, DefaultHistory> =
        Editor::new().map_err(|e| Failure::Usage(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(Completion {
        tools: tools.keys().cloned().collect(),
    }));
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| super::data_file("repl-history"));
    // A first session has no history yet.
    let _ = editor.load_history(&history);
    println!(
        "baton {}: {} tools; `help` lists the commands, Ctrl-D ends",
        env!("CARGO_PKG_VERSION"),
        tools.len()
    );
    let session = Session {
        started: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        global,
        tool_paths: args.tools,
        tools,
    };
    loop {
        let line = match editor.readline("baton> ") {
            Ok(line) => line,
            // Ctrl-C drops the line being typed, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::Usage(format!("cannot read the terminal: {e}"))),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "quit" | "exit") {
            break;
        }
        if let Err(failure) = session.execute(line) {
            eprintln!(
                "error: {}",
                baton::text::escape_controls(&failure.to_string())
            );
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    editor.save_history(&history).map_err(|e| {
        Failure::Usage(format!(
            "cannot keep the history in {}: {e}; pass --history FILE",
            history.display()
        ))
    })
}

struct Session {
    global: GlobalArgs,
    /// When it began (RFC 3339, as runs record their start).
    started: String,
    tool_paths: Vec<PathBuf>,
    tools: BTreeMap<String, Tool>,
}

impl Session {
    /// Carries out one line.
    fn execute(&self, line: &str) -> Result<(), Failure> {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match word {
            "help" => {
                for (command, what) in OWN {
                    println!("  {command:<16} {what}");
                }
                println!("  any `baton` command line without `baton`, e.g. `trace ls`");
                Ok(())
            }
            "tools" => {
                for (name, tool) in &self.tools {
                    println!("  {name:<16} {:<8} {}", tool.version, tool.description);
                }
                Ok(())
            }
            "call" => {
                let (name, input) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
                let mut argv = vec!["call".into(), self.path_of(name)?, "--input".into()];
                argv.push(input.trim().into());
                for path in &self.tool_paths {
                    argv.extend(["--tools".into(), path.display().to_string()]);
                }
                self.dispatch(argv)
            }
            "inspect" => self.dispatch(vec!["inspect".into(), self.path_of(rest)?]),
            "explain" => {
                self.dispatch(vec!["policy".into(), "explain".into(), self.path_of(rest)?])
            }
            "llm" if !rest.starts_with("complete") => {
                let prompt = rest.trim_matches('"');
                self.dispatch(vec!["llm".into(), "complete".into(), prompt.into()])
            }
            "budget" => {
                println!("this session: {}", self.spent()?);
                let host = Host::new(self.global.host_options(Default::default(), None))?;
                println!("a run may spend: {}", budget_text(&host.budget()));
                Ok(())
            }
            "serve" | "worker" | "mcp" => Err(Failure::Usage(format!(
                "`{word}` runs until it is stopped; run it outside the shell"
            ))),
            _ => {
                let argv = shlex::split(line).ok_or_else(|| {
                    Failure::Usage("unbalanced quotes: close every ' and \"".into())
                })?;
                self.dispatch(argv)
            }
        }
    }

    /// What the session's runs spent on models, read back from the journal: the runs that
    /// started since the session did.
    fn spent(&self) -> Result<String, Failure> {
        let Ok(journal) = stores::open_existing(&self.global.store()) else {
            return Ok("nothing recorded yet".into());
        };
        let mut runs = 0;
        let mut spent = Spend::default();
        let mut cache_hits = 0;
        // Newest first: the session's runs come before every older one.
        for run in journal.runs(usize::MAX).map_err(Error::from)? {
            if run.started_at < self.started {
                break;
            }
            runs += 1;
            for event in journal.events(&run.run).map_err(Error::from)? {
                if let EventKind::Llm {
                    committed, source, ..
                } = event.kind
                {
                    spent = spent.plus(Spend {
                        tokens: committed.tokens,
                        usd: Usd(committed.nano_usd),
                        fuel: 0,
                        calls: committed.calls,
                    });
                    cache_hits += u64::from(source.starts_with("cache:"));
                }
            }
        }
        // As `baton call` reports a run's spending; no limits, since each run has its own.
        let report = BudgetReport {
            limits: BudgetLimits::default(),
            spent,
            elapsed: Duration::ZERO,
            cache_hits,
            semantic_hits: 0,
        };
        let runs = match runs {
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        };
        Ok(format!("{runs}, {report}"))
    }

    /// The component of the tool `name`.
    fn path_of(&self, name: &str) -> Result<String, Failure> {
        match self.tools.get(name) {
            Some(tool) => Ok(tool.path.display().to_string()),
            None => Err(Failure::Usage(format!(
                "no tool named '{name}'; `tools` lists them (from --tools)"
            ))),
        }
    }

    /// Runs `argv` as `baton` would, under the session's options (a line's own `--policy`
    /// layers over the session's).
    fn dispatch(&self, argv: Vec<String>) -> Result<(), Failure> {
        let mut cli = match Cli::try_parse_from(std::iter::once("baton".to_string()).chain(argv)) {
            Ok(cli) => cli,
            Err(e) => {
                // Clap's own rendering: the usage and the hint, as on the command line.
                let _ = e.print();
                return Ok(());
            }
        };
        if matches!(cli.command, Command::Repl(_)) {
            return Err(Failure::Usage("the shell is running already".into()));
        }
        cli.global = self.global.under(cli.global);
        super::run(cli)
    }
}

/// Loads the tools of `paths`; a component that does not load is left out, and said why.
fn load_tools(global: &GlobalArgs, paths: &[PathBuf]) -> Result<BTreeMap<String, Tool>, Failure> {
    let mut options = global.host_options(Default::default(), None);
    options.store = None;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Engine(format!("cannot start the async runtime: {e}")))?;
    let host = runtime.block_on(async { Host::new(options) })?;
    let mut tools = BTreeMap::new();
    for path in paths {
        let files = match path.is_dir() {
            true => wasm_files(path).map_err(Error::from)?,
            false => vec![path.clone()],
        };
        for file in files {
            match runtime.block_on(host.load(&file)) {
                Ok(plugin) if plugin.is_tool() => {
                    tools.insert(
                        plugin.name().to_string(),
                        Tool {
                            path: file,
                            version: plugin.info.version().into(),
                            description: plugin.info.description().into(),
                        },
                    );
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "left out {}: {}",
                    file.display(),
                    baton::text::escape_controls(&e.to_string())
                ),
            }
        }
    }
    Ok(tools)
}

/// "2000 tokens, $0.05" (what the budget limits), or that nothing does.
fn budget_text(budget: &BudgetLimits) -> String {
    let parts: Vec<String> = [
        budget.tokens.map(|t| format!("{t} tokens")),
        budget.usd.map(|usd| usd.to_string()),
        budget.calls.map(|c| format!("{c} LLM calls")),
        budget.fuel.map(|f| format!("{f} fuel")),
        budget
            .time
            .map(|t| humantime::format_duration(t).to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    match parts.is_empty() {
        true => "no limit (a policy's [budget] sets one)".into(),
        false => parts.join(", "),
    }
}

/// Completes the first word with a command, and the word after `call`, `inspect` or
/// `explain` with a tool name.
struct Completion {
    tools: Vec<String>,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let typed = &line[..pos];
        let start = typed.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &typed[start..];
        let before: Vec<&str> = typed[..start].split_whitespace().collect();
        let candidates: Vec<String> = match before.as_slice() {
            [] => OWN
                .iter()
                .map(|(command, _)| command.split(' ').next().unwrap_or(command))
                .chain(COMMANDS.iter().map(|c| c.split(' ').next().unwrap_or(c)))
                .map(String::from)
                .collect(),
            ["call" | "inspect" | "explain"] => self.tools.clone(),
            _ => Vec::new(),
        };
        let mut pairs: Vec<Pair> = candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.clone(),
                replacement: format!("{c} "),
            })
            .collect();
        pairs.sort_by(|a, b| a.display.cmp(&b.display));
        pairs.dedup_by(|a, b| a.display == b.display);
        Ok((start, pairs))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {}

impl Validator for Completion {}

impl Helper for Completion {}

impl GlobalArgs {
    /// `line`'s options under this session's: its policies layer over the session's; the
    /// store, compile cache and telemetry stay the session's (a line parsed alone would take
    /// them from the environment, over what the session was started with).
    fn under(&self, line: GlobalArgs) -> GlobalArgs {
        GlobalArgs {
            policy: self.policy.iter().chain(&line.policy).cloned().collect(),
            no_cache: self.no_cache || line.no_cache,
            verbose: self.verbose.max(line.verbose),
            ..self.clone()
        }
    }
}

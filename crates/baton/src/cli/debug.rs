//! `baton debug RUN|BUNDLE`: a time-travel debugger over a recorded run. The run is laid out
//! as it happened: the run chain, and each step's chain (and each nested call's) where the run
//! chain starts that step; `step`, `next` and `back` move through it, `show` prints the event
//! with the step's input and output and the state the host handed the planner, `break` and
//! `continue` stop where a step, an event kind or a tool appears. Everything is read from the
//! record: nothing runs, nothing is asked of the network or a model.

use std::collections::{BTreeMap, BTreeSet};

use baton::journal::event::{Event, EventKind, InvocationOutcome, RUN_CHAIN, step_chain};
use clap::Args;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use clap::Parser;

use super::{Cli, Failure, GlobalArgs};

#[derive(Debug, Args)]
pub struct DebugArgs {
    /// The run: its id (a unique prefix is enough), or a bundle file
    run: String,
}

const HELP: &[(&str, &str)] = &[
    (
        "step, s",
        "the next event, into a step's or a nested call's chain",
    ),
    (
        "next, n",
        "the next event at this depth or above (over a step's events)",
    ),
    ("back, b", "the event before"),
    ("restart", "the run's first event"),
    (
        "show",
        "the event in full, its step's input and output, and the planner's state",
    ),
    (
        "break step=ID | kind=KIND | tool=NAME",
        "stop where a step, an event kind or a tool appears",
    ),
    ("breaks, clear", "list the breakpoints, remove them all"),
    ("continue, c", "go on to the next breakpoint"),
    (
        "fork [JSON]",
        "fork the run at this step (with another input): `replay --fork-at`",
    ),
    ("where", "where in the run this is"),
    ("help", "this list"),
    ("quit", "end (or Ctrl-D)"),
];

/// One place in the run: an event and how deeply it is nested (0: the run chain).
struct Place {
    event: usize,
    depth: usize,
}

/// A breakpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Step(String),
    Kind(String),
    Tool(String),
}

struct Debugger {
    /// The options it was started with, for the commands it runs (`fork`).
    global: GlobalArgs,
    /// The run as given: a bundle file, or an id in the store.
    run: String,
    events: Vec<Event>,
    places: Vec<Place>,
    at: usize,
    breaks: BTreeSet<Break>,
    /// The tool of each step chain, from the run chain's `step_started`.
    tools: BTreeMap<String, String>,
}

pub fn run(global: &GlobalArgs, args: DebugArgs) -> Result<(), Failure> {
    let (journal, summary) = super::trace::open_run(&global.store(), &args.run)?;
    let events = journal.events(&summary.run).map_err(baton::Error::from)?;
    let run = match std::path::Path::new(&args.run).is_file() {
        true => args.run.clone(),
        false => summary.run.clone(),
    };
    let mut debugger = Debugger::new(events, global.clone(), run);
    println!(
        "run {} ({}, {}): {} events; `help` lists the commands",
        summary.run,
        summary.command,
        summary.status,
        debugger.places.len()
    );
    debugger.print_here();
    let mut editor = DefaultEditor::new()
        .map_err(|e| Failure::Usage(format!("cannot start the line editor: {e}")))?;
    loop {
        let line = match editor.readline("debug> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(Failure::Usage(format!("cannot read the terminal: {e}"))),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if matches!(line, "quit" | "exit" | "q") {
            return Ok(());
        }
        if let Err(message) = debugger.execute(line) {
            eprintln!("error: {message}");
        }
    }
}

impl Debugger {
    fn new(events: Vec<Event>, global: GlobalArgs, run: String) -> Self {
        let mut chains: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut tools = BTreeMap::new();
        for (i, event) in events.iter().enumerate() {
            chains.entry(event.chain.to_string()).or_default().push(i);
            if let EventKind::StepStarted { step, tool, .. } = &event.kind {
                tools.insert(step_chain(step), tool.clone());
            }
        }
        let mut places = Vec::new();
        let mut visited = BTreeSet::new();
        lay_out(&events, &chains, RUN_CHAIN, 0, &mut visited, &mut places);
        // A chain nothing in the record leads to (a run that stopped before entering it).
        for chain in chains.keys() {
            lay_out(&events, &chains, chain, 1, &mut visited, &mut places);
        }
        Self {
            global,
            run,
            events,
            places,
            at: 0,
            breaks: BTreeSet::new(),
            tools,
        }
    }

    fn execute(&mut self, line: &str) -> Result<(), String> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "step" | "s" => self.go(self.at + 1),
            "next" | "n" => {
                let depth = self.places[self.at].depth;
                let next =
                    (self.at + 1..self.places.len()).find(|&i| self.places[i].depth <= depth);
                self.go(next.unwrap_or(self.places.len()))
            }
            "restart" => self.go(0),
            "back" | "b" => match self.at {
                0 => Err("this is the run's first event".into()),
                at => self.go(at - 1),
            },
            "show" => {
                self.show();
                Ok(())
            }
            "where" => {
                self.print_here();
                Ok(())
            }
            "break" => {
                let found = parse_break(rest.trim())?;
                println!("breakpoint {}", describe(&found));
                self.breaks.insert(found);
                Ok(())
            }
            "breaks" => {
                if self.breaks.is_empty() {
                    println!("no breakpoints");
                }
                for b in &self.breaks {
                    println!("  {}", describe(b));
                }
                Ok(())
            }
            "clear" => {
                self.breaks.clear();
                println!("no breakpoints");
                Ok(())
            }
            "continue" | "c" => {
                if self.breaks.is_empty() {
                    return Err("no breakpoints: set one with `break`".into());
                }
                let hit = (self.at + 1..self.places.len()).find(|&i| self.hits(i));
                match hit {
                    Some(i) => self.go(i),
                    None => {
                        self.at = self.places.len() - 1;
                        println!("the run ended without reaching a breakpoint");
                        self.print_here();
                        Ok(())
                    }
                }
            }
            "fork" => self.fork(rest.trim()),
            "help" => {
                for (command, what) in HELP {
                    println!("  {command:<38} {what}");
                }
                Ok(())
            }
            other => Err(format!(
                "unknown command '{other}'; `help` lists the commands"
            )),
        }
    }

    /// Forks the run at the step whose chain this is (`input`: its new input, as JSON), as
    /// `baton replay BUNDLE --fork-at STEP` does; a run of the store is exported to a bundle
    /// first.
    fn fork(&self, input: &str) -> Result<(), String> {
        let event = self.event(self.at);
        let chain = match &event.kind {
            EventKind::StepStarted { step, .. } => format!("step:{step}"),
            _ => event.chain.to_string(),
        };
        let step = chain
            .strip_prefix("step:")
            .map(|s| s.split(['/', '~', '#']).next().unwrap_or(s))
            .filter(|s| !s.contains(':'))
            .ok_or("move to a step first: a run forks at a step")?;
        let bundle = match std::path::Path::new(&self.run).is_file() {
            true => self.run.clone(),
            false => {
                let path = format!("{}.bundle", self.run);
                let (journal, summary) = super::trace::open_run(&self.global.store(), &self.run)
                    .map_err(|e| e.to_string())?;
                journal
                    .export(&summary.run, std::path::Path::new(&path))
                    .map_err(|e| e.to_string())?;
                println!("run {} exported to {path}", self.run);
                path
            }
        };
        let out = format!("fork-{step}.bundle");
        let mut argv = vec![
            "baton",
            "replay",
            &bundle,
            "--fork-at",
            step,
            "--bundle",
            &out,
        ];
        if !input.is_empty() {
            argv.extend(["--input", input]);
        }
        let mut cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.global = self.global.clone();
        super::run(cli).map_err(|failure| failure.to_string())
    }

    /// Moves to place `to`.
    fn go(&mut self, to: usize) -> Result<(), String> {
        if to >= self.places.len() {
            return Err("this is the run's last event".into());
        }
        self.at = to;
        self.print_here();
        Ok(())
    }

    fn event(&self, place: usize) -> &Event {
        &self.events[self.places[place].event]
    }

    /// Whether a breakpoint stops at place `i`.
    fn hits(&self, i: usize) -> bool {
        let event = self.event(i);
        let chain = event.chain.as_str();
        self.breaks.iter().any(|b| match b {
            Break::Step(id) => {
                matches!(&event.kind, EventKind::StepStarted { step, .. } if step == id)
            }
            Break::Kind(kind) => event.kind.name() == kind,
            Break::Tool(tool) => match &event.kind {
                EventKind::ToolCall { tool: t, .. } => t == tool,
                EventKind::InvocationStarted { .. } => {
                    self.tools.get(chain).is_some_and(|t| t == tool)
                }
                _ => false,
            },
        })
    }

    /// One line: where this is and what the event says.
    fn print_here(&self) {
        let place = &self.places[self.at];
        let event = self.event(self.at);
        println!(
            "[{}/{}] {}{} {:>3} {} {}",
            self.at + 1,
            self.places.len(),
            "  ".repeat(place.depth),
            event.chain,
            event.seq,
            event.kind.name(),
            super::trace::detail(&event.kind)
        );
    }

    /// The event in full; the input and output of the call whose chain it is in; the state
    /// the planner was handed last.
    fn show(&self) {
        let event = self.event(self.at);
        let kind = serde_json::to_value(&event.kind).expect("events serialize");
        println!(
            "event {} of chain {}: {}\n{}",
            event.seq,
            event.chain,
            event.kind.name(),
            serde_json::to_string_pretty(&kind["payload"]).expect("JSON prints")
        );
        let chain: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| e.chain == event.chain)
            .collect();
        for e in &chain {
            match &e.kind {
                EventKind::InvocationStarted { input, .. } => {
                    let tool = self.tools.get(event.chain.as_str());
                    let who = tool.map_or(String::new(), |t| format!(" of '{t}'"));
                    println!("input{who}: {input}");
                }
                EventKind::InvocationEnded { outcome, .. } => {
                    println!("output: {}", outcome_text(outcome));
                }
                _ => {}
            }
        }
        // The state handed to the planner at the decision this is in, or the last before it.
        let state = (0..=self.at).rev().find_map(|i| {
            let e = self.event(i);
            match &e.kind {
                EventKind::InvocationStarted { input, .. } if e.chain.starts_with("step:plan:") => {
                    Some((e.chain.to_string(), input.clone()))
                }
                _ => None,
            }
        });
        match state {
            Some((chain, input)) => {
                let pretty = serde_json::from_str::<serde_json::Value>(&input)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(input);
                println!("planner state ({chain}):\n{pretty}");
            }
            None => println!("planner state: none yet (no decision before this event)"),
        }
    }
}

/// Lays out `chain`'s events at `depth`, each chain it leads to where it does: a step's after
/// the run chain starts it, a nested call's before the caller records it.
fn lay_out(
    events: &[Event],
    chains: &BTreeMap<String, Vec<usize>>,
    chain: &str,
    depth: usize,
    visited: &mut BTreeSet<String>,
    places: &mut Vec<Place>,
) {
    if !visited.insert(chain.to_string()) {
        return;
    }
    for &i in chains.get(chain).map(Vec::as_slice).unwrap_or_default() {
        match &events[i].kind {
            EventKind::ToolCall { chain: callee, .. } if !callee.is_empty() => {
                lay_out(events, chains, callee, depth + 1, visited, places);
                places.push(Place { event: i, depth });
            }
            EventKind::StepStarted { step, .. } => {
                places.push(Place { event: i, depth });
                lay_out(
                    events,
                    chains,
                    &step_chain(step),
                    depth + 1,
                    visited,
                    places,
                );
            }
            _ => places.push(Place { event: i, depth }),
        }
    }
}

fn parse_break(text: &str) -> Result<Break, String> {
    let usage = "write `break step=ID`, `break kind=KIND` (e.g. llm, http, tool_call) or \
                 `break tool=NAME`";
    let (key, value) = text
        .split_once('=')
        .filter(|(_, v)| !v.trim().is_empty())
        .ok_or_else(|| format!("'{text}' is no breakpoint; {usage}"))?;
    let value = value.trim().to_string();
    match key.trim() {
        "step" => Ok(Break::Step(value)),
        "kind" => Ok(Break::Kind(value)),
        "tool" => Ok(Break::Tool(value)),
        other => Err(format!("'{other}' is no kind of breakpoint; {usage}")),
    }
}

fn describe(b: &Break) -> String {
    match b {
        Break::Step(id) => format!("step={id}"),
        Break::Kind(kind) => format!("kind={kind}"),
        Break::Tool(tool) => format!("tool={tool}"),
    }
}

fn outcome_text(outcome: &InvocationOutcome) -> String {
    match outcome {
        InvocationOutcome::Returned { output } => output.clone(),
        InvocationOutcome::ToolError { kind, message } => format!("tool error ({kind}): {message}"),
        InvocationOutcome::Limit { message, .. } => format!("stopped: {message}"),
        InvocationOutcome::Trap { message } => format!("trapped: {message}"),
        InvocationOutcome::Cancelled => "cancelled".into(),
    }
}

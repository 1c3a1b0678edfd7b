//! Command-line parsing and dispatch. Each subcommand lives in its own module; all of them
//! are thin layers over the library.

mod author;
mod cache;
mod cache_eval;
mod call;
mod debug;
mod diff;
mod eval;
mod flows;
mod inspect;
mod keys;
mod llm;
mod log;
mod mcp;
mod policy;
mod registry;
mod repl;
mod replay;
mod run;
mod serve;
mod sign;
pub mod telemetry;
mod trace;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use baton::budget::BudgetLimits;
use baton::journal::store::StoreUrl;
use baton::orchestrator::result::RunStatus;
use baton::policy::{LimitsSpec, Policy, values};
use baton::{Error, Host, HostOptions, exit};
use clap::{ArgAction, Args, Parser, Subcommand};

/// Why a command failed: a library error, or a run that ended without success.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Baton(#[from] Error),
    /// A `baton run` that ended without success (its result is still reported).
    #[error("the run {}: {reason}", status.name().replace('_', " "))]
    RunEnded { status: RunStatus, reason: String },
    /// A command that cannot be carried out as asked.
    #[error("{0}")]
    Usage(String),
}

impl Failure {
    /// The exit status it ends the command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Baton(error) => exit::code(error),
            Failure::Usage(_) => exit::BAD_INPUT,
            Failure::RunEnded { status, .. } => match status {
                RunStatus::BudgetExceeded | RunStatus::MaxSteps => exit::LIMIT,
                RunStatus::Failed | RunStatus::Succeeded | RunStatus::Cancelled => {
                    exit::TOOL_FAILED
                }
            },
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "Run LLM tools, prompts and planners built as WebAssembly components, sandboxed \
             under policy",
    after_help = "Exit status: 0 success; 1 the tool failed; 2 bad usage or input; \
                  3 a sandbox limit or budget was hit; 4 a signature did not verify; 5 a policy problem; 6 a replay diverged or a \
                  journal failed verification."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Policy files layered beneath every `--policy`.
const POLICY_VAR: &str = "BATON_POLICY";

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Policy file (TOML) layered over the built-in policies/default.toml and those in
    /// BATON_POLICY (a list of paths, as PATH); repeat it to layer several, each over the one
    /// before
    #[arg(long, global = true, value_name = "FILE")]
    policy: Vec<PathBuf>,
    /// Directory of the compile cache [default: the user's cache directory]
    #[arg(long, global = true, env = "BATON_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components afresh instead of using the compile cache
    #[arg(long, global = true)]
    no_cache: bool,
    /// Where every run is recorded: sqlite:FILE (or just FILE), or postgres://USER@HOST/DB
    /// for a store many hosts share [default: journal.db in the user's data directory]
    #[arg(long, global = true, env = "BATON_STORE", value_name = "URL", value_parser = StoreUrl::parse)]
    store: Option<StoreUrl>,
    /// Show more of what happens (-v: call statistics, -vv: debug logs); RUST_LOG overrides
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Send traces (a span per run, step, tool call and LLM call) to this OpenTelemetry
    /// collector's OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otlp_endpoint: Option<String>,
}

/// The limits of each call, for the commands that run components (`run`, `call`, `mcp`,
/// `serve`, `worker`) and `inspect`, which shows them; they override the policies.
#[derive(Debug, Default, Args)]
pub struct LimitArgs {
    /// Fuel per call (about one unit per wasm instruction), e.g. 1_000_000
    #[arg(long, value_parser = values::fuel, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Memory per call, e.g. "64 MiB"
    #[arg(long, value_parser = values::memory, value_name = "SIZE")]
    memory: Option<u64>,
    /// Wall-clock deadline per call, e.g. "5s" or "500ms"
    #[arg(long, value_parser = values::timeout, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Largest output (and stdout, and stderr) per call, e.g. "1 MiB"
    #[arg(long, value_parser = values::output, value_name = "SIZE")]
    max_output: Option<u64>,
    /// Largest input a call takes, e.g. "16 MiB" (larger input is refused before it is read
    /// as JSON)
    #[arg(long, value_parser = values::output, value_name = "SIZE")]
    max_input: Option<u64>,
}

impl LimitArgs {
    fn spec(&self) -> LimitsSpec {
        LimitsSpec {
            fuel: self.fuel,
            memory: self.memory,
            timeout: self.timeout,
            output: self.max_output,
            max_input: self.max_input,
        }
    }
}

/// What a run may spend, for the commands whose runs spend it.
#[derive(Debug, Default, Args)]
pub struct BudgetArg {
    /// What a run may spend, e.g. "tokens=20000,usd=0.10,time=60s" (also fuel and calls);
    /// overrides the policy's [budget]
    #[arg(long, value_parser = BudgetLimits::parse, value_name = "LIMITS")]
    pub budget: Option<BudgetLimits>,
}

impl GlobalArgs {
    /// The policy files to layer over the built-in one: BATON_POLICY's (a machine's or a
    /// user's standing policy, such as the trust of their own keys), then `--policy`'s.
    fn policies(&self) -> Vec<PathBuf> {
        let standing = std::env::var_os(POLICY_VAR).unwrap_or_default();
        std::env::split_paths(&standing)
            .filter(|path| !path.as_os_str().is_empty())
            .chain(self.policy.iter().cloned())
            .collect()
    }

    fn store(&self) -> StoreUrl {
        self.store
            .clone()
            .unwrap_or_else(|| StoreUrl::Sqlite(default_journal()))
    }

    /// The SQLite file the server's runs and webhooks (`serve.db`) are kept beside: the
    /// journal, or with a PostgreSQL store the default journal's place.
    fn local_file(&self) -> PathBuf {
        self.store
            .as_ref()
            .and_then(StoreUrl::file)
            .map_or_else(default_journal, PathBuf::from)
    }

    fn host_options(&self, limits: LimitsSpec, budget: Option<BudgetLimits>) -> HostOptions {
        HostOptions {
            policies: self.policies(),
            limits,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(baton::runtime::loader::cache::CompileCache::default_dir)
            },
            store: Some(self.store()),
            accept_unsigned: false,
            budget: budget.unwrap_or_default(),
            no_pure_cache: false,
        }
    }
}

/// journal.db in the user's data directory.
fn default_journal() -> PathBuf {
    data_file("journal.db")
}

/// `name` in Baton's folder of the user's data directory.
fn data_file(name: &str) -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("baton")
        .join(name)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Hand a task to a planner and its tools: run a workflow, in parallel where it can, and
    /// print the result
    Run(run::RunArgs),
    /// Call a tool component with JSON input and print its JSON output
    Call(call::CallArgs),
    /// Serve the tool components in directories to MCP clients over standard input and
    /// output; the session is journaled as one run
    Mcp(mcp::McpArgs),
    /// Serve the OpenAI-compatible gateway and Prometheus metrics over HTTP to the holders
    /// of API keys; every request is journaled as a run
    Serve(serve::ServeArgs),
    /// Run the steps of runs orchestrated elsewhere (`baton run --nats`), pulled from NATS
    /// JetStream and recorded in the shared PostgreSQL store
    Worker(worker::WorkerArgs),
    /// Make, list and revoke the API keys `baton serve` accepts
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show what a component is: world, name, version, schemas, imports, digest, limits
    Inspect(inspect::InspectArgs),
    /// Re-run a recorded run from its bundle and check that every event is identical
    Replay(replay::ReplayArgs),
    /// List, show, verify, export and prune recorded runs
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// The transparency log of signed runs: its checkpoint, and proofs that it only grew
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Check a policy file, or explain what it grants a component
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Ask a model through the policy's routes, budget, retries and breakers
    #[command(subcommand)]
    Llm(llm::LlmCommand),
    /// Show or clear the completion cache
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Print how similar two texts are in meaning (cosine of their embeddings)
    Eval(eval::EvalArgs),
    /// Make an ECDSA P-256 key pair in cosign's formats
    Keygen(sign::KeygenArgs),
    /// Sign a component or policy: FILE.sig (as cosign sign-blob) and FILE.intoto.json
    Sign(sign::SignArgs),
    /// Check a file's signature and attestation against a public key
    Verify(sign::VerifyArgs),
    /// Make a tool, prompt or planner project in Rust, Python or JavaScript
    New(author::new::NewArgs),
    /// Build the project in a directory (made by `baton new`) into NAME.wasm
    Build(author::build::BuildArgs),
    /// Push a component and its signature to an OCI registry
    Push(registry::PushArgs),
    /// Pull a component from an OCI registry into the cache and verify it under the policy
    Pull(registry::PullArgs),
    /// An interactive shell: call tools by name, ask models, look at runs, with history and
    /// completion
    Repl(repl::ReplArgs),
    /// Step through a recorded run as it happened: its events, its steps' inputs and outputs,
    /// the planner's state, breakpoints; all from the record
    Debug(debug::DebugArgs),
}

impl Command {
    /// Whether it forks a recorded run (`replay --fork-at`), which records a new one.
    fn forks(&self) -> bool {
        matches!(self, Command::Replay(args) if args.forks())
    }
}

impl Cli {
    /// Whether the command is a server (`serve`, `worker`, `mcp`) rather than one that prints
    /// its result and ends.
    pub fn serves(&self) -> bool {
        matches!(
            self.command,
            Command::Serve(_) | Command::Worker(_) | Command::Mcp(_)
        )
    }
}

impl Command {
    /// The limits and budget its flags set (none for a command that runs nothing).
    fn limits(&self) -> (LimitsSpec, Option<BudgetLimits>) {
        match self {
            Command::Run(args) => (args.limits.spec(), args.budget.budget),
            Command::Call(args) => (args.limits.spec(), args.budget.budget),
            Command::Mcp(args) => (args.limits.spec(), args.budget.budget),
            Command::Serve(args) => (args.limits.spec(), args.budget.budget),
            Command::Worker(args) => (args.limits.spec(), None),
            Command::Inspect(args) => (args.limits.spec(), None),
            Command::Llm(llm::LlmCommand::Complete(args)) => {
                (LimitsSpec::default(), args.budget.budget)
            }
            _ => (LimitsSpec::default(), None),
        }
    }
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    // An MCP server over stdio has one client: its requests, their calls and the replies are
    // cheapest on one thread, with no hand-off between workers (a running guest still
    // yields every fuel slice, so notifications are heard while it runs).
    let mut builder = match &cli.command {
        Command::Mcp(args) if args.over_stdio() => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| Error::Engine(format!("cannot start the async runtime: {e}")))?;
    let command = match cli.command {
        Command::Trace(command) => {
            let policy = Policy::load_all(&cli.global.policies()).map_err(Error::from)?;
            return Ok(trace::run(&cli.global.store(), &policy, command)?);
        }
        Command::Log(command) => return Ok(log::run(&cli.global.store(), command)?),
        Command::Keys(command) => {
            return keys::run(&cli.global.store(), command);
        }
        Command::Keygen(args) => return Ok(sign::keygen(args)?),
        Command::Verify(args) => return Ok(sign::verify(args, &cli.global.policies())?),
        Command::New(args) => return author::new::run(args),
        Command::Repl(args) => return repl::run(cli.global, args),
        Command::Debug(args) => return debug::run(&cli.global, args),
        Command::Build(args) => return author::build::run(args),
        Command::Push(args) => {
            return runtime.block_on(registry::push(cli.global.cache_dir.clone(), args));
        }
        command => command,
    };
    runtime.block_on(async {
        let (limits, budget) = command.limits();
        let mut options = cli.global.host_options(limits, budget);
        // The completion cache lives beside the journal.
        if !matches!(
            command,
            Command::Run(_)
                | Command::Call(_)
                | Command::Mcp(_)
                | Command::Serve(_)
                | Command::Worker(_)
                | Command::Llm(_)
                | Command::Cache(_)
        ) && !command.forks()
        {
            // Only calls, completions and forks are recorded; a replay compares, and
            // inspecting runs nothing.
            options.store = None;
        }
        // Signing is how a component becomes trusted, so it must load unsigned ones.
        options.accept_unsigned = matches!(command, Command::Sign(_));
        // A workflow brings policies and a budget of its own.
        let (command, plan) = match command {
            Command::Run(args) => (None, Some(run::Plan::new(args, &mut options)?)),
            command => (Some(command), None),
        };
        let mut host = Host::new(options)?;
        let Some(command) = command else {
            return run::run(
                &mut host,
                plan.expect("a run has a plan"),
                &cli.global.store(),
            )
            .await;
        };
        let done = match command {
            Command::Mcp(args) => return mcp::run(host, args).await,
            Command::Serve(args) => {
                let (store, local) = (cli.global.store(), cli.global.local_file());
                return serve::run(host, (&store, &local), args).await;
            }
            Command::Worker(args) => return worker::run(host, &cli.global.store(), args).await,
            Command::Call(args) => call::run(&mut host, args).await,
            Command::Inspect(args) => inspect::run(&host, args).await,
            Command::Replay(args) => replay::run(&host, args).await,
            Command::Policy(command) => policy::run(&host, command).await,
            Command::Llm(command) => llm::run(&host, command).await,
            Command::Eval(args) => eval::run(&host, args).await,
            Command::Cache(cache::CacheCommand::Eval(args)) => {
                return cache_eval::run(&host, args).await;
            }
            Command::Cache(command) => cache::run(&host, command),
            Command::Sign(args) => sign::sign(&host, args).await,
            Command::Pull(args) => registry::pull(&host, args).await,
            Command::Run(_)
            | Command::Trace(_)
            | Command::Keys(_)
            | Command::Log(_)
            | Command::Keygen(_)
            | Command::Verify(_)
            | Command::New(_)
            | Command::Build(_)
            | Command::Push(_)
            | Command::Repl(_)
            | Command::Debug(_) => {
                unreachable!("handled above")
            }
        };
        Ok(done?)
    })
}

/// `text`, or all of standard input when it is "-".
fn text_or_stdin(text: String) -> Result<String, Error> {
    input_or_stdin(text, u64::MAX)
}

/// `text`, or standard input when it is "-", read no further than one byte past `limit` (the
/// caller refuses what is larger, without holding all of it).
fn input_or_stdin(text: String, limit: u64) -> Result<String, Error> {
    if text != "-" {
        return Ok(text);
    }
    let mut read = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), limit.saturating_add(1)),
        &mut read,
    )
    .map_err(|e| Error::InputUnreadable(format!("standard input: {e}")))?;
    Ok(read)
}

/// Prints a JSON document: indented on a terminal, on one line otherwise.
fn print_json(value: &serde_json::Value) {
    use std::io::IsTerminal;
    let text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    println!("{}", text.expect("a serde_json::Value always serializes"));
}

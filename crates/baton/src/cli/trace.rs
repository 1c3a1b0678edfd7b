//! `baton trace`: the recorded runs in the journal.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton::Error;
use baton::budget::Usd;
use baton::journal::event::{
    Event, EventKind, FsAnswer, HttpOutcome, InvocationOutcome, LlmOutcome, ToolCallOutcome,
};
use baton::journal::store::{Journal, RunSummary, Store, StoreError, StoreUrl};
use baton::journal::tlog::Hash;
use baton::journal::verify_run;
use baton::policy::Policy;
use baton::policy::journal::RunSigning;
use baton::runtime::checkpoint::NoteKey;
use baton::runtime::provenance::{self, ProofError, RunFacts, RunSigner};
use baton::runtime::pure_cache::PureCache;
use baton::runtime::stores;
use baton::trust::signing::PublicKey;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// List recorded runs, newest first
    Ls {
        /// How many runs to list
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a run's timeline: steps, events, fuel and durations
    Show {
        /// Run id (a unique prefix is enough), or a bundle file
        run: String,
        /// Print the events as a JSON array
        #[arg(long, conflicts_with = "flows")]
        json: bool,
        /// Print which data reached which sink: every HTTP request, file change, tool call
        /// and model request with the labels its data carried, and every flow refused
        #[arg(long)]
        flows: bool,
    },
    /// Show where two runs diverge, event by event: each chain's events compared in order
    Diff {
        /// The first run: its id (a unique prefix is enough), or a bundle file
        a: String,
        /// The second run
        b: String,
    },
    /// Recompute every hash of a run and report where the chain breaks, if it does
    Verify {
        /// Run id (a unique prefix is enough), or a bundle file
        run: String,
        /// A host's public key (from `baton keygen --host`): the run must be signed by it
        /// (repeat for several hosts)
        #[arg(long, value_name = "HOST.pub")]
        key: Vec<PathBuf>,
        /// A checkpoint of the log you hold (saved with `baton log checkpoint`, or from a
        /// witness): the run must be in the log it describes. A checkpoint of another size
        /// than the bundle's is proved from the log in the store (`--store`)
        #[arg(long, value_name = "FILE", requires = "key")]
        checkpoint: Option<PathBuf>,
    },
    /// Write a run to a self-contained bundle file for `baton replay`
    Export {
        /// Run id (a unique prefix is enough)
        run: String,
        /// The bundle file to write
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Delete runs older than a number of days
    Prune {
        #[arg(long, value_name = "N")]
        days: u64,
    },
}

/// Runs `command` on the store at `store`; `policy` is the host's (a run it did not sign when
/// it ended is signed at export when the policy names a host key).
pub fn run(store: &StoreUrl, policy: &Policy, command: TraceCommand) -> Result<(), Error> {
    match command {
        TraceCommand::Ls { limit, json } => {
            let runs = read_store(store)?.runs(limit)?;
            for run in &runs {
                if json {
                    println!("{}", serde_json::to_string(run).expect("runs serialize"));
                } else {
                    println!(
                        "{}  {}  {:<5} {:<8} {:>4} events",
                        run.run, run.started_at, run.command, run.status, run.events
                    );
                }
            }
            if runs.is_empty() && !json {
                println!("no runs recorded in {store}");
            }
            Ok(())
        }
        TraceCommand::Diff { a, b } => {
            let (journal_a, run_a) = open_run(store, &a)?;
            let (journal_b, run_b) = open_run(store, &b)?;
            let events_a = journal_a.events(&run_a.run)?;
            let events_b = journal_b.events(&run_b.run)?;
            super::diff::print((&run_a, &events_a), (&run_b, &events_b));
            Ok(())
        }
        TraceCommand::Show { run, json, flows } => {
            let (journal, summary) = open_run(store, &run)?;
            let events = journal.events(&summary.run)?;
            if flows {
                super::flows::print(&events);
            } else if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&events).expect("serialize")
                );
            } else {
                print_timeline(&summary, &events);
            }
            Ok(())
        }
        TraceCommand::Verify {
            run,
            key,
            checkpoint,
        } => {
            let (journal, summary) = open_run(store, &run)?;
            let path = PathBuf::from(journal.location());
            let events = journal.events(&summary.run)?;
            let verified = verify_run(&events).map_err(|source| Error::Tampered {
                path: path.clone(),
                source,
            })?;
            let blobs = journal.all_blobs(&summary.run)?;
            provenance::check_blobs(&blobs).map_err(|reason| Error::TamperedBlob {
                path: path.clone(),
                reason,
            })?;
            let envelope = journal.envelope(&summary.run)?;
            let signed = match (key.is_empty(), &envelope) {
                (true, Some(_)) => "signed (give --key HOST.pub to check the signature)".into(),
                (true, None) => "unsigned".into(),
                (false, _) => {
                    let (keys, note_keys) = host_keys(&key)?;
                    let facts = RunFacts::of(&summary.run, &verified.root, &events, &blobs);
                    let unproven = |source| Error::Unproven {
                        path: path.clone(),
                        source,
                    };
                    let by =
                        provenance::check(envelope.as_deref(), &keys, &facts).map_err(unproven)?;
                    let inclusion = match &envelope {
                        Some(_) => journal.log().inclusion(&summary.run)?,
                        None => None,
                    };
                    let envelope = envelope.as_deref().unwrap_or_default();
                    match (inclusion, checkpoint) {
                        (Some(inclusion), None) => {
                            let at = provenance::check_inclusion(envelope, &inclusion, &note_keys)
                                .map_err(unproven)?;
                            format!("signed by {by}, in its transparency log ({at})")
                        }
                        (Some(inclusion), Some(held)) => {
                            let text = std::fs::read_to_string(&held).map_err(|e| Error::Key {
                                path: held.clone(),
                                reason: format!("cannot read the checkpoint: {e}"),
                            })?;
                            let consistency =
                                |old, new| log_consistency(store, &run, journal.as_ref(), old, new);
                            let at = provenance::check_in_checkpoint(
                                envelope,
                                &inclusion,
                                &text,
                                &note_keys,
                                consistency,
                            )
                            .map_err(unproven)?;
                            format!(
                                "signed by {by}, in the checkpoint {} ({at})",
                                held.display()
                            )
                        }
                        (None, Some(_)) => {
                            return Err(unproven(ProofError::NotInLog(
                                "it is in no transparency log, so in no checkpoint of one".into(),
                            )));
                        }
                        (None, None) => format!("signed by {by}, not in a transparency log"),
                    }
                }
            };
            let state = if verified.complete {
                "complete"
            } else {
                "incomplete (the run did not finish)"
            };
            println!(
                "verified: {} events, root {}, {state}, {} blobs match their digests, {signed}",
                verified.events,
                verified.root,
                blobs.len()
            );
            Ok(())
        }
        TraceCommand::Export { run, output } => {
            let (journal, summary) = open_run(store, &run)?;
            if let Some(signing) = policy.run_signing()
                && journal.envelope(&summary.run)?.is_none()
                && summary.status != "running"
            {
                sign_now(store, signing, &summary.run)?;
            }
            journal.export(&summary.run, &output)?;
            println!("wrote {} (run {})", output.display(), summary.run);
            Ok(())
        }
        TraceCommand::Prune { days } => {
            let (journal, beside) = stores::open_for_host(store, None)?;
            let cutoff = SystemTime::now() - Duration::from_secs(days * 86_400);
            let before = cutoff
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
            let removed = journal.prune(&cutoff)?;
            // The cache of pure calls holds copies of those runs' events: they go too.
            let pure = PureCache::new(&beside)
                .prune(before)
                .map_err(|e| StoreError::Server {
                    location: journal.location(),
                    reason: format!("cannot prune the cache of pure calls: {e}"),
                })?;
            let runs = if removed == 1 { "run" } else { "runs" };
            let calls = if pure == 1 { "call" } else { "calls" };
            println!(
                "removed {removed} {runs} started before {cutoff}, and {pure} cached pure {calls}"
            );
            Ok(())
        }
    }
}

/// Signs the ended run `run` of the store at `store` with the host key `signing` names.
fn sign_now(store: &StoreUrl, signing: &RunSigning, run: &str) -> Result<(), Error> {
    let (journal, _) = stores::open_for_host(store, None)?;
    let signer = RunSigner::open(signing, journal.clone()).map_err(Error::TrustConfig)?;
    let recorder = journal.recorder().cloned().ok_or_else(|| {
        Error::TrustConfig(format!("cannot sign run {run}: the store is not writable"))
    })?;
    let signed = signer
        .sign(&recorder, run)
        .and_then(|()| recorder.flush().map_err(|e| e.to_string()));
    // The store's writer stops once no recorder is left: closing the store waits for it.
    drop(recorder);
    signed.map_err(|reason| Error::TrustConfig(format!("cannot sign run {run}: {reason}")))
}

/// The proof that the log of `new` runs extends the log of `old`, from the log that holds
/// `run`: the store's, or for a bundle (which carries only its own proof), the log in `store`.
fn log_consistency(
    store: &StoreUrl,
    run: &str,
    journal: &dyn Store,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, String> {
    let hint = |e: &dyn std::fmt::Display| {
        format!(
            "{e} (give --store the store that keeps the log, or a checkpoint of the bundle's size)"
        )
    };
    if Path::new(run).is_file() {
        let kept = read_store(store).map_err(|e| hint(&e))?;
        kept.log().log_consistency(old, new).map_err(|e| hint(&e))
    } else {
        journal
            .log()
            .log_consistency(old, new)
            .map_err(|e| hint(&e))
    }
}

/// The host public keys at `paths`, named by their file names: as run signatures and as
/// log checkpoints are checked with them.
pub(super) fn host_keys(paths: &[PathBuf]) -> Result<HostKeys, Error> {
    let mut keys = (Vec::new(), Vec::new());
    for path in paths {
        let failed = |reason: String| Error::Key {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        let key = PublicKey::parse(&text, &path.display().to_string())
            .map_err(|e| failed(e.to_string()))?;
        keys.0.push((name.clone(), key));
        keys.1.push(NoteKey::parse(&name, &text).map_err(failed)?);
    }
    Ok(keys)
}

pub(super) type HostKeys = (Vec<(String, PublicKey)>, Vec<NoteKey>);

fn read_store(store: &StoreUrl) -> Result<Box<dyn Store>, Error> {
    Ok(stores::open_existing(store)?)
}

/// A run named by id (or unique prefix) in the store, or the single run of a bundle file.
pub(super) fn open_run(store: &StoreUrl, run: &str) -> Result<(Box<dyn Store>, RunSummary), Error> {
    let path = Path::new(run);
    let journal = if path.is_file() {
        Box::new(Journal::open_read_only(path)?)
    } else {
        read_store(store)?
    };
    let found = if path.is_file() {
        journal.runs(1)?.into_iter().next()
    } else {
        journal.find_run(run)?
    };
    let summary = found.ok_or_else(|| Error::NoSuchRun {
        run: run.into(),
        store: journal.location(),
    })?;
    Ok((journal, summary))
}

fn print_timeline(run: &RunSummary, events: &[Event]) {
    println!(
        "run {}  {}  {}  {}",
        run.run, run.started_at, run.command, run.status
    );
    let mut chain = "";
    for event in events {
        if event.chain != chain {
            chain = &event.chain;
            println!("{chain}");
        }
        println!(
            "  {:>4}  {:<18} {}",
            event.seq,
            event.kind.name(),
            detail(&event.kind)
        );
    }
    if let Some(root) = &run.root {
        println!("root {root}");
    }
}

/// One line of what an event says.
pub(super) fn detail(kind: &EventKind) -> String {
    let cut = |s: &str| baton::text::truncate(s, 80);
    match kind {
        EventKind::RunStarted {
            baton, started_at, ..
        } => format!("baton {baton} at {started_at}"),
        EventKind::Workflow {
            planner,
            prompts,
            task,
            tools,
            ..
        } => format!(
            "planner {planner}, {} tools, {} prompts, task {}",
            tools.len(),
            prompts.len(),
            cut(task)
        ),
        EventKind::StepStarted { step, tool, digest } => format!("{step}: {tool} {digest}"),
        EventKind::InvocationStarted { input, limits, .. } => format!(
            "input {} (fuel {}, memory {}, timeout {} ms)",
            cut(input),
            limits.fuel,
            baton::limits::size(limits.memory),
            limits.timeout_ms
        ),
        EventKind::WallClock { seconds, nanos } | EventKind::MonotonicClock { seconds, nanos } => {
            format!("{seconds}.{nanos:09}")
        }
        EventKind::Random { source, bytes } => format!("{source:?} {} bytes", bytes.len() / 2),
        EventKind::RandomSeed { value } => value.clone(),
        EventKind::Environment { vars } => vars
            .iter()
            .map(|(name, value)| format!("{name}={}", cut(value)))
            .collect::<Vec<_>>()
            .join(" "),
        EventKind::Log { level, message } => format!("{level}: {}", cut(message)),
        EventKind::Denied {
            capability,
            message,
        } => format!("{capability}: {}", cut(message)),
        EventKind::Labels { labels, reason } => {
            let names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
            match names.is_empty() {
                true => format!("public ({reason})"),
                false => format!("{} ({reason})", names.join(", ")),
            }
        }
        EventKind::Http { request, outcome } => {
            let outcome = match outcome {
                HttpOutcome::Response {
                    status,
                    size,
                    address,
                    ..
                } => format!("{status}, {size} bytes from {address}"),
                HttpOutcome::Failed { code, message } => format!("{code}: {}", cut(message)),
            };
            format!("{} {} -> {outcome}", request.method, request.url)
        }
        EventKind::Fs {
            answer,
            args,
            op,
            path,
        } => {
            let answer = match answer {
                FsAnswer::Bytes { data, end } => {
                    let n = baton::effects::http::decode_body(data).len();
                    format!("{n} bytes{}", if *end { ", end" } else { "" })
                }
                FsAnswer::Count { count } => format!("{count} bytes written"),
                FsAnswer::Done => "done".into(),
                FsAnswer::Entries { entries } => format!("{} entries", entries.len()),
                FsAnswer::Failed { code } => format!("error {code}"),
                FsAnswer::Opened { node } => format!("opened {node}"),
                FsAnswer::Stat { stat } => format!("{}, {} bytes", stat.node, stat.size),
                FsAnswer::Text { text } => cut(text),
            };
            format!("{op} {path} {} -> {answer}", cut(args))
        }
        EventKind::Llm {
            attempts,
            committed,
            outcome,
            request,
            source,
            ..
        } => {
            let outcome = match outcome {
                LlmOutcome::Completed {
                    model,
                    input_tokens,
                    output_tokens,
                    text,
                    ..
                } => format!(
                    "{model}: {input_tokens} + {output_tokens} tokens, {} -> {}",
                    Usd(committed.nano_usd),
                    cut(text)
                ),
                LlmOutcome::Failed { kind, message } => format!("{kind}: {}", cut(message)),
            };
            let retries = attempts.len().saturating_sub(1);
            let how = match (source.as_str(), retries) {
                ("provider", 0) | ("", _) => String::new(),
                ("provider", n) => format!(" after {n} retries"),
                (other, _) => format!(" from {other}"),
            };
            format!("{}{how}: {outcome}", request.model)
        }
        EventKind::LlmEmbed {
            model,
            dims,
            error,
            vectors,
            ..
        } => match error.is_empty() {
            true => {
                let count = baton::effects::http::decode_body(vectors).len() / 4;
                let texts = count / (*dims).max(1) as usize;
                format!("{model}: {texts} texts, {dims} dimensions")
            }
            false => format!("{model}: {}", cut(error)),
        },
        EventKind::LlmTokens {
            model,
            count,
            error,
            ..
        } => match error.is_empty() {
            true => format!("{model}: {count} tokens"),
            false => format!("{model}: {}", cut(error)),
        },
        EventKind::Verified {
            signer,
            attestation,
            ..
        } => match attestation.is_empty() {
            true => format!("signed by {signer}"),
            false => format!("signed by {signer}; attestation {attestation}"),
        },
        EventKind::ToolCall {
            tool,
            chain,
            outcome,
            ..
        } => {
            let outcome = match outcome {
                ToolCallOutcome::Returned { output } => format!("returned {}", cut(output)),
                ToolCallOutcome::Failed { kind, message } => format!("{kind}: {}", cut(message)),
            };
            match chain.is_empty() {
                true => format!("{tool} -> {outcome}"),
                false => format!("{tool} ({chain}) -> {outcome}"),
            }
        }
        EventKind::InvocationEnded {
            outcome,
            fuel,
            peak_memory,
            duration_us,
        } => {
            let outcome = match outcome {
                InvocationOutcome::Returned { output } => format!("returned {}", cut(output)),
                InvocationOutcome::ToolError { kind, message } => {
                    format!("tool error ({kind}): {}", cut(message))
                }
                InvocationOutcome::Limit { message, .. } => message.clone(),
                InvocationOutcome::Trap { message } => cut(message),
                InvocationOutcome::Cancelled => "cancelled by its caller".into(),
            };
            format!(
                "{outcome}; {fuel} fuel, {} peak memory, {:.2} ms",
                baton::limits::size(*peak_memory),
                *duration_us as f64 / 1000.0
            )
        }
        EventKind::CacheHit { run, .. } => {
            format!("served from the cache of pure calls, as run {run} returned it:")
        }
        EventKind::Resumed {
            chain, output, run, ..
        } => format!("taken over from run {run} ({chain}): {}", cut(output)),
        EventKind::StepEnded { step, root, events } => {
            format!("{step}: {events} events, root {root}")
        }
        EventKind::RunEnded { status } => status.clone(),
    }
}

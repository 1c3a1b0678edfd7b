//! Models used outside any tool. A completion (`baton llm complete`) takes the same routing,
//! budget, retries and breaker as a plugin's calls, journaled as a run of its own so that
//! what it cost is on record. Embeddings (`baton eval`) are computed on this machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use baton_budget::{BudgetReport, Ledger};
use baton_effects::NoSecrets;
use baton_journal::event::{EventKind, LlmOutcome, LlmRequest, RUN_CHAIN, step_chain};
use baton_journal::store::Journal;
use baton_llm::Requester;
use baton_llm::cache::{Cache, Hit};
use baton_llm::embedding::cosine;
use baton_policy::llm::CacheSettings;

use crate::error::Error;
use crate::host::{Host, RunStart};
use crate::models;
use crate::recorded::{RecordedRun, ReplayReport};
use crate::run::{RunJournal, RunRecord};

/// The step a completion is journaled as, and the `tool` its step records.
const STEP: &str = "complete";
pub const COMPLETION_TOOL: &str = "llm";

/// The step an embedding request is journaled as, and the `tool` its step records.
const EMBED_STEP: &str = "embed";
pub const EMBEDDING_TOOL: &str = "embed";

/// The blob role of the texts an embedding run embedded (its events record only their
/// digest), so that its bundle can replay it.
pub const TEXTS_BLOB: &str = "texts";

/// Who asks for a model outside any tool, and whose budget pays.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// The `command` the run is recorded with.
    pub command: &'a str,
    /// Idempotency keys are scoped by it.
    pub caller: &'a str,
    /// The ledger the run's spend also counts against (an API key's), if any.
    pub account: Option<&'a Arc<Ledger>>,
}

impl Asker<'static> {
    /// `baton llm complete`.
    pub const CLI: Asker<'static> = Asker {
        command: "llm",
        caller: "cli",
        account: None,
    };
}

/// A completion and its run.
#[derive(Debug)]
pub struct CompletionRun {
    /// `None` when the host has no journal.
    pub run: Option<RunRecord>,
    pub budget: BudgetReport,
    pub outcome: LlmOutcome,
    /// Where the answer came from (see `models::Answer`).
    pub source: String,
}

/// An embedding request and its run.
#[derive(Debug)]
pub struct EmbeddingRun {
    /// `None` when the host has no journal.
    pub run: Option<RunRecord>,
    /// One unit-length vector per text, or why there are none.
    pub vectors: Result<Vec<Vec<f32>>, Error>,
}

impl CompletionRun {
    /// The outcome as a result: a failure becomes `Error::Llm`.
    pub fn result(&self) -> Result<&LlmOutcome, Error> {
        match &self.outcome {
            LlmOutcome::Failed { kind, message } => Err(Error::Llm {
                kind: kind.clone(),
                message: message.clone(),
            }),
            completed => Ok(completed),
        }
    }
}

/// A model the command line asked for that could not answer.
fn unavailable(message: String) -> Error {
    Error::Llm {
        kind: "unavailable".into(),
        message,
    }
}

impl Host {
    /// One unit-length embedding per text, by the policy's embedding model `model`.
    pub async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        self.llm.embed(model, texts).await.map_err(unavailable)
    }

    /// The completion cache in front of the providers.
    pub fn cache(&self) -> &Cache {
        self.llm.cache()
    }

    /// The policy's `[cache]` settings.
    pub fn cache_settings(&self) -> &CacheSettings {
        self.llm.cache_settings()
    }

    /// How the cache under `settings` answers `asked` once it holds an answer to `stored`
    /// (see `Llm::cache_trial`): the hit, or `None` for a miss.
    pub async fn cache_trial(
        &self,
        settings: &CacheSettings,
        stored: &str,
        asked: &str,
    ) -> Result<Option<Hit>, Error> {
        self.llm
            .cache_trial(settings, stored, asked)
            .await
            .map_err(unavailable)
    }

    /// The cosine similarity of `a` and `b` by the embedding model `model`.
    pub async fn similarity(&self, model: &str, a: &str, b: &str) -> Result<f32, Error> {
        let vectors = self.embed(model, &[a.to_string(), b.to_string()]).await?;
        Ok(cosine(&vectors[0], &vectors[1]))
    }

    /// Sends `request` through the policy's routes under the host's budget.
    pub async fn complete(&self, request: LlmRequest) -> CompletionRun {
        self.complete_as(request, Asker::CLI).await
    }

    /// Sends `request` through the policy's routes for `asker`, journaled as a run of its
    /// own, under the host's budget and the asker's account.
    pub async fn complete_as(&self, request: LlmRequest, asker: Asker<'_>) -> CompletionRun {
        let (mut run, ledger) = self.start_run_as(RunStart {
            account: asker.account,
            ..RunStart::new(asker.command)
        });
        let gate = run
            .start_step(STEP, COMPLETION_TOOL, "", Arc::new(NoSecrets))
            .expect("a live run records, it cannot diverge");
        let requester = Requester {
            name: asker.caller,
            digest: "",
            cache: None,
        };
        let answer = models::answer(&*gate, &self.llm, &requester, request, &ledger).await;
        let _ = run.end_step(STEP, &*gate);
        let status = match &answer.outcome {
            LlmOutcome::Completed { .. } => "ok",
            LlmOutcome::Failed { .. } => "failed",
        };
        let record = run.finish(status).ok();
        CompletionRun {
            run: record.filter(|_| self.recording()),
            budget: ledger.report(),
            outcome: answer.outcome,
            source: answer.source,
        }
    }

    /// Embeds `texts` with the policy's embedding model `model` for `asker`, journaled as a
    /// run of its own (with the texts, so that its bundle replays).
    pub async fn embed_as(&self, model: &str, texts: &[String], asker: Asker<'_>) -> EmbeddingRun {
        let (mut run, _) = self.start_run_as(RunStart {
            account: asker.account,
            ..RunStart::new(asker.command)
        });
        let json: Arc<[u8]> = serde_json::to_vec(texts).expect("strings serialize").into();
        let digest = baton_effects::http::encode_body(&json).0;
        run.blob(TEXTS_BLOB, &digest, &json);
        let gate = run
            .start_step(EMBED_STEP, EMBEDDING_TOOL, "", Arc::new(NoSecrets))
            .expect("a live run records, it cannot diverge");
        let vectors = models::embed(&*gate, &self.llm, model, texts)
            .await
            .map_err(|message| Error::Llm {
                kind: "unavailable".into(),
                message,
            });
        let _ = run.end_step(EMBED_STEP, &*gate);
        let record = run
            .finish(if vectors.is_ok() { "ok" } else { "failed" })
            .ok();
        EmbeddingRun {
            run: record.filter(|_| self.recording()),
            vectors,
        }
    }
}

/// What a replayed model request reproduced.
#[derive(Debug)]
pub enum ModelReply {
    Completion(LlmOutcome),
    /// The vectors' count, or why there were none.
    Embedding(Result<usize, String>),
}

impl RecordedRun {
    /// Whether it records only model requests (`baton llm complete`, the gateway).
    pub fn is_models(&self) -> bool {
        let mut tools = self.events.iter().filter_map(|e| match &e.kind {
            EventKind::StepStarted { tool, .. } if e.chain == RUN_CHAIN => Some(tool.as_str()),
            _ => None,
        });
        tools.clone().next().is_some()
            && tools.all(|tool| tool == COMPLETION_TOOL || tool == EMBEDDING_TOOL)
    }
}

impl Host {
    /// Replays a recorded run of model requests: each request is asked again through a
    /// gate that serves the recorded answer, and every event is compared.
    pub async fn replay_models(
        &self,
        recorded: RecordedRun,
    ) -> Result<ReplayReport<Vec<ModelReply>>, Error> {
        let journal = Journal::open_read_only(&recorded.bundle)?;
        let texts: BTreeMap<String, Vec<u8>> = journal
            .blobs(&recorded.events[0].run, TEXTS_BLOB)?
            .into_iter()
            .collect();
        let mut run = RunJournal::replay(&recorded.events, None, false);
        let ledger = Ledger::run(Default::default());
        let requester = Requester {
            name: "replay",
            digest: "",
            cache: None,
        };
        let mut replies = Vec::new();
        let steps = recorded.events.iter().filter_map(|e| match &e.kind {
            EventKind::StepStarted { step, tool, .. } if e.chain == RUN_CHAIN => Some((step, tool)),
            _ => None,
        });
        for (step, tool) in steps {
            let chain = step_chain(step);
            let request = recorded
                .events
                .iter()
                .filter(|e| e.chain == chain)
                .find_map(|e| match &e.kind {
                    EventKind::Llm { request, .. } if tool == COMPLETION_TOOL => {
                        Some(Ok(request.clone()))
                    }
                    EventKind::LlmEmbed {
                        model,
                        texts_digest,
                        ..
                    } if tool == EMBEDDING_TOOL => Some(Err((model.clone(), texts_digest))),
                    _ => None,
                })
                .ok_or_else(|| recorded.invalid(format!("its step '{step}' records no request")))?;
            let gate = run
                .start_step(step, tool, "", Arc::new(NoSecrets))
                .map_err(Error::Diverged)?;
            let reply = match request {
                Ok(request) => ModelReply::Completion(
                    models::complete(&*gate, &self.llm, &requester, request, &ledger).await,
                ),
                Err((model, digest)) => {
                    let bytes = texts.get(digest).ok_or_else(|| {
                        recorded.invalid(format!("it lacks the texts step '{step}' embedded"))
                    })?;
                    let texts: Vec<String> = serde_json::from_slice(bytes).map_err(|e| {
                        recorded.invalid(format!("the texts of step '{step}': {e}"))
                    })?;
                    let vectors = models::embed(&*gate, &self.llm, &model, &texts).await;
                    ModelReply::Embedding(vectors.map(|v| v.len()))
                }
            };
            run.end_step(step, &*gate).map_err(Error::Diverged)?;
            replies.push(reply);
        }
        let failed = replies.iter().any(|r| {
            matches!(
                r,
                ModelReply::Completion(LlmOutcome::Failed { .. }) | ModelReply::Embedding(Err(_))
            )
        });
        let record = run
            .finish(if failed { "failed" } else { "ok" })
            .map_err(Error::Diverged)?;
        Ok(ReplayReport {
            run: record.id,
            events: record.events,
            root: record.root.get()?,
            outcome: replies,
            replaced: None,
        })
    }
}

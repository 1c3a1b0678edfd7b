//! Models used outside any tool. A completion (`baton llm complete`) takes the same routing,
//! budget, retries and breaker as a plugin's calls, journaled as a run of its own so that
//! what it cost is on record. Embeddings (`baton eval`) are computed on this machine.

use std::sync::Arc;

use baton_budget::BudgetReport;
use baton_effects::NoSecrets;
use baton_journal::event::{LlmOutcome, LlmRequest};
use baton_llm::Requester;
use baton_llm::cache::Cache;
use baton_llm::embedding::cosine;

use crate::error::Error;
use crate::host::Host;
use crate::models;
use crate::run::RunRecord;

/// The step the completion is journaled as.
const STEP: &str = "complete";

/// Idempotency keys given on the command line are scoped to this caller.
const CLI_CALLER: &str = "cli";

/// A completion and its run.
#[derive(Debug)]
pub struct CompletionRun {
    /// `None` when the host has no journal.
    pub run: Option<RunRecord>,
    pub budget: BudgetReport,
    pub outcome: LlmOutcome,
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

impl Host {
    /// One unit-length embedding per text, by the policy's embedding model `model`.
    pub async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, Error> {
        self.llm
            .embed(model, texts)
            .await
            .map_err(|message| Error::Llm {
                kind: "unavailable".into(),
                message,
            })
    }

    /// The completion cache in front of the providers.
    pub fn cache(&self) -> &Cache {
        self.llm.cache()
    }

    /// The cosine similarity of `a` and `b` by the embedding model `model`.
    pub async fn similarity(&self, model: &str, a: &str, b: &str) -> Result<f32, Error> {
        let vectors = self.embed(model, &[a.to_string(), b.to_string()]).await?;
        Ok(cosine(&vectors[0], &vectors[1]))
    }

    /// Sends `request` through the policy's routes under the host's budget.
    pub async fn complete(&self, request: LlmRequest) -> CompletionRun {
        let (mut run, ledger) = self.start_run("llm");
        let gate = run
            .start_step(STEP, "llm", "", Arc::new(NoSecrets))
            .expect("a live run records, it cannot diverge");
        let requester = Requester {
            name: CLI_CALLER,
            digest: "",
            cache: None,
        };
        let outcome = models::complete(&*gate, &self.llm, &requester, request, &ledger).await;
        let _ = run.end_step(STEP, &*gate);
        let status = match &outcome {
            LlmOutcome::Completed { .. } => "ok",
            LlmOutcome::Failed { .. } => "failed",
        };
        let record = run.finish(status).ok();
        CompletionRun {
            run: record.filter(|_| self.recording()),
            budget: ledger.report(),
            outcome,
        }
    }
}

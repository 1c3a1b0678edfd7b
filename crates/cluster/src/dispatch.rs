//! The orchestrator's side: each step published to the work queue once, its outcome awaited
//! on the run's outcome subject (or found in the store, should that message be missed).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use baton_budget::{Account, BudgetLimits};
use baton_orchestrator::remote::{Dispatch, StepOutcome, StepRequest};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::connect::{Cluster, ClusterError};
use crate::names;

/// How often a step waiting for its outcome looks for it in the store too.
const LOOK_IN_STORE_EVERY: Duration = Duration::from_secs(5);

/// A step's outcome as published on the run's outcome subject (and kept in the store).
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub id: String,
    pub outcome: Result<StepOutcome, String>,
}

type Waiting = Arc<Mutex<HashMap<(String, String), oneshot::Sender<Result<StepOutcome, String>>>>>;

/// Sends a run's steps to the cluster's workers.
pub struct NatsDispatch(Arc<Inner>);

impl std::fmt::Debug for NatsDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsDispatch({})", self.0.cluster.url)
    }
}

struct Inner {
    cluster: Cluster,
    waiting: Waiting,
    /// Runs whose outcome subject is listened to.
    listening: tokio::sync::Mutex<HashSet<String>>,
}

impl NatsDispatch {
    /// A dispatch through `cluster`; fails when no worker answers the roll call, rather than
    /// leaving the run's steps waiting for one.
    pub async fn new(cluster: Cluster) -> Result<Arc<Self>, ClusterError> {
        // Workers starting at this moment may miss one roll call; three are asked.
        let mut workers = Vec::new();
        for _ in 0..3 {
            workers = cluster.workers().await?;
            if !workers.is_empty() {
                break;
            }
        }
        if workers.is_empty() {
            return Err(ClusterError::Nats {
                url: cluster.url.clone(),
                reason: "no worker is running; start one with `baton worker --nats URL --store \
                         postgres://…`"
                    .into(),
            });
        }
        let capacity: usize = workers.iter().map(|w| w.capacity).sum();
        tracing::info!(
            "{} workers with room for {capacity} steps at once",
            workers.len()
        );
        Ok(Arc::new(Self(Arc::new(Inner {
            cluster,
            waiting: Arc::default(),
            listening: tokio::sync::Mutex::default(),
        }))))
    }
}

impl Inner {
    /// Listens to run `run`'s outcome subject (once), handing each outcome to its step.
    async fn listen(&self, run: &str) -> Result<String, String> {
        let subject = format!("{}.{run}", names::OUTCOMES);
        let mut listening = self.listening.lock().await;
        if listening.contains(run) {
            return Ok(subject);
        }
        let mut outcomes = self
            .cluster
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| format!("cannot listen for outcomes on NATS: {e}"))?;
        let (waiting, run_id) = (self.waiting.clone(), run.to_string());
        tokio::spawn(async move {
            while let Some(message) = outcomes.next().await {
                let Ok(answer) = serde_json::from_slice::<Answer>(&message.payload) else {
                    tracing::warn!("an outcome of run {run_id} is not readable");
                    continue;
                };
                let sender = lock(&waiting).remove(&(run_id.clone(), answer.id));
                if let Some(sender) = sender {
                    let _ = sender.send(answer.outcome);
                }
            }
        });
        listening.insert(run.into());
        Ok(subject)
    }

    async fn dispatch(&self, request: StepRequest) -> Result<StepOutcome, String> {
        let reply = self.listen(&request.run).await?;
        let key = (request.run.clone(), request.id.clone());
        let (tx, mut rx) = oneshot::channel();
        lock(&self.waiting).insert(key.clone(), tx);
        let mut headers = HeaderMap::new();
        // The same step published twice (within the stream's window) is kept once.
        headers.insert("Nats-Msg-Id", request.owner().as_str());
        headers.insert(names::REPLY, reply.as_str());
        let payload = serde_json::to_vec(&request).expect("a step request serializes");
        let published = self
            .cluster
            .jetstream
            .publish_with_headers(names::STEPS, headers, payload.into())
            .await
            .map_err(|e| format!("cannot send the step to the workers: {e}"))?;
        published
            .await
            .map_err(|e| format!("the workers' stream did not take the step: {e}"))?;
        let mut look = tokio::time::interval(LOOK_IN_STORE_EVERY);
        look.tick().await;
        loop {
            tokio::select! {
                outcome = &mut rx => {
                    return outcome.map_err(|_| "the outcome listener stopped".to_string())?;
                }
                _ = look.tick() => {
                    let store = self.cluster.store.clone();
                    let (run, id) = key.clone();
                    let saved = tokio::task::spawn_blocking(move || store.step_outcome(&run, &id))
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Ok(Some(saved)) = saved
                        && let Ok(outcome) = serde_json::from_str(&saved)
                    {
                        lock(&self.waiting).remove(&key);
                        return outcome;
                    }
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispatch for NatsDispatch {
    fn account(&self, run: &str, limits: BudgetLimits) -> Result<Arc<dyn Account>, String> {
        let store = &self.0.cluster.store;
        store
            .database()
            .open_ledger(run, limits)
            .map_err(|e| e.to_string())?;
        Ok(store
            .database()
            .account(run, &format!("{run}/orchestrator")))
    }

    fn run_step(
        &self,
        request: StepRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<StepOutcome, String>> + Send>> {
        let inner = self.0.clone();
        Box::pin(async move { inner.dispatch(request).await })
    }
}

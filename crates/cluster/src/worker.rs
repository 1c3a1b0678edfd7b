//! The worker's side: pull a step when there is room, run it, commit its chains, record its
//! outcome, answer, then acknowledge. While a step runs the worker tells JetStream it is
//! still working on it; if the worker dies, JetStream delivers the step again after the ack
//! wait, to whichever worker asks next.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message, consumer};
use baton_budget::{BudgetLimits, Spend};
use baton_journal::store::StoreError;
use baton_orchestrator::remote::{SharedLedger, StepRequest, StepRunner};
use baton_postgres::{LedgerState, PgStore};
use baton_runtime::{Error, Host};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::connect::{Advert, Cluster, ClusterError};
use crate::dispatch::Answer;
use crate::names;

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name, as it answers the roll call and outcomes report it.
    pub name: String,
    /// Steps it runs at once.
    pub capacity: usize,
    /// The consumer's ack wait: the worker renews its hold on a running step at a third of it.
    pub ack_wait: Duration,
}

/// Runs steps from `cluster` on `host` until `stop` is cancelled, then finishes the steps in
/// flight (each acknowledged as usual) and returns.
pub async fn work(
    cluster: Cluster,
    host: Arc<Host>,
    options: WorkerOptions,
    stop: CancellationToken,
) -> Result<(), ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::Nats {
        url: cluster.url.clone(),
        reason: e.to_string(),
    };
    let consumer: consumer::PullConsumer = cluster
        .jetstream
        .get_stream(names::STREAM)
        .await
        .map_err(|e| failed(&e))?
        .get_consumer(names::CONSUMER)
        .await
        .map_err(|e| failed(&e))?;
    let runner = Arc::new(StepRunner::new(host, options.name.clone()));
    let slots = Arc::new(Semaphore::new(options.capacity));
    let mut roll_calls = cluster
        .client
        .subscribe(names::WORKERS)
        .await
        .map_err(|e| failed(&e))?;
    // Subscribed before it says it is ready: a roll call from then on finds it.
    cluster.client.flush().await.map_err(|e| failed(&e))?;
    let answering = {
        let (cluster, options, slots) = (cluster.clone(), options.clone(), slots.clone());
        tokio::spawn(async move {
            while let Some(call) = roll_calls.next().await {
                let Some(reply) = call.reply else { continue };
                let advert = Advert {
                    name: options.name.clone(),
                    capacity: options.capacity,
                    running: options.capacity - slots.available_permits(),
                };
                let value = serde_json::to_vec(&advert).expect("an advert serializes");
                let _ = cluster.client.publish(reply, value.into()).await;
            }
        })
    };
    eprintln!(
        "baton worker {}: ready for {} steps at once",
        options.name, options.capacity
    );
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slots stay open"),
            () = stop.cancelled() => break,
        };
        let fetched = tokio::select! {
            fetched = consumer.fetch().max_messages(1).expires(Duration::from_secs(5)).messages() => fetched,
            () = stop.cancelled() => break,
        };
        let mut batch = match fetched {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!("cannot pull a step: {e}");
                continue;
            }
        };
        let message = tokio::select! {
            message = batch.next() => message,
            () = stop.cancelled() => break,
        };
        match message {
            Some(Ok(message)) => {
                let (cluster, runner) = (cluster.clone(), runner.clone());
                let ack_wait = options.ack_wait;
                tokio::spawn(async move {
                    handle(&cluster, &runner, message, ack_wait).await;
                    drop(permit);
                });
            }
            Some(Err(e)) => tracing::warn!("cannot pull a step: {e}"),
            None => {}
        }
    }
    // Steps in flight finish and are acknowledged before the worker leaves.
    let _ = slots.acquire_many(options.capacity as u32).await;
    answering.abort();
    Ok(())
}

/// Runs the step in `message` (or finds its recorded outcome), answers, acknowledges.
async fn handle(cluster: &Cluster, runner: &StepRunner, message: Message, ack_wait: Duration) {
    let request: StepRequest = match serde_json::from_slice(&message.payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::error!("a step message is not readable ({e}); dropping it");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let reply = message
        .headers
        .as_ref()
        .and_then(|h| h.get(names::REPLY))
        .map(|v| v.to_string())
        .unwrap_or_else(|| format!("{}.{}", names::OUTCOMES, request.run));
    // Renews the worker's hold on the step while it runs.
    let renewing = {
        let message = message.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ack_wait / 3);
            every.tick().await;
            loop {
                every.tick().await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        })
    };
    // Only a step delivered before can have an outcome or a half-written chain.
    let again = message.info().map_or(true, |info| info.delivered > 1);
    let outcome = outcome(&cluster.store, runner, &request, again).await;
    renewing.abort();
    let Some(outcome) = outcome else {
        // The store failed: another try, a little later.
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    };
    if let Err(e) = cluster.client.publish(reply, outcome.into()).await {
        tracing::warn!("cannot answer step {}: {e}", request.owner());
    }
    let _ = cluster.client.flush().await;
    if let Err(e) = message.double_ack().await {
        tracing::warn!("cannot acknowledge step {}: {e}", request.owner());
    }
}

/// Runs `f` on the store away from the async threads (its calls wait for the server).
async fn on_store<T: Send + 'static>(
    store: &Arc<PgStore>,
    f: impl FnOnce(&PgStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The step's outcome (JSON of an [`Answer`]), committed to the store: when it was delivered
/// `again`, the one recorded already if there is one; else a new one. `None` when the store
/// could not be used (the step is tried again).
pub async fn outcome(
    store: &Arc<PgStore>,
    runner: &StepRunner,
    request: &StepRequest,
    again: bool,
) -> Option<Vec<u8>> {
    let (run, id, owner) = (request.run.clone(), request.id.clone(), request.owner());
    let failed = |e: String| -> Option<Vec<u8>> {
        tracing::error!("step {owner}: {e}");
        None
    };
    let saved = match again {
        true => on_store(store, move |s| s.step_outcome(&run, &id)).await,
        false => Ok(None),
    };
    match saved {
        Ok(Some(saved)) => {
            tracing::info!("step {} was done already; answering again", request.owner());
            return Some(answer(&request.id, &saved));
        }
        Ok(None) => {}
        Err(e) => return failed(e),
    }
    // A step half-done by a worker that died: its chains set aside, its holds released.
    let (run, id, owner) = (request.run.clone(), request.id.clone(), request.owner());
    let cleared = on_store(store, move |s| {
        if !again {
            return Ok(0);
        }
        let abandoned = s.abandon_step(&run, &id)?;
        if abandoned > 0 {
            tracing::warn!(
                "step {owner}: {abandoned} events of an earlier attempt set aside; running it again"
            );
        }
        s.database().release_holds(&owner)
    });
    if let Err(e) = cleared.await {
        return failed(e);
    }
    let ids = request.accounts.clone();
    let states = on_store(store, move |s| s.database().ledgers(&ids));
    let shared = match states.await {
        Ok(states) => request
            .accounts
            .iter()
            .zip(states)
            .map(|(id, state)| {
                let state = state.unwrap_or(LedgerState {
                    limits: BudgetLimits::default(),
                    spent: Spend::default(),
                    held: Spend::default(),
                });
                SharedLedger {
                    account: store.database().account(id, &request.owner()),
                    limits: state.limits,
                    used: state.spent.plus(state.held),
                }
            })
            .collect(),
        Err(e) => return failed(e),
    };
    let outcome = match runner.run(request, shared).await {
        Err(Error::Journal(e)) => return failed(e.to_string()),
        result => result.map_err(|e| e.to_string()),
    };
    let text = serde_json::to_string(&outcome).expect("an outcome serializes");
    let (run, id) = (request.run.clone(), request.id.clone());
    match on_store(store, move |s| s.save_step_outcome(&run, &id, &text)).await {
        Ok(stands) => Some(answer(&request.id, &stands)),
        Err(e) => failed(e),
    }
}

/// The message answering step `id` with `outcome` (JSON of its result).
fn answer(id: &str, outcome: &str) -> Vec<u8> {
    let outcome =
        serde_json::from_str(outcome).unwrap_or_else(|e| Err(format!("unreadable outcome: {e}")));
    serde_json::to_vec(&Answer {
        id: id.into(),
        outcome,
    })
    .expect("an answer serializes")
}

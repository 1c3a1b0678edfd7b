//! Joining a cluster: NATS with JetStream, the steps' stream and its consumer, the workers'
//! roll call, and the shared PostgreSQL store.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use baton_journal::store::{StoreError, StoreUrl};
use baton_postgres::PgStore;
use serde::{Deserialize, Serialize};

use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("NATS {url}: {reason}")]
    Nats { url: String, reason: String },
    #[error(
        "workers and the runs they serve share one store: use --store postgres://USER@HOST/DB \
         (not {store})"
    )]
    NeedsPostgres { store: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a worker may hold a step without a sign of life before JetStream gives it to
/// another worker (a running step renews it well before).
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// How long an orchestrator listens for workers' answers when it asks who is there.
const ROLL_CALL: Duration = Duration::from_millis(500);

/// What a worker answers when asked who is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    pub name: String,
    /// Steps it runs at once.
    pub capacity: usize,
    /// Steps it is running.
    pub running: usize,
}

/// A connection to a cluster.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) url: String,
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) store: Arc<PgStore>,
}

impl Cluster {
    /// Connects to NATS at `url` and to the PostgreSQL store at `store`, creating the
    /// stream and its consumer if they do not exist.
    pub async fn connect(
        url: &str,
        store: &StoreUrl,
        ack_wait: Duration,
    ) -> Result<Self, ClusterError> {
        let StoreUrl::Postgres(pg) = store else {
            return Err(ClusterError::NeedsPostgres {
                store: store.to_string(),
            });
        };
        let nats = |reason: String| ClusterError::Nats {
            url: url.into(),
            reason,
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| {
                nats(format!(
                    "cannot connect ({e}); is `nats-server -js` running there?"
                ))
            })?;
        client.flush().await.map_err(|e| {
            nats(format!(
                "cannot connect ({e}); is `nats-server -js` running there?"
            ))
        })?;
        let jetstream = jetstream::new(client.clone());
        let steps = jetstream
            .get_or_create_stream(stream::Config {
                name: names::STREAM.into(),
                subjects: vec![names::STEPS.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                nats(format!(
                    "cannot open the steps' stream ({e}); start the server with -js"
                ))
            })?;
        steps
            .get_or_create_consumer(
                names::CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(names::CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats(format!("cannot open the workers' consumer: {e}")))?;
        let store = tokio::task::block_in_place(|| PgStore::open(pg))?;
        Ok(Self {
            url: url.into(),
            client,
            jetstream,
            store: Arc::new(store),
        })
    }

    /// The workers there are now: each answers a roll call on `baton.workers`.
    pub async fn workers(&self) -> Result<Vec<Advert>, ClusterError> {
        use futures_util::StreamExt;
        let failed = |e: &dyn std::fmt::Display| ClusterError::Nats {
            url: self.url.clone(),
            reason: format!("cannot ask which workers there are: {e}"),
        };
        let inbox = self.client.new_inbox();
        let mut answers = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(&e))?;
        self.client
            .publish_with_reply(names::WORKERS, inbox, Vec::new().into())
            .await
            .map_err(|e| failed(&e))?;
        let mut adverts = Vec::new();
        let deadline = tokio::time::Instant::now() + ROLL_CALL;
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await {
            if let Ok(advert) = serde_json::from_slice(&answer.payload) {
                adverts.push(advert);
            }
        }
        Ok(adverts)
    }
}

//! The journal in PostgreSQL: runs recorded through a batching writer, read back for `trace`,
//! replay and export.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use baton_journal::event::{Event, FORMAT_VERSION, RUN_CHAIN};
use baton_journal::store::{
    BlobRow, EventRow, Recorder, RunRow, RunSummary, Store, StoreError, StoreUrl, TransparencyLog,
    write_bundle,
};
use tokio::runtime::Handle;

use crate::client::Client;
use crate::connection::{Connector, describe};
use crate::writer::Writer;

/// A journal kept in a PostgreSQL database (with the ledgers and step outcomes of runs
/// spread over several hosts).
pub struct PgStore {
    pub(crate) db: Arc<Db>,
    recorder: Option<Recorder>,
    writer: Arc<Writer>,
    thread: Option<JoinHandle<()>>,
}

/// The store's thread and connection: where queries run.
pub(crate) struct Db {
    pub(crate) location: String,
    pub(crate) runtime: Handle,
    pub(crate) connector: Arc<Connector>,
    /// Connections of their own for sessions, kept between them.
    pub(crate) spare: std::sync::Mutex<Vec<Arc<Client>>>,
}

impl Db {
    /// Runs `query` on the store's thread and waits for its answer.
    pub(crate) fn call<T, F>(
        &self,
        query: impl FnOnce(Arc<Connector>) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, String>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = query(self.connector.clone());
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| "its thread stopped".to_string())
            .and_then(|answer| answer)
            .map_err(|reason| StoreError::Server {
                location: self.location.clone(),
                reason,
            })
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` connection string), creating or
    /// upgrading its schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let location = StoreUrl::Postgres(url.into()).to_string();
        let server = |reason: String| StoreError::Server {
            location: location.clone(),
            reason,
        };
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let url = url.to_owned();
        let writer_location = location.clone();
        let thread = std::thread::Builder::new()
            .name("baton-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = opened_tx.send(Err(format!("cannot start its runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let connector = match Connector::open(&url).await {
                        Ok(connector) => Arc::new(connector),
                        Err(e) => {
                            let _ = opened_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = check_format(&connector).await {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                    let (writer, writes) =
                        Writer::new(Arc::new(connector.another()), writer_location);
                    let _ = opened_tx.send(Ok((Handle::current(), connector, writer)));
                    // The thread lives as long as its writer: until every recorder is gone
                    // and what they sent is written.
                    writes.await;
                });
            })
            .map_err(|e| server(format!("cannot start its thread: {e}")))?;
        let (runtime, connector, writer) = opened_rx
            .recv()
            .map_err(|_| server("its thread stopped while connecting".into()))?
            .map_err(server)?;
        let writer = Arc::new(writer);
        Ok(Self {
            db: Arc::new(Db {
                location,
                runtime,
                connector,
                spare: std::sync::Mutex::default(),
            }),
            recorder: Some(Recorder::new(writer.clone())),
            writer,
            thread: Some(thread),
        })
    }

    fn call<T, F>(&self, query: impl FnOnce(Arc<Connector>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, String>> + Send + 'static,
    {
        self.db.call(query)
    }

    /// The database, for the tables of other layers (the completion cache, idempotency keys,
    /// API keys), on this store's thread and connections.
    pub fn database(&self) -> crate::Database {
        crate::Database::new(self.db.clone())
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match &self.recorder {
            Some(recorder) => recorder.flush(),
            None => Ok(()),
        }
    }

    /// The run's row and every event's row, exactly as stored.
    fn rows(&self, run: &str) -> Result<Option<(RunRow, Vec<EventRow>)>, StoreError> {
        let run = run.to_owned();
        self.call(|connector| async move {
            let client = connector.client().await?;
            let Some(row) = client
                .query_opt(
                    "SELECT run, started_at, command, status, root FROM runs WHERE run = $1",
                    &[&run],
                )
                .await
                .map_err(|e| describe(&e))?
            else {
                return Ok(None);
            };
            let header = RunRow {
                run: row.get(0),
                started_at: row.get(1),
                command: row.get(2),
                status: row.get(3),
                root: row.get(4),
            };
            let events = client
                .query(
                    "SELECT chain, seq, kind, body FROM events WHERE run = $1
                     ORDER BY chain <> $2, chain COLLATE \"C\", seq",
                    &[&run, &RUN_CHAIN],
                )
                .await
                .map_err(|e| describe(&e))?
                .into_iter()
                .map(|row| EventRow {
                    chain: row.get(0),
                    seq: row.get(1),
                    kind: row.get(2),
                    body: row.get(3),
                })
                .collect();
            Ok(Some((header, events)))
        })
    }

    fn blob_rows(&self, run: &str, role: Option<&str>) -> Result<Vec<BlobRow>, StoreError> {
        let (run, role) = (run.to_owned(), role.map(str::to_owned));
        self.call(|connector| async move {
            let client = connector.client().await?;
            let rows = client
                .query(
                    "SELECT l.role, b.digest, b.bytes FROM run_blobs l
                     JOIN blobs b ON b.digest = l.digest
                     WHERE l.run = $1 AND ($2::text IS NULL OR l.role = $2)
                     ORDER BY l.role COLLATE \"C\", b.digest COLLATE \"C\"",
                    &[&run, &role],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(rows
                .into_iter()
                .map(|row| BlobRow {
                    role: row.get(0),
                    digest: row.get(1),
                    bytes: row.get(2),
                })
                .collect())
        })
    }
}

/// Records the journal format in a new database; refuses one written by a newer Baton.
async fn check_format(connector: &Connector) -> Result<(), String> {
    let client = connector.client().await?;
    client
        .execute(
            "INSERT INTO meta (key, value) VALUES ('format', $1) ON CONFLICT (key) DO NOTHING",
            &[&FORMAT_VERSION.to_string()],
        )
        .await
        .map_err(|e| describe(&e))?;
    let found: String = client
        .query_one("SELECT value FROM meta WHERE key = 'format'", &[])
        .await
        .map_err(|e| describe(&e))?
        .get(0);
    match found.parse::<u32>() {
        Ok(found) if found <= FORMAT_VERSION => Ok(()),
        _ => Err(format!(
            "it holds journal format {found}, newer than this Baton understands \
             ({FORMAT_VERSION}); upgrade Baton to use it"
        )),
    }
}

impl Store for PgStore {
    fn location(&self) -> String {
        self.db.location.clone()
    }

    fn file(&self) -> Option<&Path> {
        None
    }

    fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        self.flush()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(|connector| async move {
            let rows = connector
                .client()
                .await?
                .query(
                    "SELECT r.run, r.started_at, r.command, r.status, r.root,
                            (SELECT count(*) FROM events e WHERE e.run = r.run)
                     FROM runs r ORDER BY r.started_at DESC, r.run DESC LIMIT $1",
                    &[&limit],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(rows
                .into_iter()
                .map(|row| RunSummary {
                    run: row.get(0),
                    started_at: row.get(1),
                    command: row.get(2),
                    status: row.get(3),
                    root: row.get(4),
                    events: row.get::<_, i64>(5) as u64,
                })
                .collect())
        })
    }

    fn events(&self, run: &str) -> Result<Vec<Event>, StoreError> {
        self.flush()?;
        let Some((_, rows)) = self.rows(run)? else {
            return Ok(Vec::new());
        };
        rows.into_iter()
            .map(|row| {
                serde_json::from_str(&row.body).map_err(|e| StoreError::BadRow {
                    location: self.db.location.clone(),
                    run: run.into(),
                    chain: row.chain,
                    seq: row.seq,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    fn blobs(&self, run: &str, role: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.flush()?;
        let mut blobs = self.blob_rows(run, Some(role))?;
        blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(blobs.into_iter().map(|b| (b.digest, b.bytes)).collect())
    }

    fn export(&self, run: &str, dest: &Path) -> Result<(), StoreError> {
        self.flush()?;
        let Some((header, events)) = self.rows(run)? else {
            return Err(StoreError::Server {
                location: self.db.location.clone(),
                reason: format!("it holds no run '{run}'; `baton trace ls` lists the runs"),
            });
        };
        let blobs = self.blob_rows(run, None)?;
        let envelope = self.envelope(run)?;
        let inclusion = self.inclusion(run)?;
        write_bundle(
            dest,
            &header,
            &events,
            &blobs,
            (envelope.as_deref(), inclusion.as_ref()),
        )
    }

    fn log(&self) -> &dyn TransparencyLog {
        self
    }

    fn all_blobs(&self, run: &str) -> Result<Vec<BlobRow>, StoreError> {
        self.flush()?;
        self.blob_rows(run, None)
    }

    fn envelope(&self, run: &str) -> Result<Option<String>, StoreError> {
        self.flush()?;
        let run = run.to_owned();
        self.call(|connector| async move {
            let row = connector
                .client()
                .await?
                .query_opt("SELECT envelope FROM run_envelopes WHERE run = $1", &[&run])
                .await
                .map_err(|e| describe(&e))?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn prune(&self, cutoff: &str) -> Result<usize, StoreError> {
        self.flush()?;
        let cutoff = cutoff.to_owned();
        self.call(|connector| async move {
            // A connection of its own: its transaction holds no reader's query.
            let client = connector.another().client().await?;
            let statements = [
                "DELETE FROM events WHERE run IN (SELECT run FROM old)",
                "DELETE FROM run_blobs WHERE run IN (SELECT run FROM old)",
                "DELETE FROM run_envelopes WHERE run IN (SELECT run FROM old)",
            ];
            let mut removed = 0;
            client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| describe(&e))?;
            let done = async {
                client
                    .execute(
                        "CREATE TEMP TABLE old ON COMMIT DROP AS
                         SELECT run FROM runs WHERE started_at < $1",
                        &[&cutoff],
                    )
                    .await?;
                for statement in statements {
                    client.execute(statement, &[]).await?;
                }
                removed = client
                    .execute("DELETE FROM runs WHERE run IN (SELECT run FROM old)", &[])
                    .await?;
                client
                    .execute(
                        "DELETE FROM blobs b WHERE NOT EXISTS
                         (SELECT 1 FROM run_blobs l WHERE l.digest = b.digest)",
                        &[],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = done {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(describe(&e));
            }
            Ok(removed as usize)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The writer writes what it was sent, then stops, even while recorders of the store
        // remain (what they send later is refused: their flush says so).
        self.recorder.take();
        self.writer.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

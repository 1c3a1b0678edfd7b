//! The PostgreSQL journal's writer: a task that receives what runs record, in order, and
//! commits it in batched transactions (the events of a batch in one statement). When the
//! server goes away it reconnects and commits the batch again, for up to a minute, so a run
//! pauses across a restart instead of losing what it recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_journal::chain::{Hasher, Stored, Unhashed};
use baton_journal::store::{Sink, StoreError};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use crate::connection::{Connector, describe, passing};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 4096;

/// How long a batch is retried while the server cannot be reached.
const RETRY_FOR: Duration = Duration::from_secs(60);

enum Write {
    RunStarted {
        run: String,
        started_at: String,
        command: String,
    },
    Events(Vec<Stored>),
    Unhashed(Unhashed),
    Blob {
        run: String,
        role: String,
        digest: String,
        bytes: Arc<[u8]>,
    },
    RunEnded {
        run: String,
        status: String,
        root: String,
    },
    Attest {
        run: String,
        envelope: String,
    },
    Checkpoint {
        size: u64,
        note: String,
    },
    Flush(std::sync::mpsc::SyncSender<Result<(), String>>),
    Root {
        run: String,
        chain: String,
        reply: std::sync::mpsc::SyncSender<Option<String>>,
    },
    /// The store is closing: what came before is written, nothing after.
    Close,
}

/// Sends writes to the writer task.
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Write>,
}

impl Writer {
    /// The sink and the task that writes what it is sent to the database of `connector`
    /// (named `location` in logs).
    pub(crate) fn new(
        connector: Arc<Connector>,
        location: String,
    ) -> (Self, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, write_all(connector, rx, location))
    }

    fn send(&self, write: Write) {
        // A send fails only when the writer is gone, which `flush` reports.
        let _ = self.tx.send(write);
    }

    /// Asks the writer to write what it was sent, then stop (whatever recorders remain).
    pub(crate) fn close(&self) {
        self.send(Write::Close);
    }
}

impl Sink for Writer {
    fn run_started(&self, run: &str, started_at: &str, command: &str) {
        self.send(Write::RunStarted {
            run: run.into(),
            started_at: started_at.into(),
            command: command.into(),
        });
    }

    fn events(&self, events: Vec<Stored>) {
        if !events.is_empty() {
            self.send(Write::Events(events));
        }
    }

    fn unhashed(&self, events: Unhashed) {
        if !events.kinds.is_empty() {
            self.send(Write::Unhashed(events));
        }
    }

    fn blob(&self, run: &str, role: &str, digest: &str, bytes: Arc<[u8]>) {
        self.send(Write::Blob {
            run: run.into(),
            role: role.into(),
            digest: digest.into(),
            bytes,
        });
    }

    fn run_ended(&self, run: &str, status: &str, root: &str) {
        self.send(Write::RunEnded {
            run: run.into(),
            status: status.into(),
            root: root.into(),
        });
    }

    fn attest(&self, run: &str, envelope: &str) {
        self.send(Write::Attest {
            run: run.into(),
            envelope: envelope.into(),
        });
    }

    fn checkpoint(&self, size: u64, note: &str) {
        self.send(Write::Checkpoint {
            size,
            note: note.into(),
        });
    }

    fn root(&self, run: &str, chain: &str) -> Result<String, StoreError> {
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Write::Root {
                run: run.into(),
                chain: chain.into(),
                reply,
            })
            .map_err(|_| StoreError::WriterGone)?;
        StoreError::root_from(&rx, run, chain)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.tx
            .send(Write::Flush(tx))
            .map_err(|_| StoreError::WriterGone)?;
        rx.recv()
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|reason| StoreError::Server {
                location: "journal".into(),
                reason: format!("events may not have been saved: {reason}"),
            })
    }
}

async fn write_all(
    connector: Arc<Connector>,
    mut rx: mpsc::UnboundedReceiver<Write>,
    location: String,
) {
    let mut batch = Vec::new();
    let mut hasher = Hasher::default();
    // Once a batch is lost, later events would leave a gap in their chains: nothing more is
    // written, and every flush reports the loss.
    let mut lost: Option<String> = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let closing = batch.iter().position(|w| matches!(w, Write::Close));
        if let Some(at) = closing {
            batch.truncate(at);
        }
        let (writes, flushes): (Vec<_>, Vec<_>) = std::mem::take(&mut batch)
            .into_iter()
            .filter_map(|w| hash(&mut hasher, w))
            .partition(|w| !matches!(w, Write::Flush(_)));
        let result = match &lost {
            Some(earlier) => Err(format!("an earlier write failed: {earlier}")),
            None => commit_retrying(&connector, &writes).await,
        };
        if let (Err(e), None) = (&result, &lost) {
            tracing::error!(store = %location, "cannot write the journal: {e}");
            lost = Some(e.clone());
        }
        for flush in flushes {
            if let Write::Flush(reply) = flush {
                let _ = reply.send(result.clone());
            }
        }
        if closing.is_some() {
            return;
        }
    }
}

/// Chains and hashes unhashed events, fills in the root of an ended run and answers
/// questions about roots, in the order they were sent (before any of it is committed).
fn hash(hasher: &mut Hasher, write: Write) -> Option<Write> {
    Some(match write {
        Write::Unhashed(events) => Write::Events(hasher.hash(events)),
        Write::RunEnded { run, status, root } if root.is_empty() => Write::RunEnded {
            root: hasher.end_run(&run),
            run,
            status,
        },
        Write::Root { run, chain, reply } => {
            let _ = reply.send(hasher.root(&run, &chain));
            return None;
        }
        write => write,
    })
}

/// Commits `writes`, reconnecting and trying again while the server cannot be reached.
async fn commit_retrying(connector: &Connector, writes: &[Write]) -> Result<(), String> {
    if writes.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let error = match connector.client().await {
            Ok(client) => match commit(&client, writes).await {
                Ok(()) => return Ok(()),
                Err(e) if !passing(&e) => return Err(describe(&e)),
                Err(e) => describe(&e),
            },
            Err(e) => e,
        };
        if started.elapsed() >= RETRY_FOR {
            return Err(format!(
                "the server has not answered for {}s: {error}",
                RETRY_FOR.as_secs()
            ));
        }
        tracing::warn!("journal writes wait for PostgreSQL: {error}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// One transaction: new runs, then every event of the batch in one statement, blobs, ends.
/// Rows already present are skipped, so a batch committed just before its connection broke
/// can be sent again.
async fn commit(
    client: &crate::client::Client,
    writes: &[Write],
) -> Result<(), tokio_postgres::Error> {
    let mut runs: Vec<&str> = Vec::new();
    let mut chains: Vec<&str> = Vec::new();
    let mut seqs: Vec<i64> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    let mut bodies: Vec<&str> = Vec::new();
    for write in writes {
        if let Write::Events(events) = write {
            for event in events {
                runs.push(&event.run);
                chains.push(&event.chain);
                seqs.push(event.seq as i64);
                kinds.push(event.kind);
                bodies.push(&event.body);
            }
        }
    }
    // One statement is atomic on its own: most batches (events only) need no transaction,
    // and so no round trips to open and close one.
    let statements = usize::from(!runs.is_empty())
        + writes
            .iter()
            .map(|w| match w {
                Write::RunStarted { .. } | Write::RunEnded { .. } | Write::Checkpoint { .. } => 1,
                // The envelope, and its leaf under the log's lock: in a transaction.
                Write::Attest { .. } => 2,
                Write::Blob { .. } => 3,
                Write::Events(_)
                | Write::Unhashed(_)
                | Write::Root { .. }
                | Write::Flush(_)
                | Write::Close => 0,
            })
            .sum::<usize>();
    let transaction = statements > 1;
    let begin = async {
        if transaction {
            client.batch_execute("BEGIN").await
        } else {
            Ok(())
        }
    };
    let done = async {
        for write in writes {
            if let Write::RunStarted {
                run,
                started_at,
                command,
            } = write
            {
                client
                    .execute(
                        "INSERT INTO runs (run, started_at, command, status)
                         VALUES ($1, $2, $3, 'running') ON CONFLICT (run) DO NOTHING",
                        &[run, started_at, command],
                    )
                    .await?;
            }
        }
        if !runs.is_empty() {
            client
                .execute(
                    "INSERT INTO events (run, chain, seq, kind, body)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])
                     ON CONFLICT (run, chain, seq) DO NOTHING",
                    &[&runs, &chains, &seqs, &kinds, &bodies],
                )
                .await?;
        }
        for write in writes {
            match write {
                Write::Blob {
                    run,
                    role,
                    digest,
                    bytes,
                } => {
                    let stored = client
                        .query_opt("SELECT 1 FROM blobs WHERE digest = $1", &[digest])
                        .await?
                        .is_some();
                    if !stored {
                        client
                            .execute(
                                "INSERT INTO blobs (digest, bytes) VALUES ($1, $2)
                                 ON CONFLICT (digest) DO NOTHING",
                                &[digest, &&bytes[..]],
                            )
                            .await?;
                    }
                    client
                        .execute(
                            "INSERT INTO run_blobs (run, role, digest) VALUES ($1, $2, $3)
                             ON CONFLICT DO NOTHING",
                            &[run, role, digest],
                        )
                        .await?;
                }
                Write::RunEnded { run, status, root } => {
                    client
                        .execute(
                            "UPDATE runs SET status = $2, root = $3 WHERE run = $1",
                            &[run, status, root],
                        )
                        .await?;
                }
                Write::Attest { run, envelope } => {
                    // Sent together with the append's first statements (pipelined).
                    let row: [&(dyn ToSql + Sync); 2] = [run, envelope];
                    tokio::try_join!(
                        client.execute(
                            "INSERT INTO run_envelopes (run, envelope) VALUES ($1, $2)
                             ON CONFLICT (run) DO UPDATE SET envelope = $2",
                            &row,
                        ),
                        crate::log::append(client, run, envelope),
                    )?;
                }
                Write::Checkpoint { size, note } => {
                    client
                        .execute(
                            "INSERT INTO tlog_checkpoints (size, note) VALUES ($1, $2)
                             ON CONFLICT (size) DO NOTHING",
                            &[&(*size as i64), note],
                        )
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    };
    // BEGIN goes out with the first statement (pipelined, in this order).
    let done = tokio::try_join!(biased; begin, done).map(drop);
    match (done, transaction) {
        (Ok(()), true) => client.batch_execute("COMMIT").await,
        (Ok(()), false) => Ok(()),
        (Err(e), transaction) => {
            if transaction {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

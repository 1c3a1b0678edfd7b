//! The SQLite journal's one writer: a thread that receives what runs record, in order, and
//! commits it in batched transactions.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};

use super::{Recorder, Sink, StoreError};
use crate::chain::{Hasher, Stored, Unhashed};

/// What the writer thread is asked to do, in order.
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
    Flush(mpsc::SyncSender<Result<(), String>>),
    Root {
        run: String,
        chain: String,
        reply: mpsc::SyncSender<Option<String>>,
    },
}

impl Write {
    /// Whether someone waits for it: the writer then commits without gathering more.
    fn awaited(&self) -> bool {
        matches!(self, Write::Flush(_) | Write::Root { .. })
    }
}

/// Sends writes to the journal's writer thread.
pub(super) struct Writer {
    tx: mpsc::Sender<Write>,
    /// The writer, to wake it when a flush is asked for while it gathers.
    writer: std::thread::Thread,
}

impl Writer {
    fn send(&self, write: Write) {
        // A send fails only when the writer is gone, which `flush` reports.
        let _ = self.tx.send(write);
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
        let (reply, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Write::Root {
                run: run.into(),
                chain: chain.into(),
                reply,
            })
            .map_err(|_| StoreError::WriterGone)?;
        self.writer.unpark();
        StoreError::root_from(&rx, run, chain)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx
            .send(Write::Flush(tx))
            .map_err(|_| StoreError::WriterGone)?;
        self.writer.unpark();
        rx.recv()
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|_| StoreError::WriterGone)
    }
}

impl Writer {
    /// Starts the writer thread on `conn` (the journal at `path`); returns the recorder that
    /// sends to it, and the thread.
    pub(super) fn spawn(
        conn: Connection,
        path: &Path,
    ) -> std::io::Result<(Recorder, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let writer_path = path.to_owned();
        let handle = std::thread::Builder::new()
            .name("baton-journal".into())
            .spawn(move || writer(conn, rx, &writer_path))?;
        let writer = Writer {
            tx,
            writer: handle.thread().clone(),
        };
        Ok((Recorder::new(Arc::new(writer)), handle))
    }
}

/// How long the writer gathers writes before it commits them (unless asked to flush): fewer,
/// larger transactions, and a writer thread that sleeps between them rather than waking for
/// every write — each wake-up costs the sender a system call, and a running writer makes
/// every page-table change of the calling thread a cross-core TLB shootdown.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 4096;

/// The writer thread: receives writes, commits them in batches.
fn writer(mut conn: Connection, rx: mpsc::Receiver<Write>, path: &Path) {
    let mut hasher = Hasher::default();
    // Blocks only while idle: the first write of a burst wakes it.
    while let Ok(first) = rx.recv() {
        let deadline = std::time::Instant::now() + GATHER;
        let mut flushing = first.awaited();
        let mut batch = vec![first];
        // Sleeps rather than waiting on the channel, so that the writes of the burst do not
        // each wake it; a flush unparks it (`Recorder::flush`).
        loop {
            let mut open = true;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(write) => {
                        flushing |= write.awaited();
                        batch.push(write);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let now = std::time::Instant::now();
            if flushing || !open || batch.len() >= MAX_BATCH || now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        let mut flushes = Vec::new();
        let result = commit(&mut conn, &mut hasher, batch, &mut flushes);
        if let Err(e) = &result {
            tracing::error!(journal = %path.display(), "cannot write the journal: {e}");
        }
        for flush in flushes {
            let _ = flush.send(result.clone().map_err(|e| e.to_string()));
        }
    }
}

fn commit(
    conn: &mut Connection,
    hasher: &mut Hasher,
    batch: Vec<Write>,
    flushes: &mut Vec<mpsc::SyncSender<Result<(), String>>>,
) -> Result<(), String> {
    // IMMEDIATE takes the write lock up front, so another process writing the same journal
    // makes this one wait (busy timeout) rather than fail when a read turns into a write.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    for write in batch {
        let done = match write {
            Write::RunStarted {
                run,
                started_at,
                command,
            } => tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO runs (run, started_at, command, status)
                     VALUES (?1, ?2, ?3, 'running')",
                )
                .and_then(|mut s| s.execute(params![run, started_at, command])),
            Write::Events(events) => insert_events(&tx, &events),
            Write::Unhashed(events) => insert_events(&tx, &hasher.hash(events)),
            Write::Blob {
                run,
                role,
                digest,
                bytes,
            } => store_blob(&tx, &digest, &bytes).and_then(|_| {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO run_blobs (run, role, digest) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![run, role, digest]))
            }),
            Write::RunEnded { run, status, root } => {
                let root = match root.is_empty() {
                    true => hasher.end_run(&run),
                    false => root,
                };
                tx.prepare_cached("UPDATE runs SET status = ?2, root = ?3 WHERE run = ?1")
                    .and_then(|mut s| s.execute(params![run, status, root]))
            }
            Write::Attest { run, envelope } => tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO run_envelopes (run, envelope) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute(params![run, envelope]))
                .and_then(|_| super::log::append(&tx, &run, &envelope)),
            Write::Checkpoint { size, note } => super::log::checkpoint(&tx, size, &note),
            Write::Flush(reply) => {
                flushes.push(reply);
                Ok(0)
            }
            Write::Root { run, chain, reply } => {
                let _ = reply.send(hasher.root(&run, &chain));
                Ok(0)
            }
        };
        done.map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())
}

fn insert_events(tx: &rusqlite::Transaction, events: &[Stored]) -> rusqlite::Result<usize> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (run, chain, seq, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for event in events {
        insert.execute(params![
            event.run,
            event.chain,
            event.seq as i64,
            event.kind,
            event.body
        ])?;
    }
    Ok(events.len())
}

/// Stores content-addressed bytes once: bytes already stored under a digest are not bound
/// or written again.
fn store_blob(tx: &rusqlite::Transaction, digest: &str, bytes: &[u8]) -> rusqlite::Result<usize> {
    let stored: i64 = tx
        .prepare_cached("SELECT count(*) FROM blobs WHERE digest = ?1")?
        .query_row([digest], |r| r.get(0))?;
    if stored > 0 {
        return Ok(0);
    }
    tx.prepare_cached("INSERT INTO blobs (digest, bytes) VALUES (?1, ?2)")?
        .execute(params![digest, bytes])
}

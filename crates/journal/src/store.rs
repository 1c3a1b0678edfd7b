//! The journal's SQLite store: WAL mode, one writer thread that batches what it receives into
//! transactions, readers on their own connections. A bundle is a standalone file with the
//! same schema holding one run.
//!
//! Durability: every batch is one transaction, so a crash (even `kill -9`) leaves a database
//! whose committed events form a prefix of each chain, which verifies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::chain::{Stored, Unhashed};
use super::event::{Event, FORMAT_VERSION, RUN_CHAIN};

mod bundle;
mod error;
mod log;
mod recorder;
mod url;

pub use bundle::{BlobRow, EventRow, RunRow, write_bundle};
pub use error::StoreError;
pub use log::{Inclusion, LOG_SIZE, TransparencyLog};
pub use url::StoreUrl;

use recorder::Writer;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    root TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run TEXT NOT NULL,
    chain TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run, chain, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS run_blobs (
    run TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (run, role, digest)
);
CREATE TABLE IF NOT EXISTS run_envelopes (run TEXT PRIMARY KEY, envelope TEXT NOT NULL);
";

/// A run as listed by `trace ls`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub run: String,
    pub started_at: String,
    pub command: String,
    pub status: String,
    pub root: Option<String>,
    pub events: u64,
}

/// Where runs are kept: what Baton records runs in and reads them back from. [`Journal`]
/// (SQLite) is the first store; whatever store a run is kept in, it exports to a bundle,
/// which is one SQLite file.
pub trait Store: Send + Sync {
    /// Where it is, as messages name it.
    fn location(&self) -> String;

    /// The file it is kept in, when it is one (the LLM layer keeps its own files beside it).
    fn file(&self) -> Option<&Path>;

    /// How runs are recorded in it (`None`: it is read-only).
    fn recorder(&self) -> Option<&Recorder>;

    /// The latest `limit` runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError>;

    /// The run `run` (an id or a unique prefix of one).
    fn find_run(&self, run: &str) -> Result<Option<RunSummary>, StoreError> {
        let all = self.runs(usize::MAX >> 1)?;
        if let Some(exact) = all.iter().find(|r| r.run == run) {
            return Ok(Some(exact.clone()));
        }
        let mut matches = all.into_iter().filter(|r| r.run.starts_with(run));
        Ok(match (matches.next(), matches.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        })
    }

    /// Every event of `run`, chain by chain, each in order.
    fn events(&self, run: &str) -> Result<Vec<Event>, StoreError>;

    /// The blobs linked to `run` in `role`, as (digest, bytes).
    fn blobs(&self, run: &str, role: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Every blob linked to `run`, with its role.
    fn all_blobs(&self, run: &str) -> Result<Vec<BlobRow>, StoreError>;

    /// The host's signed statement over `run` (a DSSE envelope, JSON), if it was signed.
    fn envelope(&self, run: &str) -> Result<Option<String>, StoreError>;

    /// The store's transparency log of signed runs.
    fn log(&self) -> &dyn TransparencyLog;

    /// Writes `run` with its events and blobs to a new bundle file at `dest`.
    fn export(&self, run: &str, dest: &Path) -> Result<(), StoreError>;

    /// Deletes runs started before `cutoff` (RFC 3339) and blobs no run uses any more;
    /// returns how many runs it deleted.
    fn prune(&self, cutoff: &str) -> Result<usize, StoreError>;
}

/// What a store does with what runs record, in the order they record it.
pub trait Sink: Send + Sync {
    fn run_started(&self, run: &str, started_at: &str, command: &str);
    /// Chained events, each already hashed (see `chain::ChainWriter`).
    fn events(&self, events: Vec<Stored>);
    /// Events of one chain to chain and hash on the writer's side (see `chain::Hasher`).
    fn unhashed(&self, events: Unhashed);
    /// Stores `bytes` under `digest` (once) and links it to `run` in `role` (`component`,
    /// `policy`, ...).
    fn blob(&self, run: &str, role: &str, digest: &str, bytes: Arc<[u8]>);
    /// The run ended with `status`; `root` is its root, or empty for the root of the run
    /// chain its writer received.
    fn run_ended(&self, run: &str, status: &str, root: &str);
    /// The root of chain `chain` of `run` as its writer hashed it, once everything sent
    /// before is hashed (a chain's root once it is sealed, the run's once it ended).
    fn root(&self, run: &str, chain: &str) -> Result<String, StoreError>;
    /// Keeps the host's signed statement over the ended run `run` (a DSSE envelope, JSON),
    /// and appends it to the store's transparency log when it keeps one.
    fn attest(&self, run: &str, envelope: &str);
    /// Keeps the host's signed checkpoint of the store's transparency log at `size`.
    fn checkpoint(&self, size: u64, note: &str);
    /// Waits until everything sent so far is kept.
    fn flush(&self) -> Result<(), StoreError>;
}

/// How runs are recorded in a store. Cheap to clone.
#[derive(Clone)]
pub struct Recorder(Arc<dyn Sink>);

impl Recorder {
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self(sink)
    }

    pub fn run_started(&self, run: &str, started_at: &str, command: &str) {
        self.0.run_started(run, started_at, command);
    }

    pub fn event(&self, event: Stored) {
        self.0.events(vec![event]);
    }

    /// Sends several events at once.
    pub fn events(&self, events: Vec<Stored>) {
        self.0.events(events);
    }

    /// Sends events of one chain for the writer to chain and hash, off the calling thread.
    pub fn unhashed(&self, events: Unhashed) {
        self.0.unhashed(events);
    }

    /// The root the writer reached in chain `chain` of `run` (waits for what was sent
    /// before to be hashed).
    pub fn root(&self, run: &str, chain: &str) -> Result<String, StoreError> {
        self.0.root(run, chain)
    }

    /// Stores `bytes` under `digest` (once) and links it to `run` in `role`
    /// (`component`, `policy`, ...).
    pub fn blob(&self, run: &str, role: &str, digest: &str, bytes: Arc<[u8]>) {
        self.0.blob(run, role, digest, bytes);
    }

    pub fn run_ended(&self, run: &str, status: &str, root: &str) {
        self.0.run_ended(run, status, root);
    }

    /// Keeps the host's signed statement over the ended run `run`.
    pub fn attest(&self, run: &str, envelope: &str) {
        self.0.attest(run, envelope);
    }

    /// Keeps the host's signed checkpoint of the transparency log at `size`.
    pub fn checkpoint(&self, size: u64, note: &str) {
        self.0.checkpoint(size, note);
    }

    /// Waits until everything sent so far is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.0.flush()
    }

    /// A handle that does not keep the writer open (a store's writer stops once every
    /// recorder is dropped).
    pub fn downgrade(&self) -> WeakRecorder {
        WeakRecorder(Arc::downgrade(&self.0))
    }
}

/// A recorder that does not keep its writer open.
#[derive(Clone)]
pub struct WeakRecorder(std::sync::Weak<dyn Sink>);

impl WeakRecorder {
    /// The recorder, while its store is open.
    pub fn upgrade(&self) -> Option<Recorder> {
        self.0.upgrade().map(Recorder)
    }
}

/// A journal file (the store, or a bundle).
pub struct Journal {
    path: PathBuf,
    recorder: Option<(Recorder, JoinHandle<()>)>,
}

impl Journal {
    /// Opens (creating if needed) a journal for reading and writing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = open_writable(path)?;
        let recorder = Writer::spawn(conn, path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        Ok(Self {
            path: path.to_owned(),
            recorder: Some(recorder),
        })
    }

    /// Opens an existing journal or bundle read-only.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        check_format(&open_reader(path)?, path)?;
        Ok(Self {
            path: path.to_owned(),
            recorder: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recorder of a writable journal.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref().map(|(r, _)| r)
    }

    fn sql<T>(&self, result: rusqlite::Result<T>) -> Result<T, StoreError> {
        result.map_err(|source| StoreError::Sql {
            path: self.path.clone(),
            source,
        })
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        open_reader(&self.path)
    }

    /// Runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = self.sql(conn.prepare(
            "SELECT r.run, r.started_at, r.command, r.status, r.root,
                    (SELECT count(*) FROM events e WHERE e.run = r.run)
             FROM runs r ORDER BY r.started_at DESC, r.run DESC LIMIT ?1",
        ))?;
        let rows = stmt.query_map([limit as i64], |row| {
            Ok(RunSummary {
                run: row.get(0)?,
                started_at: row.get(1)?,
                command: row.get(2)?,
                status: row.get(3)?,
                root: row.get(4)?,
                events: row.get::<_, i64>(5)? as u64,
            })
        });
        self.sql(self.sql(rows)?.collect())
    }

    /// All events of `run`: the run chain first, then each step chain, each in order.
    pub fn events(&self, run: &str) -> Result<Vec<Event>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = self.sql(conn.prepare(
            "SELECT chain, seq, body FROM events WHERE run = ?1
             ORDER BY chain <> ?2, chain, seq",
        ))?;
        let rows = self.sql(stmt.query_map(params![run, RUN_CHAIN], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        }))?;
        let mut events = Vec::new();
        for row in rows {
            let (chain, seq, body) = self.sql(row)?;
            let event = serde_json::from_str(&body).map_err(|e| StoreError::BadEvent {
                path: self.path.clone(),
                run: run.into(),
                chain,
                seq,
                reason: e.to_string(),
            })?;
            events.push(event);
        }
        Ok(events)
    }

    /// The blobs linked to `run` in `role`, as (digest, bytes).
    pub fn blobs(&self, run: &str, role: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = self.sql(conn.prepare(
            "SELECT b.digest, b.bytes FROM run_blobs l JOIN blobs b ON b.digest = l.digest
             WHERE l.run = ?1 AND l.role = ?2 ORDER BY b.digest",
        ))?;
        let rows =
            self.sql(stmt.query_map(params![run, role], |row| Ok((row.get(0)?, row.get(1)?))))?;
        self.sql(rows.collect())
    }

    /// The host's signed statement over `run`, if it was signed (a journal or bundle older
    /// than signing has none).
    pub fn envelope(&self, run: &str) -> Result<Option<String>, StoreError> {
        let conn = self.reader()?;
        let signed: bool = self.sql(conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'run_envelopes'",
            [],
            |r| r.get(0),
        ))?;
        if !signed {
            return Ok(None);
        }
        self.sql(
            conn.query_row(
                "SELECT envelope FROM run_envelopes WHERE run = ?1",
                [run],
                |r| r.get(0),
            )
            .optional(),
        )
    }

    /// Every blob linked to `run`, as (role, digest, bytes).
    pub fn all_blobs(&self, run: &str) -> Result<Vec<BlobRow>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = self.sql(conn.prepare(
            "SELECT l.role, b.digest, b.bytes FROM run_blobs l JOIN blobs b ON b.digest = l.digest
             WHERE l.run = ?1 ORDER BY l.role, b.digest",
        ))?;
        let rows = self.sql(stmt.query_map([run], |row| {
            Ok(BlobRow {
                role: row.get(0)?,
                digest: row.get(1)?,
                bytes: row.get(2)?,
            })
        }))?;
        self.sql(rows.collect())
    }

    /// Writes `run` with its events and blobs to a new bundle file at `dest`, atomically: the
    /// file appears complete or not at all.
    pub fn export(&self, run: &str, dest: &Path) -> Result<(), StoreError> {
        if let Some((recorder, _)) = &self.recorder {
            recorder.flush()?;
        }
        let source = self.path.to_string_lossy().into_owned();
        let inclusion = self.inclusion(run)?;
        bundle::write_atomically(dest, |out| {
            if let Some(proof) = &inclusion {
                log::carry(out, run, proof)?;
            }
            out.execute("ATTACH DATABASE ?1 AS src", [source])?;
            for statement in [
                "INSERT INTO runs SELECT * FROM src.runs WHERE run = ?1",
                "INSERT INTO events SELECT * FROM src.events WHERE run = ?1",
                "INSERT INTO run_blobs SELECT * FROM src.run_blobs WHERE run = ?1",
                "INSERT INTO run_envelopes SELECT * FROM src.run_envelopes WHERE run = ?1",
                "INSERT INTO blobs SELECT * FROM src.blobs WHERE digest IN
                    (SELECT digest FROM src.run_blobs WHERE run = ?1)",
            ] {
                out.execute(statement, [run])?;
            }
            out.execute("DETACH DATABASE src", [])?;
            Ok(())
        })
    }

    /// Deletes runs started before `cutoff` (RFC 3339) and blobs no run uses any more.
    pub fn prune(&self, cutoff: &str) -> Result<usize, StoreError> {
        if let Some((recorder, _)) = &self.recorder {
            recorder.flush()?;
        }
        let mut conn = open_writable(&self.path)?;
        let tx = self.sql(conn.transaction())?;
        let runs: Vec<String> = {
            let mut stmt = self.sql(tx.prepare("SELECT run FROM runs WHERE started_at < ?1"))?;
            let rows = self.sql(stmt.query_map([cutoff], |r| r.get(0)))?;
            self.sql(rows.collect())?
        };
        for run in &runs {
            for table in ["events", "run_blobs", "run_envelopes", "runs"] {
                self.sql(tx.execute(&format!("DELETE FROM {table} WHERE run = ?1"), [run]))?;
            }
        }
        self.sql(tx.execute(
            "DELETE FROM blobs WHERE digest NOT IN (SELECT digest FROM run_blobs)",
            [],
        ))?;
        self.sql(tx.commit())?;
        Ok(runs.len())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some((recorder, handle)) = self.recorder.take() {
            drop(recorder);
            // The writer drains what it was sent, then exits when all senders are gone.
            let _ = handle.join();
        }
    }
}

fn open_writable(path: &Path) -> Result<Connection, StoreError> {
    // Two processes opening the same journal at once can find it locked in ways SQLite's
    // busy handler does not wait out (creating it, switching it to WAL); such an open is
    // retried.
    let mut attempts = 0;
    loop {
        match try_open_writable(path) {
            Err(StoreError::Open {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            }) if e.code == rusqlite::ErrorCode::DatabaseBusy && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

fn try_open_writable(path: &Path) -> Result<Connection, StoreError> {
    let open = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(open)?;
    check_format(&conn, path)?;
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .map_err(open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open)?;
    // Create the schema and record the format in one write transaction, checking again under
    // its lock: another process creating the same journal is then either done or not begun,
    // never half-way (a meta table without its format row).
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(open)?;
    check_format(&tx, path)?;
    tx.execute_batch(SCHEMA).map_err(open)?;
    tx.execute_batch(log::SCHEMA).map_err(open)?;
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?1)",
        [FORMAT_VERSION.to_string()],
    )
    .map_err(open)?;
    tx.commit().map_err(open)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Open {
            path: path.to_owned(),
            source: rusqlite::Error::InvalidPath(path.to_owned()),
        });
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            StoreError::Open {
                path: path.to_owned(),
                source,
            }
        })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
    Ok(conn)
}

/// Refuses files that are not SQLite, SQLite files that are not journals, and journals of a
/// newer format. An empty file (a journal about to be created) passes.
fn check_format(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_owned(),
        reason,
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| foreign(e.to_string()))?;
    if tables.is_empty() {
        return Ok(());
    }
    if !tables.iter().any(|t| t == "meta") {
        return Err(foreign("it has no meta table".into()));
    }
    let format: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| foreign(e.to_string()))?;
    let found: u32 = format
        .as_deref()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| foreign("it has no format version".into()))?;
    if found > FORMAT_VERSION {
        return Err(StoreError::NewerFormat {
            path: path.to_owned(),
            found,
        });
    }
    Ok(())
}

impl Store for Journal {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn recorder(&self) -> Option<&Recorder> {
        Journal::recorder(self)
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        Journal::runs(self, limit)
    }

    fn events(&self, run: &str) -> Result<Vec<Event>, StoreError> {
        Journal::events(self, run)
    }

    fn blobs(&self, run: &str, role: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Journal::blobs(self, run, role)
    }

    fn all_blobs(&self, run: &str) -> Result<Vec<BlobRow>, StoreError> {
        Journal::all_blobs(self, run)
    }

    fn envelope(&self, run: &str) -> Result<Option<String>, StoreError> {
        Journal::envelope(self, run)
    }

    fn log(&self) -> &dyn TransparencyLog {
        self
    }

    fn export(&self, run: &str, dest: &Path) -> Result<(), StoreError> {
        Journal::export(self, run, dest)
    }

    fn prune(&self, cutoff: &str) -> Result<usize, StoreError> {
        Journal::prune(self, cutoff)
    }
}

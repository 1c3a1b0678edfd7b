//! The transparency log of runs in a SQLite journal: each signed run's envelope is a leaf,
//! appended in the transaction that keeps the envelope; the perfect subtrees it completes are
//! stored with it (see `tlog`), and so are the checkpoints the host signs.
//!
//! The log is append-only: pruning runs leaves their leaves, so a checkpoint saved earlier
//! stays provable.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Journal, StoreError};
use crate::tlog::{self, Hash, Nodes};

/// The log's size, as every store reads it (SQLite and PostgreSQL alike): leaves are numbered
/// from 0 without gaps, so it is the highest number plus one, which the primary key's index
/// gives at once; `count(*)` would read every leaf, on each append.
pub const LOG_SIZE: &str = "SELECT coalesce(max(idx) + 1, 0) FROM tlog_leaves";

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tlog_leaves (
    idx INTEGER PRIMARY KEY,
    run TEXT NOT NULL UNIQUE,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tlog_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
";

/// A bundle's proof that its run is in the log: its leaf, the proof and the signed
/// checkpoint it leads to.
const BUNDLE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tlog_proofs (
    run TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    size INTEGER NOT NULL,
    proof BLOB NOT NULL,
    checkpoint TEXT NOT NULL
);
";

/// Writes into the bundle `out` the place of its run `run` in the log.
pub(super) fn carry(out: &Connection, run: &str, inclusion: &Inclusion) -> rusqlite::Result<()> {
    out.execute_batch(BUNDLE_SCHEMA)?;
    out.execute(
        "INSERT INTO tlog_proofs (run, idx, size, proof, checkpoint) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            run,
            inclusion.index as i64,
            inclusion.size as i64,
            inclusion.proof.concat(),
            inclusion.checkpoint
        ],
    )?;
    Ok(())
}

/// The log's perfect subtrees on a connection (inside a transaction or not).
struct Stored<'a>(&'a Connection);

impl Nodes for Stored<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, String> {
        let hash: Vec<u8> = self
            .0
            .prepare_cached("SELECT hash FROM tlog_nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut s| s.query_row(params![level, index as i64], |r| r.get(0)))
            .map_err(|e| format!("the log's node {level}/{index}: {e}"))?;
        hash.try_into()
            .map_err(|_| format!("the log's node {level}/{index} is not a hash"))
    }
}

/// Appends the envelope of `run` to the log, unless the run is in it already.
pub(super) fn append(tx: &Connection, run: &str, envelope: &str) -> rusqlite::Result<usize> {
    let logged: bool = tx
        .prepare_cached("SELECT count(*) > 0 FROM tlog_leaves WHERE run = ?1")?
        .query_row([run], |r| r.get(0))?;
    if logged {
        return Ok(0);
    }
    let size: i64 = tx.query_row(LOG_SIZE, [], |r| r.get(0))?;
    let leaf = tlog::leaf_hash(envelope.as_bytes());
    let made = tlog::completed(&Stored(tx), size as u64, leaf)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    tx.execute(
        "INSERT INTO tlog_leaves (idx, run, hash) VALUES (?1, ?2, ?3)",
        params![size, run, &leaf[..]],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (level, index, hash) in made {
        insert.execute(params![level, index as i64, &hash[..]])?;
    }
    Ok(1)
}

/// Keeps a signed checkpoint of the log at `size`.
pub(super) fn checkpoint(tx: &Connection, size: u64, note: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT OR IGNORE INTO tlog_checkpoints (size, note) VALUES (?1, ?2)",
        params![size as i64, note],
    )
}

/// What a bundle says of its run's place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub index: u64,
    pub size: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint of the log at `size`.
    pub checkpoint: String,
}

/// A store's transparency log of signed runs, as readers use it.
pub trait TransparencyLog {
    /// The log's size and root now.
    fn log_head(&self) -> Result<(u64, Hash), StoreError>;
    /// The proof that the log at `new` extends the log at `old`.
    fn log_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError>;
    /// The newest signed checkpoint (its size and note), if the host signed one.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
    /// Where run `run` is in the log and the proof of it to the newest checkpoint, if both
    /// exist (or as its bundle carries it).
    fn inclusion(&self, run: &str) -> Result<Option<Inclusion>, StoreError>;
}

impl Journal {
    fn log_sql<T>(&self, result: Result<T, String>) -> Result<T, StoreError> {
        result.map_err(|reason| StoreError::Log {
            path: self.path.clone(),
            reason,
        })
    }
}

impl TransparencyLog for Journal {
    fn log_head(&self) -> Result<(u64, Hash), StoreError> {
        let conn = self.reader()?;
        let size: i64 = self.sql(conn.query_row(LOG_SIZE, [], |r| r.get(0)))?;
        let root = self.log_sql(tlog::root(&Stored(&conn), size as u64))?;
        Ok((size as u64, root))
    }

    fn log_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        let conn = self.reader()?;
        self.log_sql(tlog::consistency_proof(&Stored(&conn), old, new))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let conn = self.reader()?;
        self.sql(
            conn.query_row(
                "SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional(),
        )
    }

    fn inclusion(&self, run: &str) -> Result<Option<Inclusion>, StoreError> {
        let conn = self.reader()?;
        let has = |table: &str| -> Result<bool, StoreError> {
            self.sql(conn.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = ?1",
                [table],
                |r| r.get(0),
            ))
        };
        if has("tlog_proofs")? {
            let carried = self.sql(
                conn.query_row(
                    "SELECT idx, size, proof, checkpoint FROM tlog_proofs WHERE run = ?1",
                    [run],
                    |r| {
                        let proof: Vec<u8> = r.get(2)?;
                        Ok(Inclusion {
                            index: r.get::<_, i64>(0)? as u64,
                            size: r.get::<_, i64>(1)? as u64,
                            proof: proof.chunks(32).filter_map(|c| c.try_into().ok()).collect(),
                            checkpoint: r.get(3)?,
                        })
                    },
                )
                .optional(),
            )?;
            if carried.is_some() {
                return Ok(carried);
            }
        }
        if !has("tlog_leaves")? {
            return Ok(None);
        }
        let index: Option<i64> = self.sql(
            conn.query_row("SELECT idx FROM tlog_leaves WHERE run = ?1", [run], |r| {
                r.get(0)
            })
            .optional(),
        )?;
        let (Some(index), Some((size, checkpoint))) = (index, self.latest_checkpoint()?) else {
            return Ok(None);
        };
        if index as u64 >= size {
            return Ok(None);
        }
        let proof = self.log_sql(tlog::inclusion_proof(&Stored(&conn), index as u64, size))?;
        Ok(Some(Inclusion {
            index: index as u64,
            size,
            proof,
            checkpoint,
        }))
    }
}

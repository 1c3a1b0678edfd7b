//! Writing a bundle: one run, its events and its blobs in a new SQLite file that appears
//! complete or not at all, whichever store the run is read from.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{Inclusion, StoreError, open_writable};

/// A run's row, as every store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub run: String,
    pub started_at: String,
    pub command: String,
    pub status: String,
    pub root: Option<String>,
}

/// An event's row: its place and its stored bytes, exactly as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub chain: String,
    pub seq: i64,
    pub kind: String,
    pub body: String,
}

/// A blob linked to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub role: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// Writes a bundle at `dest` by `fill`ing a new journal file, then moving it into place.
pub(super) fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |source: std::io::Error| StoreError::WriteBundle {
        path: dest.to_owned(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".baton-bundle")
        .tempfile_in(dir)
        .map_err(io)?;
    {
        let out = open_writable(temp.path())?;
        let sql = |source| StoreError::Sql {
            path: dest.to_owned(),
            source,
        };
        fill(&out).map_err(sql)?;
        // A bundle is one self-contained file: no WAL beside it.
        out.pragma_update(None, "journal_mode", "DELETE")
            .map_err(sql)?;
    }
    temp.persist(dest).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes the bundle of `run` at `dest` from rows read out of another store, with the host's
/// signed statement over it and its place in the store's transparency log, when it has them.
pub fn write_bundle(
    dest: &Path,
    run: &RunRow,
    events: &[EventRow],
    blobs: &[BlobRow],
    (envelope, inclusion): (Option<&str>, Option<&Inclusion>),
) -> Result<(), StoreError> {
    write_atomically(dest, |out| {
        out.execute(
            "INSERT INTO runs (run, started_at, command, status, root) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run.run, run.started_at, run.command, run.status, run.root],
        )?;
        let mut insert = out.prepare(
            "INSERT INTO events (run, chain, seq, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for e in events {
            insert.execute(params![run.run, e.chain, e.seq, e.kind, e.body])?;
        }
        if let Some(envelope) = envelope {
            out.execute(
                "INSERT INTO run_envelopes (run, envelope) VALUES (?1, ?2)",
                params![run.run, envelope],
            )?;
        }
        if let Some(inclusion) = inclusion {
            super::log::carry(out, &run.run, inclusion)?;
        }
        for blob in blobs {
            out.execute(
                "INSERT OR IGNORE INTO blobs (digest, bytes) VALUES (?1, ?2)",
                params![blob.digest, blob.bytes],
            )?;
            out.execute(
                "INSERT OR IGNORE INTO run_blobs (run, role, digest) VALUES (?1, ?2, ?3)",
                params![run.run, blob.role, blob.digest],
            )?;
        }
        Ok(())
    })
}

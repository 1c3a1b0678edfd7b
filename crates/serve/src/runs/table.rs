//! The runs the API accepted, kept in `serve.db` beside the journal: who submitted each,
//! what was asked, its status and result. The journal holds what the run did; this table
//! holds what the API must answer after a restart (and which runs a restart interrupted).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::db::Db;

/// A run as the table holds it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub key_id: String,
    pub created_at: String,
    pub status: String,
    pub request: Value,
    pub result: Option<Value>,
    pub resumed_from: Option<String>,
}

pub struct RunTable {
    db: Db,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    resumed_from TEXT,
    events TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_key ON runs(key_id, id);
";

/// Statuses of runs that have not ended.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
/// A run the server stopped (or lost) before it ended: `POST /v1/runs/{id}/resume`
/// continues it.
pub const INTERRUPTED: &str = "interrupted";

impl RunTable {
    pub fn open(path: &Path) -> Result<Self, String> {
        Ok(Self {
            db: Db::open(path, "the run table", SCHEMA)?,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.conn()
    }

    fn failed(&self, e: rusqlite::Error) -> String {
        self.db.failed(e)
    }

    pub fn insert(&self, row: &Row) -> Result<(), String> {
        self.conn()
            .execute(
                "INSERT INTO runs (id, key_id, created_at, status, request, resumed_from) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.id,
                    row.key_id,
                    row.created_at,
                    row.status,
                    row.request.to_string(),
                    row.resumed_from
                ],
            )
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// Sets `id`'s status (and result, once it has one).
    pub fn update(&self, id: &str, status: &str, result: Option<&Value>) -> Result<(), String> {
        self.conn()
            .execute(
                "UPDATE runs SET status = ?2, result = COALESCE(?3, result) WHERE id = ?1",
                params![id, status, result.map(Value::to_string)],
            )
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// Records how run `id` ended: its status, result and progress events (each its name
    /// and JSON).
    pub fn end(
        &self,
        id: &str,
        status: &str,
        result: Option<&Value>,
        events: &[(String, String)],
    ) -> Result<(), String> {
        let events = serde_json::to_string(events).expect("strings serialize");
        self.conn()
            .execute(
                "UPDATE runs SET status = ?2, result = ?3, events = ?4 WHERE id = ?1",
                params![id, status, result.map(Value::to_string), events],
            )
            .map(drop)
            .map_err(|e| self.failed(e))
    }

    /// The progress events of the ended run `id` (none for a run that never ran).
    pub fn events(&self, id: &str) -> Result<Vec<(String, String)>, String> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT events FROM runs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.failed(e))?
            .flatten();
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Marks every run that has not ended as interrupted; returns how many there were.
    pub fn interrupt_unfinished(&self) -> Result<usize, String> {
        self.conn()
            .execute(
                "UPDATE runs SET status = ?1 WHERE status IN (?2, ?3)",
                params![INTERRUPTED, QUEUED, RUNNING],
            )
            .map_err(|e| self.failed(e))
    }

    pub fn get(&self, id: &str) -> Result<Option<Row>, String> {
        self.conn()
            .query_row(
                "SELECT id, key_id, created_at, status, request, result, resumed_from \
                 FROM runs WHERE id = ?1",
                [id],
                read_row,
            )
            .optional()
            .map_err(|e| self.failed(e))
    }

    /// Up to `limit` runs newest first, older than `before` (a run id) when given, of
    /// `key_id` only when given.
    pub fn page(
        &self,
        key_id: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row>, String> {
        let conn = self.conn();
        let mut query = conn
            .prepare(
                "SELECT id, key_id, created_at, status, request, result, resumed_from FROM runs \
                 WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR id < ?2) \
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(|e| self.failed(e))?;
        let rows = query
            .query_map(params![key_id, before, limit as i64], read_row)
            .map_err(|e| self.failed(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed(e))
    }
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Row {
        id: row.get(0)?,
        key_id: row.get(1)?,
        created_at: row.get(2)?,
        status: row.get(3)?,
        request: json(row.get(4)?).unwrap_or(Value::Null),
        result: json(row.get(5)?),
        resumed_from: row.get(6)?,
    })
}

//! Where the LLM layer keeps idempotency keys and the completion cache: its own SQLite files
//! beside a SQLite journal, the PostgreSQL store, or memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_postgres::Database;

/// Where idempotency keys and the completion cache are kept.
#[derive(Debug, Clone, Default)]
pub enum Stores {
    /// In memory, for this process only.
    #[default]
    Memory,
    /// SQLite files beside the journal at this path (`llm-idempotency.db`, `llm-cache.db`,
    /// and the cache's vector indexes in `llm-cache.db.index/`).
    Beside(PathBuf),
    /// The PostgreSQL store, shared by every host, with this host's vector indexes in
    /// `index_dir` (in memory when `None`).
    Postgres {
        db: Database,
        index_dir: Option<PathBuf>,
    },
}

impl Stores {
    /// Beside the journal at `journal`, or in memory when there is none.
    pub fn beside(journal: Option<&Path>) -> Self {
        journal.map_or(Self::Memory, |j| Self::Beside(j.to_owned()))
    }
}

/// A SQLite file beside the journal (the LLM layer's idempotency keys and completion cache,
/// the runtime's cache of pure calls) opened on first use, so that calls which never need it
/// never touch it.
pub struct Store {
    path: Option<std::path::PathBuf>,
    schema: &'static str,
    db: std::sync::OnceLock<Result<std::sync::Mutex<rusqlite::Connection>, String>>,
}

impl Store {
    /// The store at `path` (in memory when `None`) with the tables of `schema`.
    pub fn new(path: Option<&Path>, schema: &'static str) -> Self {
        Self {
            path: path.map(Path::to_owned),
            schema,
            db: std::sync::OnceLock::new(),
        }
    }

    /// Whether it holds anything yet: a file store whose file was never made holds nothing.
    pub fn exists(&self) -> bool {
        self.path.as_deref().is_none_or(Path::exists)
    }

    pub fn lock(&self) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>, String> {
        let db = self
            .db
            .get_or_init(|| open_store(self.path.as_deref(), self.schema).map(Into::into))
            .as_ref()
            .map_err(|e| {
                let path = self
                    .path
                    .as_ref()
                    .map_or("(memory)".into(), |p| p.display().to_string());
                format!("cannot open {path}: {e}")
            })?;
        Ok(db.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Opens (creating if needed) one of the LLM stores at `path`, or one in memory, with
/// `schema`. WAL, with `synchronous = NORMAL`: a power cut may lose the last writes, a call
/// never waits for a disk.
fn open_store(path: Option<&Path>, schema: &str) -> Result<rusqlite::Connection, String> {
    let db = match path {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            rusqlite::Connection::open(path)
        }
        None => rusqlite::Connection::open_in_memory(),
    }
    .map_err(|e| e.to_string())?;
    db.busy_timeout(Duration::from_secs(5))
        .and_then(|_| db.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|_| db.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|_| db.execute_batch(schema))
        .map_err(|e| e.to_string())?;
    Ok(db)
}

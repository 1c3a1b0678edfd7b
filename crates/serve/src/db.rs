//! The server's SQLite file beside the journal (`serve.db`): its keys, runs and webhooks,
//! each table on a connection of its own, so that a key's lookup on every request never
//! waits behind a run's write.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

/// One connection to the file, for one table.
pub struct Db {
    /// What it holds and where, as messages name it ("the key store /x/serve.db").
    name: String,
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (creating it and its directory if need be) the file at `path` for the table
    /// `what` ("the key store"), with `schema` applied. WAL, with `synchronous = NORMAL`.
    pub fn open(path: &Path, what: &str, schema: &str) -> Result<Self, String> {
        let name = format!("{what} {}", path.display());
        let failed = |e: &dyn std::fmt::Display| format!("{name}: {e}");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| failed(&e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .and_then(|_| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|_| conn.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|_| conn.execute_batch(schema))
            .map_err(|e| failed(&e))?;
        Ok(Self {
            name,
            conn: Mutex::new(conn),
        })
    }

    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A failure of this table, as a message.
    pub fn failed(&self, e: rusqlite::Error) -> String {
        format!("{}: {e}", self.name)
    }
}

/// The file beside the journal `journal` that holds the server's keys and runs.
pub fn beside(journal: &Path) -> PathBuf {
    journal.with_file_name("serve.db")
}

/// Now, as the tables record times (RFC 3339, milliseconds).
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Now, in whole seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

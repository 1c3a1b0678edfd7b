//! The keys in `serve.db`, with what each has spent in its own columns.

use std::path::Path;

use baton_budget::{Spend, Usd};
use rusqlite::{OptionalExtension, params};

use super::{KeyError, KeyRecord, KeyTable, Stored};
use crate::db::{self, Db};

pub(super) struct Sqlite {
    db: Db,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    budget TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    spent_tokens INTEGER NOT NULL DEFAULT 0,
    spent_nano_usd INTEGER NOT NULL DEFAULT 0,
    spent_calls INTEGER NOT NULL DEFAULT 0,
    spent_fuel INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS keys_live_name ON keys(name) WHERE revoked_at IS NULL;
";

const COLUMNS: &str = "id, name, scopes, budget, created_at, revoked_at, spent_tokens, \
                       spent_nano_usd, spent_calls, spent_fuel";

impl Sqlite {
    pub(super) fn open(path: &Path) -> Result<Self, KeyError> {
        let db = Db::open(path, "the key store", SCHEMA).map_err(KeyError::Store)?;
        Ok(Self { db })
    }

    fn failed(&self, e: rusqlite::Error) -> KeyError {
        KeyError::Store(self.db.failed(e))
    }
}

impl KeyTable for Sqlite {
    fn insert(&self, record: &KeyRecord, hash: &str) -> Result<bool, KeyError> {
        let inserted = self.db.conn().execute(
            "INSERT INTO keys (id, name, hash, scopes, budget, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                record.id,
                record.name,
                hash,
                record.scopes.to_string(),
                record.budget_text,
                record.created_at
            ],
        );
        match inserted {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn list(&self) -> Result<Vec<Stored>, KeyError> {
        let conn = self.db.conn();
        let mut query = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM keys ORDER BY created_at, id"
            ))
            .map_err(|e| self.failed(e))?;
        let rows = query.query_map([], stored).map_err(|e| self.failed(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed(e))
    }

    fn revoke(&self, which: &str) -> Result<bool, KeyError> {
        let changed = self
            .db
            .conn()
            .execute(
                "UPDATE keys SET revoked_at = ?1 \
                 WHERE (name = ?2 OR id = ?2) AND revoked_at IS NULL",
                params![db::now(), which],
            )
            .map_err(|e| self.failed(e))?;
        Ok(changed > 0)
    }

    fn find(&self, hash: &str) -> Result<Option<Stored>, KeyError> {
        let conn = self.db.conn();
        // Asked on every request: the statement is prepared once.
        let mut query = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM keys WHERE hash = ?1 AND revoked_at IS NULL"
            ))
            .map_err(|e| self.failed(e))?;
        query
            .query_row([hash], stored)
            .optional()
            .map_err(|e| self.failed(e))
    }

    fn record_spend(&self, id: &str, spent: Spend) -> Result<(), KeyError> {
        self.db
            .conn()
            .execute(
                "UPDATE keys SET spent_tokens = ?2, spent_nano_usd = ?3, spent_calls = ?4, \
                 spent_fuel = ?5 WHERE id = ?1",
                params![
                    id,
                    spent.tokens as i64,
                    spent.usd.0 as i64,
                    spent.calls as i64,
                    spent.fuel as i64
                ],
            )
            .map_err(|e| self.failed(e))?;
        Ok(())
    }
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(Stored {
        id: row.get(0)?,
        name: row.get(1)?,
        scopes: row.get(2)?,
        budget: row.get(3)?,
        created_at: row.get(4)?,
        revoked_at: row.get(5)?,
        spent: Spend {
            tokens: count(6)?,
            usd: Usd(count(7)?),
            calls: count(8)?,
            fuel: count(9)?,
        },
    })
}

//! API keys: made by `baton keys create`, shown once, stored only as their SHA-256 hash
//! (a key is 32 random bytes, so a fast hash is as strong as a slow one), each with its
//! scopes, its budget and what it has spent so far. Kept in `serve.db` beside the journal.

use std::fmt;
use std::path::Path;

use baton_budget::{BudgetLimits, Spend, Usd};
use rand::Rng;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::db::{self, Db};

/// What every key begins with, so that a leaked one is easy to recognise.
pub const PREFIX: &str = "bk_";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no key named or numbered '{0}': `baton keys ls` lists them")]
    NotFound(String),
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Submit runs and see its own.
    Runs,
    /// Use the OpenAI-compatible gateway.
    Llm,
    /// Everything, and every key's runs.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Runs => "runs",
            Scope::Llm => "llm",
            Scope::Admin => "admin",
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    runs: bool,
    llm: bool,
    admin: bool,
}

impl Scopes {
    /// Parses `runs,llm,admin` (any subset, at least one).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut scopes = Scopes::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "runs" => scopes.runs = true,
                "llm" => scopes.llm = true,
                "admin" => scopes.admin = true,
                other => return Err(format!("'{other}' is not a scope (runs, llm, admin)")),
            }
        }
        if scopes == Scopes::default() {
            return Err("a key needs at least one scope (runs, llm, admin)".into());
        }
        Ok(scopes)
    }

    /// Whether it allows `scope` (admin allows everything).
    pub fn allow(&self, scope: Scope) -> bool {
        self.admin
            || match scope {
                Scope::Runs => self.runs,
                Scope::Llm => self.llm,
                Scope::Admin => false,
            }
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.runs, "runs"),
            (self.llm, "llm"),
            (self.admin, "admin"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&set.join(","))
    }
}

/// A key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    /// Its budget as given (`usd=1,tokens=100000`), empty when unlimited.
    pub budget_text: String,
    pub budget: BudgetLimits,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub spent: Spend,
}

/// A key just made: the only time its secret is seen.
#[derive(Debug)]
pub struct Created {
    pub record: KeyRecord,
    pub secret: String,
}

pub struct Keys {
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

impl Keys {
    /// The key store beside the journal `journal` (`serve.db` in its directory).
    pub fn beside(journal: &Path) -> Result<Self, KeyError> {
        Self::open(&db::beside(journal))
    }

    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let db = Db::open(path, "the key store", SCHEMA).map_err(KeyError::Store)?;
        Ok(Self { db })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.conn()
    }

    fn failed(&self, e: rusqlite::Error) -> KeyError {
        KeyError::Store(self.db.failed(e))
    }

    /// Makes a key named `name` (unique among keys not revoked).
    pub fn create(
        &self,
        name: &str,
        scopes: Scopes,
        limits: BudgetLimits,
    ) -> Result<Created, KeyError> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(KeyError::Invalid(
                "a key's name must be 1 to 64 printable characters".into(),
            ));
        }
        if limits.time.is_some() {
            return Err(KeyError::Invalid(
                "--budget: a key's budget is spent over its life and has no time limit; give \
                 tokens, usd, calls or fuel"
                    .into(),
            ));
        }
        let budget = limits.to_text();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{PREFIX}{}", hex::encode(bytes));
        let record = KeyRecord {
            id: ulid::Ulid::generate().to_string().to_lowercase(),
            name: name.into(),
            scopes,
            budget_text: budget.clone(),
            budget: limits,
            created_at: db::now(),
            revoked_at: None,
            spent: Spend::default(),
        };
        let inserted = self.conn().execute(
            "INSERT INTO keys (id, name, hash, scopes, budget, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                record.id,
                record.name,
                hash(&secret),
                scopes.to_string(),
                budget,
                record.created_at
            ],
        );
        match inserted {
            Ok(_) => Ok(Created { record, secret }),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(KeyError::Invalid(format!(
                    "a key named '{name}' exists: revoke it first (`baton keys revoke {name}`) \
                     or choose another name"
                )))
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Every key, revoked ones too, oldest first.
    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let conn = self.conn();
        let mut query = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM keys ORDER BY created_at, id"
            ))
            .map_err(|e| self.failed(e))?;
        let rows = query
            .query_map([], read_record)
            .map_err(|e| self.failed(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.failed(e))?
            .into_iter()
            .collect()
    }

    /// Revokes the live key named (or whose id is) `which`; it stops working at once.
    pub fn revoke(&self, which: &str) -> Result<KeyRecord, KeyError> {
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE keys SET revoked_at = ?1 \
                 WHERE (name = ?2 OR id = ?2) AND revoked_at IS NULL",
                params![db::now(), which],
            )
            .map_err(|e| self.failed(e))?;
        if changed == 0 {
            return Err(KeyError::NotFound(which.into()));
        }
        drop(conn);
        self.list()?
            .into_iter()
            .rfind(|k| k.name == which || k.id == which)
            .ok_or_else(|| KeyError::NotFound(which.into()))
    }

    /// The live key whose secret is `secret`.
    pub fn find(&self, secret: &str) -> Result<Option<KeyRecord>, KeyError> {
        let conn = self.conn();
        // Asked on every request: the statement is prepared once.
        let mut query = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM keys WHERE hash = ?1 AND revoked_at IS NULL"
            ))
            .map_err(|e| self.failed(e))?;
        let found = query
            .query_row([hash(secret)], read_record)
            .optional()
            .map_err(|e| self.failed(e))?;
        found.transpose()
    }

    /// Records what the key `id` has spent in all (as its ledger says).
    pub fn record_spend(&self, id: &str, spent: Spend) -> Result<(), KeyError> {
        self.conn()
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

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<KeyRecord, KeyError>> {
    let scopes: String = row.get(2)?;
    let budget_text: String = row.get(3)?;
    let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
    let spent = Spend {
        tokens: count(6)?,
        usd: Usd(count(7)?),
        calls: count(8)?,
        fuel: count(9)?,
    };
    let id: String = row.get(0)?;
    let parsed = Scopes::parse(&scopes)
        .and_then(|s| Ok((s, BudgetLimits::parse(&budget_text)?)))
        .map_err(|e| KeyError::Invalid(format!("key {id} is stored damaged: {e}")));
    Ok(match parsed {
        Ok((scopes, budget)) => Ok(KeyRecord {
            id,
            name: row.get(1)?,
            scopes,
            budget_text,
            budget,
            created_at: row.get(4)?,
            revoked_at: row.get(5)?,
            spent,
        }),
        Err(e) => Err(e),
    })
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str) -> BudgetLimits {
        BudgetLimits::parse(text).unwrap()
    }

    #[test]
    fn a_key_is_found_by_its_secret_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(&dir.path().join("keys.db")).unwrap();
        let made = keys
            .create("ci", Scopes::parse("llm").unwrap(), limits("usd=1"))
            .unwrap();
        assert!(made.secret.starts_with(PREFIX));
        let found = keys.find(&made.secret).unwrap().unwrap();
        assert_eq!(found.name, "ci");
        assert!(found.scopes.allow(Scope::Llm) && !found.scopes.allow(Scope::Runs));
        assert_eq!(found.budget.usd, Some(Usd::parse("1").unwrap()));
        assert!(keys.find("bk_other").unwrap().is_none());
        // The secret itself is nowhere in the store.
        let stored = std::fs::read(dir.path().join("keys.db")).unwrap();
        assert!(
            !stored
                .windows(10)
                .any(|w| w == &made.secret.as_bytes()[3..13])
        );
        keys.revoke("ci").unwrap();
        assert!(keys.find(&made.secret).unwrap().is_none());
        assert!(matches!(keys.revoke("ci"), Err(KeyError::NotFound(_))));
    }

    #[test]
    fn names_are_unique_among_live_keys_and_budgets_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(&dir.path().join("keys.db")).unwrap();
        let all = Scopes::parse("admin").unwrap();
        keys.create("a", all, limits("")).unwrap();
        let twice = keys.create("a", all, limits("")).unwrap_err().to_string();
        assert!(twice.contains("exists"), "{twice}");
        keys.revoke("a").unwrap();
        keys.create("a", all, limits("")).unwrap();
        assert!(keys.create("b", all, limits("time=5s")).is_err());
        assert!(Scopes::parse("root").is_err() && Scopes::parse("").is_err());
    }

    #[test]
    fn spend_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(&dir.path().join("keys.db")).unwrap();
        let made = keys
            .create(
                "k",
                Scopes::parse("runs,llm").unwrap(),
                limits("usd=0.5,calls=3"),
            )
            .unwrap();
        let spent = Spend {
            tokens: 12,
            usd: Usd(34),
            calls: 2,
            fuel: 0,
        };
        keys.record_spend(&made.record.id, spent).unwrap();
        let listed = &keys.list().unwrap()[0];
        assert_eq!(listed.spent, spent);
        assert_eq!(listed.budget, limits("usd=0.5,calls=3"));
    }
}

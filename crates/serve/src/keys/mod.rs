//! API keys: made by `baton keys create`, shown once, stored only as their SHA-256 hash
//! (a key is 32 random bytes, so a fast hash is as strong as a slow one), each with its
//! scopes, its budget and what it has spent so far. Kept in `serve.db` beside a SQLite
//! journal, or in the PostgreSQL store, where what a key spends is a shared ledger that every
//! server reserves in.

use std::fmt;
use std::path::Path;

use baton_budget::{BudgetLimits, Spend};
use baton_postgres::Database;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::db;

mod postgres;
mod sqlite;

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
    table: Box<dyn KeyTable>,
    /// The PostgreSQL store the keys are in, if they are.
    shared: Option<Database>,
}

/// A key's row as either store keeps it.
struct Stored {
    id: String,
    name: String,
    scopes: String,
    budget: String,
    created_at: String,
    revoked_at: Option<String>,
    spent: Spend,
}

impl Stored {
    fn record(self) -> Result<KeyRecord, KeyError> {
        let parsed = Scopes::parse(&self.scopes)
            .and_then(|s| Ok((s, BudgetLimits::parse(&self.budget)?)))
            .map_err(|e| KeyError::Invalid(format!("key {} is stored damaged: {e}", self.id)))?;
        Ok(KeyRecord {
            id: self.id,
            name: self.name,
            scopes: parsed.0,
            budget_text: self.budget,
            budget: parsed.1,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            spent: self.spent,
        })
    }
}

/// The keys' table in one store.
trait KeyTable: Send + Sync {
    /// Adds `record`, whose secret hashes to `hash`; false when a live key has its name.
    fn insert(&self, record: &KeyRecord, hash: &str) -> Result<bool, KeyError>;
    /// Every key, revoked ones too, oldest first.
    fn list(&self) -> Result<Vec<Stored>, KeyError>;
    /// Revokes the live key named or numbered `which`; whether there was one.
    fn revoke(&self, which: &str) -> Result<bool, KeyError>;
    /// The live key whose secret hashes to `hash`.
    fn find(&self, hash: &str) -> Result<Option<Stored>, KeyError>;
    /// Records what the key `id` has spent in all.
    fn record_spend(&self, id: &str, spent: Spend) -> Result<(), KeyError>;
}

impl Keys {
    /// The key store beside the journal `journal` (`serve.db` in its directory).
    pub fn beside(journal: &Path) -> Result<Self, KeyError> {
        Self::open(&db::beside(journal))
    }

    pub fn open(path: &Path) -> Result<Self, KeyError> {
        Ok(Self {
            table: Box::new(sqlite::Sqlite::open(path)?),
            shared: None,
        })
    }

    /// The keys in the PostgreSQL store `db`.
    pub fn in_postgres(db: Database) -> Self {
        Self {
            table: Box::new(postgres::Postgres(db.clone())),
            shared: Some(db),
        }
    }

    /// The PostgreSQL store whose ledgers hold what each key spends, when the keys are there.
    pub fn shared(&self) -> Option<&Database> {
        self.shared.as_ref()
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
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("{PREFIX}{}", hex::encode(bytes));
        let record = KeyRecord {
            id: ulid::Ulid::generate().to_string().to_lowercase(),
            name: name.into(),
            scopes,
            budget_text: limits.to_text(),
            budget: limits,
            created_at: db::now(),
            revoked_at: None,
            spent: Spend::default(),
        };
        if !self.table.insert(&record, &hash(&secret))? {
            return Err(KeyError::Invalid(format!(
                "a key named '{name}' exists: revoke it first (`baton keys revoke {name}`) \
                 or choose another name"
            )));
        }
        Ok(Created { record, secret })
    }

    /// Every key, revoked ones too, oldest first.
    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.table.list()?.into_iter().map(Stored::record).collect()
    }

    /// Revokes the live key named (or whose id is) `which`; it stops working at once.
    pub fn revoke(&self, which: &str) -> Result<KeyRecord, KeyError> {
        if !self.table.revoke(which)? {
            return Err(KeyError::NotFound(which.into()));
        }
        self.list()?
            .into_iter()
            .rfind(|k| k.name == which || k.id == which)
            .ok_or_else(|| KeyError::NotFound(which.into()))
    }

    /// The live key whose secret is `secret`.
    pub fn find(&self, secret: &str) -> Result<Option<KeyRecord>, KeyError> {
        self.table
            .find(&hash(secret))?
            .map(Stored::record)
            .transpose()
    }

    /// Records what the key `id` has spent in all (as its ledger says). A key in PostgreSQL
    /// needs none: its shared ledger counts every reservation as it settles.
    pub fn record_spend(&self, id: &str, spent: Spend) -> Result<(), KeyError> {
        self.table.record_spend(id, spent)
    }
}

/// The name of key `id`'s shared ledger.
pub fn ledger_of(id: &str) -> String {
    format!("key:{id}")
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_budget::Usd;

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

//! The keys in the PostgreSQL store (its migration V4): what a key may spend and has spent
//! is its shared ledger (`key:ID`), which every server reserves in.

use baton_budget::{Spend, Usd};
use baton_postgres::Database;
use baton_postgres::tokio_postgres::Row;

use super::{KeyError, KeyRecord, KeyTable, Stored, ledger_of};
use crate::db;

pub(super) struct Postgres(pub(super) Database);

/// A key's columns with its ledger's spend.
const SELECT: &str = "SELECT k.id, k.name, k.scopes, k.budget, k.created_at, k.revoked_at,
                             coalesce(l.spent_tokens, 0), coalesce(l.spent_usd, 0),
                             coalesce(l.spent_calls, 0), coalesce(l.spent_fuel, 0)
                      FROM api_keys k LEFT JOIN ledgers l ON l.id = 'key:' || k.id";

fn limit(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Postgres {
    fn query<T: Send + 'static, F>(
        &self,
        query: impl FnOnce(std::sync::Arc<baton_postgres::Client>) -> F + Send + 'static,
    ) -> Result<T, KeyError>
    where
        F: Future<Output = Result<T, baton_postgres::tokio_postgres::Error>> + Send + 'static,
    {
        self.0
            .query(query)
            .map_err(|e| KeyError::Store(format!("the key store: {e}")))
    }
}

impl KeyTable for Postgres {
    fn insert(&self, record: &KeyRecord, hash: &str) -> Result<bool, KeyError> {
        let limits = record.budget;
        let row = (
            record.id.clone(),
            record.name.clone(),
            hash.to_owned(),
            record.scopes.to_string(),
            record.budget_text.clone(),
            record.created_at.clone(),
        );
        let ledger = ledger_of(&record.id);
        let inserted = self.0.transaction("BEGIN", move |client| async move {
            let (id, name, hash, scopes, budget, created_at) = row;
            let inserted = client
                .execute(
                    "INSERT INTO api_keys (id, name, hash, scopes, budget, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&id, &name, &hash, &scopes, &budget, &created_at],
                )
                .await?;
            if inserted == 0 {
                return Ok(false);
            }
            client
                .execute(
                    "INSERT INTO ledgers (id, limit_tokens, limit_usd, limit_calls, limit_fuel)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &ledger,
                        &limit(limits.tokens),
                        &limit(limits.usd.map(|u| u.0)),
                        &limit(limits.calls),
                        &limit(limits.fuel),
                    ],
                )
                .await?;
            Ok(true)
        });
        inserted.map_err(|e| KeyError::Store(format!("the key store: {e}")))
    }

    fn list(&self) -> Result<Vec<Stored>, KeyError> {
        self.query(|client| async move {
            let rows = client
                .query(&format!("{SELECT} ORDER BY k.created_at, k.id"), &[])
                .await?;
            Ok(rows.iter().map(stored).collect())
        })
    }

    fn revoke(&self, which: &str) -> Result<bool, KeyError> {
        let (which, now) = (which.to_owned(), db::now());
        self.query(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE api_keys SET revoked_at = $1
                     WHERE (name = $2 OR id = $2) AND revoked_at IS NULL",
                    &[&now, &which],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn find(&self, hash: &str) -> Result<Option<Stored>, KeyError> {
        let hash = hash.to_owned();
        self.query(move |client| async move {
            let row = client
                .query_opt(
                    &format!("{SELECT} WHERE k.hash = $1 AND k.revoked_at IS NULL"),
                    &[&hash],
                )
                .await?;
            Ok(row.as_ref().map(stored))
        })
    }

    fn record_spend(&self, _: &str, _: Spend) -> Result<(), KeyError> {
        Ok(())
    }
}

fn stored(row: &Row) -> Stored {
    let count = |i| row.get::<_, i64>(i).max(0) as u64;
    Stored {
        id: row.get(0),
        name: row.get(1),
        scopes: row.get(2),
        budget: row.get(3),
        created_at: row.get(4),
        revoked_at: row.get(5),
        spent: Spend {
            tokens: count(6),
            usd: Usd(count(7)),
            calls: count(8),
            fuel: count(9),
        },
    }
}

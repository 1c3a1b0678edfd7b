//! Budgets shared by the hosts of a run: a ledger row that every reservation is checked and
//! taken against in one statement (the row's lock makes concurrent reservations wait their
//! turn and see each other), and a hold row per reservation, named by its owner.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_budget::{Account, BudgetLimits, Exceeded, HoldId, Spend, Usd};
use baton_journal::store::StoreError;

use crate::Database;
use crate::connection::{describe, passing};
use crate::journal::Db;

/// How long a reservation waits for a server that cannot be reached before it is refused.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

fn amount(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn limit(value: Option<u64>) -> Option<i64> {
    value.map(amount)
}

impl Database {
    /// Creates the shared ledger `id` with `limits`, unless it exists.
    pub fn open_ledger(&self, id: &str, limits: BudgetLimits) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.db.call(|connector| async move {
            connector
                .client()
                .await?
                .execute(
                    "INSERT INTO ledgers (id, limit_tokens, limit_usd, limit_calls, limit_fuel)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[
                        &id,
                        &limit(limits.tokens),
                        &limit(limits.usd.map(|u| u.0)),
                        &limit(limits.calls),
                        &limit(limits.fuel),
                    ],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(())
        })
    }

    /// The ledger `id` as an account whose holds are named `owner`.
    pub fn account(&self, id: &str, owner: &str) -> Arc<dyn Account> {
        Arc::new(PgAccount {
            db: self.db.clone(),
            ledger: id.into(),
            owner: owner.into(),
        })
    }

    /// The ledger `id`'s limits, what it has spent (committed) and what is held, if it
    /// exists.
    pub fn ledger(&self, id: &str) -> Result<Option<LedgerState>, StoreError> {
        Ok(self.ledgers(&[id.to_owned()])?.pop().flatten())
    }

    /// The state of each of the ledgers `ids` (in their order), in one query.
    pub fn ledgers(&self, ids: &[String]) -> Result<Vec<Option<LedgerState>>, StoreError> {
        let ids = ids.to_vec();
        self.db.call(|connector| async move {
            let rows = connector
                .client()
                .await?
                .query(
                    "SELECT id, limit_tokens, limit_usd, limit_calls, limit_fuel,
                            spent_tokens, spent_usd, spent_calls, spent_fuel,
                            held_tokens, held_usd, held_calls, held_fuel
                     FROM ledgers WHERE id = ANY($1)",
                    &[&ids],
                )
                .await
                .map_err(|e| describe(&e))?;
            let mut found: std::collections::HashMap<String, LedgerState> = rows
                .iter()
                .map(|row| {
                    let limit = |i| row.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64);
                    let spend = |i| Spend {
                        tokens: row.get::<_, i64>(i).max(0) as u64,
                        usd: Usd(row.get::<_, i64>(i + 1).max(0) as u64),
                        calls: row.get::<_, i64>(i + 2).max(0) as u64,
                        fuel: row.get::<_, i64>(i + 3).max(0) as u64,
                    };
                    let state = LedgerState {
                        limits: BudgetLimits {
                            tokens: limit(1),
                            usd: limit(2).map(Usd),
                            calls: limit(3),
                            fuel: limit(4),
                            time: None,
                        },
                        spent: spend(5),
                        held: spend(9),
                    };
                    (row.get(0), state)
                })
                .collect();
            Ok(ids.iter().map(|id| found.remove(id)).collect())
        })
    }

    /// Releases every hold `owner` left (a step whose worker died before it settled them).
    pub fn release_holds(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.db.call(|connector| async move {
            connector
                .client()
                .await?
                .execute(
                    "WITH gone AS (DELETE FROM holds WHERE owner = $1
                                   RETURNING ledger, tokens, usd, calls, fuel),
                          total AS (SELECT ledger, sum(tokens) t, sum(usd) u, sum(calls) c,
                                           sum(fuel) f FROM gone GROUP BY ledger)
                     UPDATE ledgers l SET held_tokens = held_tokens - total.t,
                         held_usd = held_usd - total.u, held_calls = held_calls - total.c,
                         held_fuel = held_fuel - total.f
                     FROM total WHERE l.id = total.ledger",
                    &[&owner],
                )
                .await
                .map_err(|e| describe(&e))
        })
    }
}

/// A shared ledger as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerState {
    pub limits: BudgetLimits,
    /// Committed.
    pub spent: Spend,
    /// Reserved by calls in flight.
    pub held: Spend,
}

/// A shared ledger, as the budget layer reserves against it.
struct PgAccount {
    db: Arc<Db>,
    ledger: String,
    owner: String,
}

impl std::fmt::Debug for PgAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ledger '{}' in {}", self.ledger, self.db.location)
    }
}

/// What the server answered a reservation.
enum Answer {
    Granted(HoldId),
    /// Refused, with the ledger's row (if it exists) to say why.
    Refused(Option<Row>),
    /// The server could not be reached or was going away: worth trying again.
    Unreachable(String),
}

/// The row of a ledger, to say which limit a refused reservation did not fit.
struct Row {
    limits: [Option<i64>; 4],
    used: [i64; 4],
}

impl PgAccount {
    fn refused(&self, what: String) -> Exceeded {
        Exceeded {
            scope: "run (shared)".into(),
            key: "shared",
            what,
            raise: None,
        }
    }

    /// Why `want` did not fit `row`.
    fn why(&self, row: Option<Row>, want: Spend) -> Exceeded {
        let Some(row) = row else {
            return self.refused(format!(
                "the shared ledger '{}' does not exist",
                self.ledger
            ));
        };
        let wanted = [want.tokens, want.usd.0, want.calls, want.fuel].map(amount);
        let keys = ["tokens", "usd", "calls", "fuel"];
        for i in 0..4 {
            if let Some(limit) = row.limits[i]
                && wanted[i] > 0
                && row.used[i].saturating_add(wanted[i]) > limit
            {
                let (w, u, l) = match keys[i] {
                    "usd" => (
                        Usd(wanted[i] as u64).to_string(),
                        Usd(row.used[i] as u64).to_string(),
                        Usd(limit as u64).to_string(),
                    ),
                    key => (
                        baton_budget::amount(wanted[i] as u64, key),
                        row.used[i].to_string(),
                        limit.to_string(),
                    ),
                };
                return Exceeded {
                    scope: "run".into(),
                    key: keys[i],
                    what: format!("{w} needed, {u} of {l} spent or reserved across the cluster"),
                    raise: None,
                };
            }
        }
        self.refused("another host took what was left first".into())
    }
}

impl Account for PgAccount {
    fn reserve(&self, want: Spend) -> Result<HoldId, Exceeded> {
        let (ledger, owner) = (self.ledger.clone(), self.owner.clone());
        let wanted = [want.tokens, want.usd.0, want.calls, want.fuel].map(amount);
        let started = Instant::now();
        loop {
            let (ledger, owner) = (ledger.clone(), owner.clone());
            let answer = self.db.call(move |connector| async move {
                let client = match connector.client().await {
                    Ok(client) => client,
                    Err(e) => return Ok(Answer::Unreachable(e)),
                };
                let granted = match client
                    .query_opt(
                        "WITH granted AS (
                             UPDATE ledgers SET held_tokens = held_tokens + $2,
                                 held_usd = held_usd + $3, held_calls = held_calls + $4,
                                 held_fuel = held_fuel + $5
                             WHERE id = $1
                               AND ($2::int8 = 0 OR limit_tokens IS NULL
                                    OR spent_tokens + held_tokens + $2 <= limit_tokens)
                               AND ($3::int8 = 0 OR limit_usd IS NULL
                                    OR spent_usd + held_usd + $3 <= limit_usd)
                               AND ($4::int8 = 0 OR limit_calls IS NULL
                                    OR spent_calls + held_calls + $4 <= limit_calls)
                               AND ($5::int8 = 0 OR limit_fuel IS NULL
                                    OR spent_fuel + held_fuel + $5 <= limit_fuel)
                             RETURNING id)
                         INSERT INTO holds (ledger, owner, tokens, usd, calls, fuel)
                         SELECT id, $6, $2, $3, $4, $5 FROM granted RETURNING id",
                        &[
                            &ledger, &wanted[0], &wanted[1], &wanted[2], &wanted[3], &owner,
                        ],
                    )
                    .await
                {
                    Ok(granted) => granted,
                    Err(e) if passing(&e) => return Ok(Answer::Unreachable(describe(&e))),
                    Err(e) => return Err(describe(&e)),
                };
                if let Some(hold) = granted {
                    return Ok(Answer::Granted(hold.get::<_, i64>(0)));
                }
                let row = client
                    .query_opt(
                        "SELECT limit_tokens, limit_usd, limit_calls, limit_fuel,
                                spent_tokens + held_tokens, spent_usd + held_usd,
                                spent_calls + held_calls, spent_fuel + held_fuel
                         FROM ledgers WHERE id = $1",
                        &[&ledger],
                    )
                    .await
                    .map_err(|e| describe(&e))?
                    .map(|row| Row {
                        limits: [row.get(0), row.get(1), row.get(2), row.get(3)],
                        used: [row.get(4), row.get(5), row.get(6), row.get(7)],
                    });
                Ok(Answer::Refused(row))
            });
            match answer {
                Ok(Answer::Granted(hold)) => return Ok(hold),
                Ok(Answer::Refused(row)) => return Err(self.why(row, want)),
                Err(e) => return Err(self.refused(format!("the shared budget failed: {e}"))),
                Ok(Answer::Unreachable(e)) if started.elapsed() >= UNREACHABLE_FOR => {
                    return Err(self.refused(format!("the shared budget cannot be reached: {e}")));
                }
                Ok(Answer::Unreachable(e)) => {
                    tracing::warn!("a reservation waits for PostgreSQL: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn settle(&self, hold: HoldId, actual: Spend) {
        let spent = [actual.tokens, actual.usd.0, actual.calls, actual.fuel].map(amount);
        let settled = self.db.call(move |connector| async move {
            connector
                .client()
                .await?
                .execute(
                    "WITH gone AS (DELETE FROM holds WHERE id = $1
                                   RETURNING ledger, tokens, usd, calls, fuel)
                     UPDATE ledgers l SET held_tokens = held_tokens - g.tokens,
                         held_usd = held_usd - g.usd, held_calls = held_calls - g.calls,
                         held_fuel = held_fuel - g.fuel,
                         spent_tokens = spent_tokens + $2, spent_usd = spent_usd + $3,
                         spent_calls = spent_calls + $4, spent_fuel = spent_fuel + $5
                     FROM gone g WHERE l.id = g.ledger",
                    &[&hold, &spent[0], &spent[1], &spent[2], &spent[3]],
                )
                .await
                .map_err(|e| describe(&e))
        });
        if let Err(e) = settled {
            tracing::error!(
                "cannot settle hold {hold} of ledger '{}': {e}; what it held stays reserved",
                self.ledger
            );
        }
    }

    fn id(&self) -> &str {
        &self.ledger
    }
}

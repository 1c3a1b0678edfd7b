//! Steps run by workers: the outcome of each completed step, and the chains of a step a
//! worker left half-written, set aside so that the step can run again from scratch.

use baton_journal::store::StoreError;

use crate::connection::describe;
use crate::journal::PgStore;

/// The condition selecting the chains of step `$2` of run `$1`: its own chain and those of
/// its retries (`~`), replicates (`#`) and nested calls (`/`).
const STEP_CHAINS: &str = "run = $1 AND (chain = 'step:' || $2
     OR starts_with(chain, 'step:' || $2 || '~') OR starts_with(chain, 'step:' || $2 || '#')
     OR starts_with(chain, 'step:' || $2 || '/'))";

impl PgStore {
    /// The outcome recorded for step `step` of run `run`, if a worker completed it.
    pub fn step_outcome(&self, run: &str, step: &str) -> Result<Option<String>, StoreError> {
        let (run, step) = (run.to_owned(), step.to_owned());
        self.db.call(|connector| async move {
            let row = connector
                .client()
                .await?
                .query_opt(
                    "SELECT outcome FROM step_outcomes WHERE run = $1 AND step = $2",
                    &[&run, &step],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Records the outcome of step `step`, whose chains the caller has committed; returns the
    /// outcome that stands (an earlier one, if another worker recorded it first).
    pub fn save_step_outcome(
        &self,
        run: &str,
        step: &str,
        outcome: &str,
    ) -> Result<String, StoreError> {
        let (run, step, outcome) = (run.to_owned(), step.to_owned(), outcome.to_owned());
        self.db.call(|connector| async move {
            let client = connector.client().await?;
            let inserted = client
                .query_opt(
                    "INSERT INTO step_outcomes (run, step, outcome) VALUES ($1, $2, $3)
                     ON CONFLICT (run, step) DO NOTHING RETURNING outcome",
                    &[&run, &step, &outcome],
                )
                .await
                .map_err(|e| describe(&e))?;
            if let Some(row) = inserted {
                return Ok(row.get(0));
            }
            let row = client
                .query_one(
                    "SELECT outcome FROM step_outcomes WHERE run = $1 AND step = $2",
                    &[&run, &step],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(row.get(0))
        })
    }

    /// Moves the events of step `step`'s chains out of run `run` (into `abandoned_events`);
    /// returns how many there were.
    pub fn abandon_step(&self, run: &str, step: &str) -> Result<u64, StoreError> {
        self.flush()?;
        let (run, step) = (run.to_owned(), step.to_owned());
        self.db.call(|connector| async move {
            let written = connector
                .client()
                .await?
                .query_opt(
                    &format!("SELECT 1 FROM events WHERE {STEP_CHAINS} LIMIT 1"),
                    &[&run, &step],
                )
                .await
                .map_err(|e| describe(&e))?;
            if written.is_none() {
                return Ok(0);
            }
            // A connection of its own: its transaction holds no reader's query.
            let client = connector.another().client().await?;
            let moved = async {
                client.batch_execute("BEGIN").await?;
                client
                    .execute(
                        &format!(
                            "INSERT INTO abandoned_events (run, chain, seq, kind, body)
                             SELECT run, chain, seq, kind, body FROM events WHERE {STEP_CHAINS}"
                        ),
                        &[&run, &step],
                    )
                    .await?;
                let moved = client
                    .execute(
                        &format!("DELETE FROM events WHERE {STEP_CHAINS}"),
                        &[&run, &step],
                    )
                    .await?;
                client.batch_execute("COMMIT").await?;
                Ok::<_, tokio_postgres::Error>(moved)
            }
            .await;
            match moved {
                Ok(moved) => Ok(moved),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(describe(&e))
                }
            }
        })
    }

    /// How many events of run `run` were set aside from half-written step chains.
    pub fn abandoned_events(&self, run: &str) -> Result<u64, StoreError> {
        let run = run.to_owned();
        self.db.call(|connector| async move {
            let row = connector
                .client()
                .await?
                .query_one(
                    "SELECT count(*) FROM abandoned_events WHERE run = $1",
                    &[&run],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }
}

//! The transparency log of signed runs in PostgreSQL (migration V6), as the SQLite store keeps
//! it (see `baton_journal::tlog`): a signed run's envelope is appended as a leaf in the
//! writer's transaction, under a lock, so that hosts sharing the store number leaves in turn.

use std::collections::HashMap;

use baton_journal::store::{Inclusion, LOG_SIZE, StoreError, TransparencyLog};
use baton_journal::tlog::{self, Hash, Nodes};
use tokio_postgres::types::ToSql;

use crate::client::Client;
use crate::connection::describe;
use crate::journal::PgStore;

/// Any key of the advisory lock appends take (the same in every host).
const APPEND_LOCK: i64 = 0x6261_746f_6e5f_746c;

/// Subtrees fetched ahead, for a computation that needs only them (see `tlog::nodes_read`).
type Fetched = HashMap<(u32, u64), Hash>;

/// The subtrees named in `wanted`, in one query.
async fn fetch(client: &Client, wanted: &[(u32, u64)]) -> Result<Fetched, tokio_postgres::Error> {
    if wanted.is_empty() {
        // Half of all appends (to a log of even size) complete no subtree.
        return Ok(Fetched::new());
    }
    let levels: Vec<i32> = wanted.iter().map(|(l, _)| *l as i32).collect();
    let indexes: Vec<i64> = wanted.iter().map(|(_, i)| *i as i64).collect();
    let rows = client
        .query(
            "SELECT n.level, n.idx, n.hash FROM tlog_nodes n
             JOIN unnest($1::int4[], $2::int8[]) AS w(level, idx)
               ON n.level = w.level AND n.idx = w.idx",
            &[&levels, &indexes],
        )
        .await?;
    let mut fetched = HashMap::new();
    for row in rows {
        let level: i32 = row.get(0);
        let index: i64 = row.get(1);
        // A node that is not a hash is left out: the computation then names it missing.
        if let Ok(hash) = Hash::try_from(row.get::<_, Vec<u8>>(2)) {
            fetched.insert((level as u32, index as u64), hash);
        }
    }
    Ok(fetched)
}

/// Appends the envelope of `run` to the log unless it is in it; `client` is in the writer's
/// transaction.
pub(crate) async fn append(
    client: &Client,
    run: &str,
    envelope: &str,
) -> Result<(), tokio_postgres::Error> {
    // Sent at once (tokio-postgres pipelines requests made together; `biased` sends them in
    // this order): the server runs them in turn, and each statement reads with a snapshot
    // taken when it starts, after the lock is held.
    let named: [&(dyn ToSql + Sync); 1] = [&run];
    let (_, logged, size) = tokio::try_join!(
        biased;
        client.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK]),
        client.query_opt("SELECT 1 FROM tlog_leaves WHERE run = $1", &named),
        client.query_one(LOG_SIZE, &[]),
    )?;
    if logged.is_some() {
        return Ok(());
    }
    let size: i64 = size.get(0);
    let leaf = tlog::leaf_hash(envelope.as_bytes());
    // The left siblings the new leaf completes subtrees with.
    let siblings = fetch(
        client,
        &tlog::nodes_read(|nodes| tlog::completed(nodes, size as u64, leaf)),
    )
    .await?;
    // A missing sibling (a damaged log) leaves the leaf unlogged rather than the log wrong.
    let Ok(made) = tlog::completed(&siblings, size as u64, leaf) else {
        tracing::error!("run {run} is not logged: its log is missing subtrees");
        return Ok(());
    };
    let levels: Vec<i32> = made.iter().map(|(l, _, _)| *l as i32).collect();
    let indexes: Vec<i64> = made.iter().map(|(_, i, _)| *i as i64).collect();
    let hashes: Vec<&[u8]> = made.iter().map(|(_, _, h)| &h[..]).collect();
    let leaf = &leaf[..];
    let leaf_row: [&(dyn ToSql + Sync); 3] = [&size, &run, &leaf];
    let node_rows: [&(dyn ToSql + Sync); 3] = [&levels, &indexes, &hashes];
    tokio::try_join!(
        client.execute(
            "INSERT INTO tlog_leaves (idx, run, hash) VALUES ($1, $2, $3)",
            &leaf_row,
        ),
        client.execute(
            "INSERT INTO tlog_nodes (level, idx, hash)
             SELECT * FROM unnest($1::int4[], $2::int8[], $3::bytea[])",
            &node_rows,
        ),
    )?;
    Ok(())
}

impl PgStore {
    fn query<T: Send + 'static, F>(
        &self,
        query: impl FnOnce(std::sync::Arc<Client>) -> F + Send + 'static,
    ) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        self.flush()?;
        self.db.call(|connector| async move {
            let client = connector.client().await?;
            query(client).await.map_err(|e| describe(&e))
        })
    }

    /// `compute` over the log's subtrees, fetched first in one query: a read per subtree
    /// would cost a round trip each, `O(log n)` of them for a root or a proof.
    fn over_nodes<T>(
        &self,
        compute: impl Fn(&dyn Nodes) -> Result<T, String>,
    ) -> Result<T, StoreError> {
        let wanted = tlog::nodes_read(&compute);
        let fetched = self.query(move |client| async move { fetch(&client, &wanted).await })?;
        compute(&fetched).map_err(|e| self.log_error(e))
    }

    fn log_error(&self, reason: String) -> StoreError {
        StoreError::Server {
            location: self.db.location.clone(),
            reason: format!("its transparency log: {reason}"),
        }
    }
}

impl TransparencyLog for PgStore {
    fn log_head(&self) -> Result<(u64, Hash), StoreError> {
        let size: i64 =
            self.query(|client| async move { Ok(client.query_one(LOG_SIZE, &[]).await?.get(0)) })?;
        let root = self.over_nodes(|nodes| tlog::root(nodes, size as u64))?;
        Ok((size as u64, root))
    }

    fn log_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, StoreError> {
        self.over_nodes(|nodes| tlog::consistency_proof(nodes, old, new))
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.query(|client| async move {
            let row = client
                .query_opt(
                    "SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1",
                    &[],
                )
                .await?;
            Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
        })
    }

    fn inclusion(&self, run: &str) -> Result<Option<Inclusion>, StoreError> {
        let run = run.to_owned();
        let index: Option<i64> = self.query(|client| async move {
            let row = client
                .query_opt("SELECT idx FROM tlog_leaves WHERE run = $1", &[&run])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })?;
        let (Some(index), Some((size, checkpoint))) = (index, self.latest_checkpoint()?) else {
            return Ok(None);
        };
        if index as u64 >= size {
            return Ok(None);
        }
        let proof = self.over_nodes(|nodes| tlog::inclusion_proof(nodes, index as u64, size))?;
        Ok(Some(Inclusion {
            index: index as u64,
            size,
            proof,
            checkpoint,
        }))
    }
}

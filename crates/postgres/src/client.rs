//! A connection's client that prepares each statement once. Given a statement as text,
//! tokio-postgres prepares it on every call: a round trip to the server before the one that
//! runs it. Baton's statements are a fixed set, so each connection keeps what it prepared.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

/// The client every query of the store is written with. It keeps every statement it is given
/// for as long as its connection lasts: put values in parameters, never in the text.
pub struct Client {
    inner: tokio_postgres::Client,
    prepared: Mutex<HashMap<String, Statement>>,
}

impl Client {
    pub(crate) fn new(inner: tokio_postgres::Client) -> Self {
        Self {
            inner,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    async fn statement(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.cache().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.inner.prepare(sql).await?;
        self.cache().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `sql` with `params`; the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let statement = self.statement(sql).await?;
        self.inner.execute(&statement, params).await
    }

    /// The rows `sql` returns.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.inner.query(&statement, params).await
    }

    /// The one row `sql` returns (an error if it returns another number).
    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let statement = self.statement(sql).await?;
        self.inner.query_one(&statement, params).await
    }

    /// The row `sql` returns, if any (an error if it returns several).
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.inner.query_opt(&statement, params).await
    }

    /// Runs statements without parameters, such as `BEGIN` or `COMMIT` (nothing is prepared).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.inner.batch_execute(sql).await
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

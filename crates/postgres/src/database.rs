//! The store's database as the other layers use it for their own tables (the completion
//! cache, idempotency keys, API keys): queries on the store's thread, from synchronous code
//! anywhere, and sessions that hold one transaction across several queries.

use std::future::Future;
use std::sync::Arc;

use crate::client::Client;

use crate::connection::describe;
use crate::journal::Db;

/// A handle on a store's database; cheap to clone. Queries fail once the store is closed.
#[derive(Clone)]
pub struct Database {
    pub(crate) db: Arc<Db>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.db.location)
    }
}

impl Database {
    pub(crate) fn new(db: Arc<Db>) -> Self {
        Self { db }
    }

    /// The database's address (without a password), as messages name it.
    pub fn location(&self) -> &str {
        &self.db.location
    }

    /// Runs `query` on the store's shared connection and waits for its answer. Statements
    /// of other callers interleave with it: use a session for a transaction.
    pub fn query<T, F>(
        &self,
        query: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        self.db
            .call(|connector| async move {
                let client = connector.client().await?;
                query(client).await.map_err(|e| describe(&e))
            })
            .map_err(|e| e.to_string())
    }

    /// A session on a connection of its own, in a transaction begun with `begin` (such as
    /// `BEGIN ISOLATION LEVEL REPEATABLE READ`): `commit` ends it; dropped, it rolls back.
    pub fn session(&self, begin: &'static str) -> Result<Session, String> {
        let spare = self
            .db
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let client = match spare.filter(|c| !c.is_closed()) {
            Some(client) => client,
            None => {
                let connector = self.db.connector.another();
                self.db
                    .call(|_| async move { connector.client().await })
                    .map_err(|e| e.to_string())?
            }
        };
        let session = Session {
            db: self.db.clone(),
            client: Some(client),
        };
        session.query(move |client| async move { client.batch_execute(begin).await })?;
        Ok(session)
    }

    /// Runs `work` in one transaction begun with `begin`, committed when it succeeds.
    pub fn transaction<T, F>(
        &self,
        begin: &'static str,
        work: impl FnOnce(Arc<Client>) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let session = self.session(begin)?;
        let done = session.query(work)?;
        session.commit()?;
        Ok(done)
    }
}

/// A transaction on a connection of its own (see [`Database::session`]).
pub struct Session {
    db: Arc<Db>,
    /// Taken when the session ends.
    client: Option<Arc<Client>>,
}

impl Session {
    /// Runs `query` in the session's transaction and waits for its answer.
    pub fn query<T, F>(&self, query: impl FnOnce(Arc<Client>) -> F) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let client = self
            .client
            .clone()
            .expect("a session has its client until it ends");
        let future = query(client);
        self.db
            .call(|_| async move { future.await.map_err(|e| describe(&e)) })
            .map_err(|e| e.to_string())
    }

    /// Commits the transaction; its connection is kept for the next session.
    pub fn commit(mut self) -> Result<(), String> {
        self.query(|client| async move { client.batch_execute("COMMIT").await })?;
        let client = self
            .client
            .take()
            .expect("a session has its client until it ends");
        self.db
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Not committed: rolled back, and the connection kept only if that worked.
        if let Some(client) = self.client.take() {
            let db = self.db.clone();
            let rolled_back = self.db.call(move |_| async move {
                client
                    .batch_execute("ROLLBACK")
                    .await
                    .map(|()| client)
                    .map_err(|e| describe(&e))
            });
            if let Ok(client) = rolled_back {
                db.spare
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(client);
            }
        }
    }
}

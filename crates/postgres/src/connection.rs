//! Connecting to PostgreSQL: the connection string checked, a connect timeout by default, the
//! schema migrated once however many hosts open the store at the same moment, and a client
//! that reconnects after the server restarts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Config, NoTls};

use crate::client::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a connection attempt may take before it is reported as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Any key of the advisory lock the schema migrations run under (the same in every host).
const MIGRATION_LOCK: i64 = 0x6261_746f_6e5f_6d31;

/// A store's connection settings and its current client.
pub(crate) struct Connector {
    config: Config,
    current: Mutex<Option<Arc<Client>>>,
}

impl Connector {
    /// Checks `url` and connects once, migrating the schema.
    pub(crate) async fn open(url: &str) -> Result<Self, String> {
        let mut config: Config = url.parse().map_err(|e| {
            format!(
                "not a PostgreSQL connection string ({e}); use postgres://USER@HOST:PORT/DATABASE"
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let connector = Self {
            config,
            current: Mutex::new(None),
        };
        let mut client = connect(&connector.config).await?;
        migrate(&mut client).await?;
        *connector.current.lock().await = Some(Arc::new(Client::new(client)));
        Ok(connector)
    }

    /// A connector to the same database with a connection of its own (a writer's
    /// transactions must not hold readers' queries).
    pub(crate) fn another(&self) -> Self {
        Self {
            config: self.config.clone(),
            current: Mutex::new(None),
        }
    }

    /// The current client, or a new one if the connection was lost.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, String> {
        let mut current = self.current.lock().await;
        if let Some(client) = current.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = Arc::new(Client::new(connect(&self.config).await?));
        *current = Some(client.clone());
        Ok(client)
    }
}

async fn connect(config: &Config) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| describe(&e))?;
    // The connection does the talking; it ends when the client is dropped or the server goes.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// Applies the migrations this Baton knows, under a lock, so that hosts opening a new
/// database at once apply them once.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), String> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| describe(&e))?;
    let migrated = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await
        .map_err(|e| format!("cannot migrate the schema: {e}"));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| describe(&e));
    migrated?;
    unlocked.map(drop)
}

/// A PostgreSQL error as one line: the server's message when it sent one, else what failed.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => baton_core::text::causes(error),
    }
}

/// Whether `error` may pass if what failed is tried again: the connection broke, or the server
/// is shutting down, starting up or out of connections (SQLSTATE classes 08 and 57P, 53300),
/// or the transaction lost a race (40001, 40P01). Anything else would fail the same way.
pub(crate) fn passing(error: &tokio_postgres::Error) -> bool {
    let Some(db) = error.as_db_error() else {
        return true;
    };
    let code = db.code().code();
    code.starts_with("08") || code.starts_with("57P") || matches!(code, "53300" | "40001" | "40P01")
}

//! Opening the store a `--store` URL names: the SQLite journal (the default) or PostgreSQL.

use std::path::Path;
use std::sync::Arc;

use baton_journal::store::{Journal, Store, StoreError, StoreUrl};
use baton_llm::Stores;
use baton_postgres::PgStore;

/// Opens (creating it if need be) the store at `url` for recording and reading.
pub fn open(url: &StoreUrl) -> Result<Box<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Box::new(Journal::open(path)?),
        StoreUrl::Postgres(url) => Box::new(PgStore::open(url)?),
    })
}

/// Opens the store at `url` for reading what it holds (a SQLite file must exist).
pub fn open_existing(url: &StoreUrl) -> Result<Box<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Box::new(Journal::open_read_only(path)?),
        StoreUrl::Postgres(url) => Box::new(PgStore::open(url)?),
    })
}

/// Opens the store at `url` for a host: the journal, and where the LLM layer keeps its
/// idempotency keys and completion cache (files beside a SQLite journal; the PostgreSQL
/// database, with this host's vector indexes under `cache_dir`).
pub fn open_for_host(
    url: &StoreUrl,
    cache_dir: Option<&Path>,
) -> Result<(Arc<dyn Store>, Stores), StoreError> {
    Ok(match url {
        StoreUrl::Sqlite(path) => (Arc::new(Journal::open(path)?), Stores::Beside(path.clone())),
        StoreUrl::Postgres(url) => {
            let store = PgStore::open(url)?;
            let stores = Stores::Postgres {
                db: store.database(),
                index_dir: cache_dir.map(|dir| dir.join("llm-cache.index")),
            };
            (Arc::new(store), stores)
        }
    })
}

//! Opening the store a `--store` URL names: the SQLite journal (the default) or PostgreSQL.

use baton_journal::store::{Journal, Store, StoreError, StoreUrl};
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

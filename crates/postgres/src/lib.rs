//! Baton's PostgreSQL store, for many hosts sharing one: the journal holds the same events
//! with the same bytes and hashes as the SQLite store, so a run exported from either gives
//! the same bundle and the same root.
//!
//! The client is tokio-postgres, driven on a thread of the store's own (a single-threaded
//! runtime), so that the journal's synchronous API can be called from anywhere, inside an
//! async runtime or not, as the SQLite store's can. The schema is kept by migrations
//! (`migrations/`), applied when a store is opened.

mod client;
mod connection;
mod database;
mod journal;
mod ledger;
mod log;
mod steps;
mod writer;

pub use client::Client;
pub use database::{Database, Session};
pub use journal::PgStore;
pub use ledger::LedgerState;
/// The client the database's queries are written with.
pub use tokio_postgres;

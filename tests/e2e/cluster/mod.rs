//! Past one machine: the journal in a PostgreSQL server the tests start (`postgres.rs`).

pub mod nats;
pub mod postgres;

mod keys;
mod store;
mod workers;

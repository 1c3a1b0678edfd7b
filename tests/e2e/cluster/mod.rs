//! Past one machine: the journal in a PostgreSQL server the tests start (`postgres.rs`).

pub mod postgres;

mod store;

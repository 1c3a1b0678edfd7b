//! Baton past one machine. An orchestrator (`baton run --nats URL`) publishes each step that
//! becomes ready to a JetStream work-queue stream; `baton worker` processes pull steps as they
//! have room, run them against the run recorded in the shared PostgreSQL store, commit the
//! step's chains, record its outcome, answer the orchestrator, and only then acknowledge the
//! message. A worker that dies leaves its message unacknowledged: JetStream delivers it again
//! after the ack wait, and the worker that takes it sets aside the half-written chains and
//! runs the step from scratch (or, if the step's outcome is already recorded, only answers).
//!
//! - [`connect`]: the NATS connection, the stream, the workers' roll call and the store;
//! - [`dispatch`]: the orchestrator's side;
//! - [`worker`]: the worker's side.

pub mod connect;
pub mod dispatch;
pub mod worker;

mod names;

pub use connect::{Cluster, ClusterError};
pub use dispatch::{Answer, NatsDispatch};
pub use worker::{WorkerOptions, work};

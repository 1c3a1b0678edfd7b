//! What the cluster's parts are called on NATS.

/// The work-queue stream steps are published to.
pub const STREAM: &str = "BATON_STEPS";
/// The subject of steps.
pub const STEPS: &str = "baton.steps";
/// The durable pull consumer every worker shares: each step goes to one of them.
pub const CONSUMER: &str = "baton-workers";
/// Outcomes of run `R` are published on `baton.outcomes.R`.
pub const OUTCOMES: &str = "baton.outcomes";
/// The subject of the roll call every worker answers with its capacity.
pub const WORKERS: &str = "baton.workers";
/// The header naming the subject a step's outcome goes to.
pub const REPLY: &str = "Baton-Reply";

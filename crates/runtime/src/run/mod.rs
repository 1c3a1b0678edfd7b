//! A run: its journal (the run chain and the chains it opens), the mode it meets the world
//! in (live or replaying), and the context its invocations share.

mod context;
mod fork;
mod journal;
mod mode;
mod nested;
mod purity;
mod render;

pub use context::{Components, Invocation, RunContext};
pub use journal::{Chains, RunJournal, RunRecord, RunRoot, new_run_id};
pub use mode::Access;
pub(crate) use mode::live_access;
pub use render::render_input;

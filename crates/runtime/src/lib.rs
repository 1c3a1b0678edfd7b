//! Baton's runtime: a [`Host`] loads components (checking their bytes and signatures,
//! compiling them through a persistent cache, refusing anything outside the `baton:plugin`
//! contract in `wit/`), and calls them in a fresh sandbox per invocation under the limits
//! and grants its policy sets, every effect through the gate and into the journal. Each way a
//! call can go wrong is a distinct [`Error`].
//!
//! ```no_run
//! # async fn example() -> Result<(), baton_runtime::Error> {
//! // The built-in policy trusts nobody: a policy naming the key that signed calc.wasm.
//! let host = baton_runtime::Host::new(baton_runtime::HostOptions {
//!     policies: vec!["trust.toml".into()],
//!     ..Default::default()
//! })?;
//! let calc = host.load("calc.wasm".as_ref()).await?;
//! let call = host.call_tool(&calc, r#"{"expression": "6 * 7"}"#).await?;
//! assert_eq!(call.output["value"], 42.0);
//! # Ok(()) }
//! ```
//!
//! - [`host`]: the `Host` and its options;
//! - [`plugin`]: what a loaded component is, and loading;
//! - [`capability`]: what a component may import, one module per capability;
//! - [`run`]: a run's journal, its mode (live or replaying) and the context its
//!   invocations share;
//! - [`recorded`]: recorded runs read back and replayed;
//! - [`models`]: the LLM layer, reached through the gate.

pub mod bindings;
mod call;
pub mod capability;
pub mod checkpoint;
pub mod completion;
pub mod error;
pub mod flow;
pub mod host;
pub mod loader;
pub mod models;
pub mod plugin;
pub mod provenance;
pub mod pure_cache;
pub mod recorded;
pub mod replacement;
pub mod run;
mod runner;
pub mod schema;
pub mod stores;
pub mod testing;
pub mod versions;

pub use baton_trust::check as trust;
pub use call::ToolRun;
pub use capability::Grant;
pub use error::Error;
pub use host::{Host, HostOptions, RunStart};
pub use plugin::{Info, Plugin, ToolCall};
pub use recorded::{RecordedRun, ReplayReport};
pub use run::RunRecord;
pub use runner::Runner;

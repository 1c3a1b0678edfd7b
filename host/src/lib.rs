//! Baton: a host runtime for LLM tools, prompts and planners built as WebAssembly components.
//!
//! A [`Host`] loads components (checking their bytes, compiling them through a persistent
//! cache, refusing anything outside the `baton:plugin` contract in `wit/`), and calls them in
//! a fresh sandbox per invocation under the limits its policy sets: fuel, memory, wall-clock
//! time and output size. Each way a call can go wrong is a distinct [`Error`].
//!
//! ```no_run
//! # async fn example() -> Result<(), baton::Error> {
//! let host = baton::Host::new(baton::HostOptions::default())?;
//! let calc = host.load("calc.wasm".as_ref()).await?;
//! let call = host.call_tool(&calc, r#"{"expression": "6 * 7"}"#).await?;
//! assert_eq!(call.output["value"], 42.0);
//! # Ok(()) }
//! ```

pub mod bindings;
pub mod budget;
pub mod caps;
pub mod completion;
pub mod effect;
pub mod error;
pub mod journal;
pub mod loader;
pub mod orchestrator;
pub mod policy;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod schema;
pub mod signing;
pub mod state;
pub mod testing;

pub use error::Error;
pub use run::RunRecord;
pub use runtime::{Host, HostOptions, Info, Plugin, ReplayReport, ToolCall};

//! Baton: a host runtime for LLM tools, prompts and planners built as WebAssembly components.
//!
//! This crate is the `baton` command and, for programs that embed Baton, one door to the
//! libraries it is built from (each also usable on its own):
//!
//! | crate | what it holds |
//! |---|---|
//! | [`runtime`] | the [`Host`]: loading signed components, capabilities, calls, runs, replay |
//! | [`orchestrator`] | workflows: planners, steps run concurrently, results |
//! | [`mcp`] | Baton as an MCP server |
//! | [`serve`] | Baton as a service: the OpenAI-compatible gateway, API keys, metrics |
//! | [`llm`] | model providers, routing, retries, breakers, the completion cache, embeddings |
//! | [`effects`] | the effect gate (live and replaying) and the world adapters behind it |
//! | [`sandbox`] | the engine and the limits of one call |
//! | [`policy`] | policy files: grants, limits, budgets, trust; explain |
//! | [`trust`] | keys, signatures, attestations, Sigstore bundles |
//! | [`registry`] | components pushed to and pulled from OCI registries, cached by digest |
//! | [`journal`] | events, hash chains, the store, bundles |
//! | [`budget`] | the ledger |
//!
//! `docs/library.md` walks through loading a signed tool, calling it under a policy and
//! replaying its bundle; `docs/architecture.md` shows how the crates fit.
//!
//! ```no_run
//! # async fn example() -> Result<(), baton::Error> {
//! // The built-in policy trusts nobody: a policy naming the key that signed calc.wasm.
//! let host = baton::Host::new(baton::HostOptions {
//!     policies: vec!["trust.toml".into()],
//!     ..Default::default()
//! })?;
//! let calc = host.load("calc.wasm".as_ref()).await?;
//! let call = host.call_tool(&calc, r#"{"expression": "6 * 7"}"#).await?;
//! assert_eq!(call.output["value"], 42.0);
//! # Ok(()) }
//! ```

pub mod exit;

/// Embedding Baton in a program: docs/library.md, whose example the test suite compiles and
/// runs.
#[doc = include_str!("../../../docs/library.md")]
pub mod library {}

pub use baton_budget as budget;
pub use baton_cluster as cluster;
pub use baton_core::{Digest, limits, source, text};
pub use baton_effects as effects;
pub use baton_journal as journal;
pub use baton_llm as llm;
pub use baton_mcp as mcp;
pub use baton_orchestrator as orchestrator;
pub use baton_policy as policy;
pub use baton_postgres as postgres;
pub use baton_registry as registry;
pub use baton_runtime as runtime;
pub use baton_runtime::{Error, Host, HostOptions, Info, Plugin, ToolCall, testing};
pub use baton_sandbox as sandbox;
pub use baton_serve as serve;
pub use baton_trust as trust;

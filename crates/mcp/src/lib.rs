//! Baton as an MCP server: the tools and prompts in directories, each verified before it is
//! compiled, served to any Model Context Protocol client, every call in a fresh sandbox
//! under the policy and journaled. A session is one run: `baton trace` lists it and `baton replay`
//! replays its bundle.
//!
//! - [`catalog`]: the tools and prompts served, scanned again when the directories change;
//! - [`definition`]: how MCP clients see them (schemas, annotations, prompt arguments);
//! - [`session`]: the run a session is, one step per call;
//! - [`server`]: the protocol, through the official Rust SDK (`rmcp`), over stdio;
//! - [`watch`]: the directories watched, and clients told when the tools change;
//! - [`search`]: `search_tools`, for clients that cannot take every tool;
//! - `progress`: notifications for calls that run longer than a second;
//! - `http`: the Streamable HTTP transport ([`serve_http`]).

pub mod catalog;
pub mod definition;
mod http;
mod progress;
pub mod search;
pub mod server;
pub mod session;
pub mod watch;

pub use catalog::Catalog;
pub use http::{HttpOptions, serve_http};
pub use server::serve_stdio;
pub use session::Session;

//! End-to-end tests: the real `baton` binary (and the library, as an embedder uses it) against
//! the reference and hostile plugins built by `cargo xtask plugins`.

mod common;

mod authoring;
mod bad_input;
mod cache;
mod call;
mod capabilities;
mod cluster;
mod debug;
mod docs;
mod egress;
mod filesystem;
mod flow;
mod hostile;
mod inspect;
mod journal;
mod library;
mod llm;
mod mcp;
mod model_server;
mod policy;
mod provenance;
mod pure_calls;
mod registry;
mod repl;
mod replay;
mod run;
mod secrets;
mod serve;
mod server;
mod signing;
mod sigstore;
mod tools;
mod trust;

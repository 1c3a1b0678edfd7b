//! `tools/call` of `calc` over MCP against the same call through the library, both
//! journaled into a store of their own.
//!
//! - `mcp_call/library`: a `Session::call` in this process (the MCP server's own path from a
//!   request to a journaled step, without the protocol).
//! - `mcp_call/stdio`: the real `baton mcp` binary, driven over its standard input and
//!   output: a `tools/call` request written, its response read.
//! - `mcp_call/stdio_ping`: a `ping` the same way, the cost of the protocol and the pipes.
//!
//! After the group, 10,000 sequential calls are made over stdio and the server's resident
//! memory is printed before and after them.
//!
//! Run with `cargo xtask bench -- mcp`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use baton::journal::store::StoreUrl;
use baton::mcp::{Catalog, Session};
use baton::{Host, HostOptions};
use criterion::{Criterion, criterion_group};
use tokio_util::sync::CancellationToken;

#[allow(dead_code)]
mod common;

use common::plugin;

const INPUT: &str = r#"{"expression": "1 + 2"}"#;

/// A directory holding `calc` and its signature.
fn tools_dir(dir: &Path) -> std::path::PathBuf {
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    for suffix in ["", ".sig", ".intoto.json"] {
        let from = format!("{}{suffix}", plugin("calc.wasm").display());
        std::fs::copy(&from, tools.join(format!("calc.wasm{suffix}")))
            .expect("build the plugins first: cargo xtask plugins");
    }
    tools
}

/// `baton mcp` over pipes, initialized.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start(tools: &Path, dir: &Path) -> Self {
        // Every call runs calc, as the library's does: none is answered by the cache of
        // pure calls.
        let policy = dir.join("uncached.toml");
        std::fs::write(&policy, "[plugins.calc]\ncache = false\n").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--policy", policy.to_str().unwrap()])
            .args(["mcp", "--tools", tools.to_str().unwrap()])
            .env("BATON_STORE", dir.join("server.db"))
            .env("BATON_CACHE_DIR", dir.join("cache"))
            .env("BATON_POLICY", common::trust_policy())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut server = Self {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        server.request(
            "initialize",
            r#"{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}"#,
        );
        server.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        server
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request and reads lines until its response.
    fn request(&mut self, method: &str, params: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        ));
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server exited"
            );
            if line.contains(&format!(r#""id":{id}"#)) {
                return line;
            }
        }
    }

    fn ping(&mut self) {
        let response = self.request("ping", "{}");
        assert!(response.contains(r#""result":{}"#), "{response}");
    }

    fn call_calc(&mut self) {
        let params = format!(r#"{{"name":"calc","arguments":{INPUT}}}"#);
        let response = self.request("tools/call", &params);
        assert!(response.contains(r#""value":3.0"#), "{response}");
    }

    /// The server's resident memory, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let (session, calc) = rt.block_on(async {
        let host = Host::new(HostOptions {
            policies: vec![common::trust_policy()],
            store: Some(StoreUrl::Sqlite(dir.path().join("library.db"))),
            cache_dir: Some(dir.path().join("cache")),
            no_pure_cache: true,
            ..HostOptions::default()
        })
        .unwrap();
        let (catalog, _) = Catalog::load(&host, std::slice::from_ref(&tools))
            .await
            .unwrap();
        let catalog = Arc::new(catalog);
        let calc = catalog.tool("calc").unwrap().plugin;
        (Session::new(Arc::new(host), catalog), calc)
    });
    let mut group = c.benchmark_group("mcp_call");
    group.bench_function("library", |b| {
        b.to_async(&rt).iter(|| async {
            let call = session.call(&calc, INPUT, CancellationToken::new()).await;
            assert_eq!(call.unwrap().output["value"], 3.0);
        })
    });
    let mut server = Server::start(&tools, dir.path());
    group.bench_function("stdio", |b| b.iter(|| server.call_calc()));
    // The protocol and the pipes alone: a request that runs nothing.
    group.bench_function("stdio_ping", |b| b.iter(|| server.ping()));
    group.finish();
}

/// 10,000 sequential calls over stdio: the server's memory before and after.
fn memory() {
    let dir = tempfile::tempdir().unwrap();
    let tools = tools_dir(dir.path());
    let mut server = Server::start(&tools, dir.path());
    for _ in 0..100 {
        server.call_calc();
    }
    let before = server.rss_kib();
    for _ in 0..10_000 {
        server.call_calc();
    }
    let after = server.rss_kib();
    println!(
        "mcp_memory: RSS after 100 warm-up calls {before} KiB, after 10,000 more {after} KiB \
         ({:+.1}%)",
        (after as f64 - before as f64) * 100.0 / before as f64
    );
}

criterion_group!(benches, calls);

fn main() {
    benches();
    memory();
    Criterion::default().configure_from_args().final_summary();
}

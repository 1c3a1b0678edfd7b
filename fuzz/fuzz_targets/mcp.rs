//! MCP JSON-RPC messages from bytes, sent to Baton's MCP server (the plugins' tools and
//! prompts, the built-in `search_tools`) after a well-formed handshake: whatever the client
//! sends, the server never panics or hangs, ends when the client closes its side, and writes
//! only JSON-RPC messages.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use baton_mcp::Catalog;
use baton_mcp::server::Server;
use baton_runtime::{Host, HostOptions};
use libfuzzer_sys::fuzz_target;
use rmcp::ServiceExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// What a client sends first: the handshake the fuzzed messages follow.
const HANDSHAKE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","#,
    r#""capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n"
);

/// Longer than any message takes: past it, the server has hung.
const HANG: Duration = Duration::from_secs(20);

struct Fixture {
    runtime: Runtime,
    host: Arc<Host>,
    catalog: Arc<Catalog>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // The plugins `cargo xtask plugins` builds, trusted as their policy says.
        let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
        let (host, catalog) = runtime.block_on(async {
            let host = Host::new(HostOptions {
                policies: vec![plugins.join("trust.toml")],
                no_pure_cache: true,
                ..HostOptions::default()
            })
            .expect("a host; run `cargo xtask plugins` first");
            let (catalog, _) = Catalog::load(&host, &[plugins.clone(), plugins.join("prompts")])
                .await
                .expect("the plugins load");
            (Arc::new(host), Arc::new(catalog))
        });
        Fixture {
            runtime,
            host,
            catalog,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let f = fixture();
    let written = f.runtime.block_on(async {
        let (mut client, server_side) = tokio::io::duplex(1 << 20);
        let server = Server::new(f.host.clone(), f.catalog.clone(), Arc::default());
        let serving = tokio::spawn(async move {
            let (read, write) = tokio::io::split(server_side);
            if let Ok(running) = server.serve((read, write)).await {
                let _ = running.waiting().await;
            }
        });
        let talk = async {
            client.write_all(HANDSHAKE.as_bytes()).await?;
            client.write_all(bytes).await?;
            client.write_all(b"\n").await?;
            client.shutdown().await?;
            let mut out = Vec::new();
            client.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let out = tokio::time::timeout(HANG, talk)
            .await
            .expect("the server hung")
            .expect("the pipe works");
        tokio::time::timeout(HANG, serving)
            .await
            .expect("the server did not end when the client closed")
            .expect("the server did not panic");
        out
    });
    for line in written.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let message: serde_json::Value =
            serde_json::from_slice(line).expect("the server writes JSON");
        assert_eq!(message["jsonrpc"], "2.0", "not JSON-RPC: {message}");
    }
});

//! Helpers shared by the benchmarks (each benchmark uses part of them).

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[path = "../../../../tests/e2e/server.rs"]
pub mod server;

/// A plugin built by `cargo xtask plugins`.
pub fn plugin(name: &str) -> PathBuf {
    std::env::var_os("BATON_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins"))
        .join(name)
}

/// The policy that trusts this machine's development key, which signs the built plugins.
pub fn trust_policy() -> PathBuf {
    plugin("trust.toml")
}

/// Writes, in `dir`, a policy granting `fetch` exactly `server`'s address; returns its path.
pub fn fetch_policy(dir: &Path, server: &server::Server) -> PathBuf {
    let policy = dir.join("policy.toml");
    let grant = format!(
        "[plugins.fetch.net]\nallow = [\"http://127.0.0.1:{}\"]\n",
        server.port
    );
    std::fs::write(&policy, grant).unwrap();
    policy
}

/// A chat-completions server on loopback that answers every request at once, keeping
/// connections alive. Returns its port.
pub async fn serve_completions() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Bytes::from(
        serde_json::json!({
            "choices": [{"message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1}
        })
        .to_string(),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let answer = answer.clone();
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(answer))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

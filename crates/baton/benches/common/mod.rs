//! Helpers shared by the benchmarks (each benchmark uses part of them).

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use baton::journal::store::{Recorder, TransparencyLog};
use baton::runtime::checkpoint::Checkpoint;
use baton::trust::signing::{Envelope, SigningKey, generate};

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

/// A statement the size of a run's: a few components and policies.
pub fn statement() -> Vec<u8> {
    let components: Vec<_> = (0..4)
        .map(|i| {
            serde_json::json!({"name": "component", "digest": {"sha256": format!("{i:064x}")},
                                     "annotations": {"signer": "key baton-dev (sha256:…)"}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "run:01jbench", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"resolvedDependencies": components}},
    }))
    .unwrap()
}

pub fn key() -> (SigningKey, String) {
    let (private, public) = generate(b"bench").unwrap();
    (
        SigningKey::open(&private, "bench", b"bench").unwrap(),
        public,
    )
}

/// Writes a log of `runs` leaves, with every subtree they complete, into the store at `path`
/// (directly, as appending them one by one would take minutes).
pub fn fill_log(path: &Path, runs: u64) {
    let mut log = baton::journal::tlog::MemoryLog::default();
    let mut db = rusqlite::Connection::open(path).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut leaf_row = tx
            .prepare("INSERT INTO tlog_leaves (idx, run, hash) VALUES (?1, ?2, ?3)")
            .unwrap();
        for index in 0..runs {
            let leaf = baton::journal::tlog::leaf_hash(&index.to_le_bytes());
            log.append(leaf);
            leaf_row
                .execute(rusqlite::params![
                    index as i64,
                    format!("old-{index}"),
                    &leaf[..]
                ])
                .unwrap();
        }
        let mut node_row = tx
            .prepare("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .unwrap();
        for ((level, index), hash) in log.nodes() {
            node_row
                .execute(rusqlite::params![level, *index as i64, &hash[..]])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A run's statement signed into a DSSE envelope, as JSON.
pub fn signed_envelope(key: &SigningKey) -> String {
    let envelope = Envelope::sign("application/vnd.in-toto+json", &statement(), key).unwrap();
    serde_json::to_string(&envelope).unwrap()
}

/// Keeps the signed run `run`: its envelope appended to the log, then a signed checkpoint of
/// the log after it (what a signing host does at the end of each run).
pub fn log_signed_run(
    recorder: &Recorder,
    log: &dyn TransparencyLog,
    key: &SigningKey,
    public: &str,
    run: &str,
    envelope: &str,
) {
    recorder.attest(run, envelope);
    recorder.flush().unwrap();
    let (size, root) = log.log_head().unwrap();
    let note = Checkpoint::of(public, size, root)
        .unwrap()
        .sign(key, public)
        .unwrap();
    recorder.checkpoint(size, &note);
}

//! The Streamable HTTP transport at `/mcp`: one session (and one run) per MCP session, the
//! `Origin` of browser requests checked against an allowlist (the specification's defence
//! against DNS rebinding), loopback `Host` names only, an optional bearer key, and a limit
//! on request bodies.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use baton_runtime::Host;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::server::Server;
use crate::watch::{Listeners, watch};

/// The largest request body accepted.
const MAX_REQUEST_BODY: usize = 4 << 20;

/// How the HTTP transport is served.
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// Browser origins (`scheme://host:port`) allowed to call; with none, every request that
    /// carries an `Origin` is refused (clients that are not browsers send none).
    pub allowed_origins: Vec<String>,
    /// The bearer key every request must carry, when set.
    pub api_key: Option<String>,
}

/// Serves `catalog` from `host` over Streamable HTTP at `/mcp` until `shutdown` completes;
/// `listening` is told the bound address once requests are accepted.
pub async fn serve_http(
    host: Arc<Host>,
    catalog: Catalog,
    options: HttpOptions,
    listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let catalog = Arc::new(catalog);
    let listeners = Arc::new(Listeners::default());
    let _watching =
        watch(host.clone(), catalog.clone(), listeners.clone()).map_err(std::io::Error::other)?;
    let stop = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_REQUEST_BODY)
        .with_cancellation_token(stop.child_token());
    config = match options.allowed_origins.is_empty() {
        true => config.enforce_origin_validation(),
        false => config.with_allowed_origins(options.allowed_origins),
    };
    let service = StreamableHttpService::new(
        move || {
            Ok(Server::new(
                host.clone(),
                catalog.clone(),
                listeners.clone(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn(json_rpc_only));
    if let Some(key) = options.api_key {
        router = router.layer(middleware::from_fn_with_state(Arc::new(key), require_key));
    }
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    listening(listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Sessions end, and with them their runs.
            stop.cancel();
        })
        .await
}

/// Refuses (401) a request without `Authorization: Bearer <key>`.
async fn require_key(State(key): State<Arc<String>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given.is_some_and(|given| same(given.as_bytes(), key.as_bytes())) {
        true => next.run(request).await,
        false => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer key is required: send Authorization: Bearer <key>",
        )
            .into_response(),
    }
}

/// Answers a POST whose body is not JSON-RPC with the JSON-RPC error for it (-32700 for
/// text that is not JSON, -32600 for JSON that is not a request), as the specification
/// says, and a body past the limit with 413; everything else goes on to the server.
async fn json_rpc_only(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let too_large = || {
        let message = format!("the request body is larger than {MAX_REQUEST_BODY} bytes");
        (StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
    };
    // A body announced past the limit is refused before any of it is read.
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > MAX_REQUEST_BODY) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BODY).await else {
        return too_large();
    };
    let refusal = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => Some((-32700, format!("Parse error: the body is not JSON ({e})"))),
        Ok(message) if !is_json_rpc(&message) => Some((
            -32600,
            "Invalid Request: the body is not a JSON-RPC 2.0 message".to_string(),
        )),
        Ok(_) => None,
    };
    if let Some((code, message)) = refusal {
        let error = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        });
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            error.to_string(),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// A JSON-RPC 2.0 message, or a batch of them.
fn is_json_rpc(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Array(batch) => !batch.is_empty() && batch.iter().all(is_json_rpc),
        message => message["jsonrpc"] == "2.0",
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rpc_messages_are_told_from_other_json() {
        assert!(is_json_rpc(
            &serde_json::json!({"jsonrpc": "2.0", "method": "ping", "id": 1})
        ));
        assert!(is_json_rpc(
            &serde_json::json!([{"jsonrpc": "2.0", "method": "x"}])
        ));
        assert!(!is_json_rpc(&serde_json::json!({})));
        assert!(!is_json_rpc(&serde_json::json!([])));
        assert!(!is_json_rpc(&serde_json::json!("2.0")));
    }

    #[test]
    fn keys_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }
}

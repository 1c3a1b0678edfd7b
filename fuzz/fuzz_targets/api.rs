//! The HTTP API's request bodies (and queries) from bytes, sent in-process to `baton serve`'s
//! routes with a key that may use them all: every answer is a documented status with, for an
//! error, OpenAI's JSON error shape and a one-line message; never a panic, a hang or a 500.
//!
//! Input: the first byte chooses the route; the rest is the body (the query, for a GET; the
//! id, for a route that takes one).

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use baton_runtime::{Host, HostOptions};
use baton_serve::ServeOptions;
use baton_serve::keys::Scopes;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The routes a body reaches, and the method it is sent with.
const ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/v1/runs"),
    (Method::POST, "/v1/webhooks"),
    (Method::POST, "/v1/chat/completions"),
    (Method::POST, "/v1/embeddings"),
    (Method::POST, "/v1/runs/01jbadrun/cancel"),
    (Method::POST, "/v1/runs/01jbadrun/resume"),
    (Method::GET, "/v1/runs"),
    (Method::GET, "/v1/models"),
    // The body becomes the id, every byte percent-encoded.
    (Method::GET, "/v1/runs/"),
    (Method::DELETE, "/v1/webhooks/"),
];

/// Longer than any request takes here (no model is installed, no workflow is allowed).
const HANG: Duration = Duration::from_secs(20);

struct Fixture {
    runtime: Runtime,
    router: Router,
    bearer: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // No local model: a completion fails fast instead of loading one.
        // SAFETY: set once, before any thread of this process reads the environment.
        unsafe { std::env::set_var("BATON_MODELS", dir.path().join("no-models")) };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let journal = dir.path().join("journal.db");
        let (router, bearer) = runtime.block_on(async {
            let host = Host::new(HostOptions {
                store: Some(baton_journal::store::StoreUrl::Sqlite(journal.clone())),
                ..HostOptions::default()
            })
            .expect("a host");
            let options = ServeOptions::default();
            let app =
                baton_serve::app(Arc::new(host), &journal, &options, CancellationToken::new())
                    .expect("the server's state");
            let key = app
                .keys
                .create(
                    "fuzz",
                    Scopes::parse("runs,llm,admin").expect("scopes"),
                    Default::default(),
                )
                .expect("a key");
            (
                baton_serve::router(app, &options),
                format!("Bearer {}", key.secret),
            )
        });
        Fixture {
            runtime,
            router,
            bearer,
            _dir: dir,
        }
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&choice, body)) = bytes.split_first() else {
        return;
    };
    let f = fixture();
    let (method, path) = &ROUTES[usize::from(choice) % ROUTES.len()];
    let request = match *method {
        _ if path.ends_with('/') => {
            let id: String = body.iter().map(|b| format!("%{b:02X}")).collect();
            Request::builder()
                .method(method.clone())
                .uri(format!("{path}{id}"))
                .header("authorization", &f.bearer)
                .body(Body::empty())
                .expect("a request")
        }
        Method::GET => {
            let query = String::from_utf8_lossy(body);
            let query: String = query.chars().filter(|c| c.is_ascii_graphic()).collect();
            let Ok(request) = Request::get(format!("{path}?{query}"))
                .header("authorization", &f.bearer)
                .body(Body::empty())
            else {
                return;
            };
            request
        }
        _ => Request::builder()
            .method(method.clone())
            .uri(*path)
            .header("authorization", &f.bearer)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("a request"),
    };
    let (status, answer) = f.runtime.block_on(async {
        let response = tokio::time::timeout(HANG, f.router.clone().oneshot(request))
            .await
            .expect("the server hung")
            .expect("the router is infallible");
        let status = response.status();
        let answer = tokio::time::timeout(HANG, response.into_body().collect())
            .await
            .expect("the answer never ended")
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, answer)
    });
    let text = String::from_utf8_lossy(&answer);
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {text}");
    if !status.is_success() {
        let error: serde_json::Value =
            serde_json::from_slice(&answer).unwrap_or_else(|_| panic!("{status} {path}: {text}"));
        let message = error["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {text}"));
        assert!(
            !message.contains('\n'),
            "a message of many lines: {message}"
        );
    }
});

//! Egress through wasi:http, checked against the policy and against the addresses a name
//! really resolves to, with a real server on loopback.

use std::path::PathBuf;

use crate::common::*;
use crate::server::Server;

/// Writes a policy granting `fetch` the given `[plugins.fetch.net]` body.
fn policy(dir: &tempfile::TempDir, net: &str) -> PathBuf {
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, format!("[plugins.fetch.net]\n{net}\n")).unwrap();
    path
}

/// A policy granting `fetch` exactly `server`'s address.
fn granted(server: &Server) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        &dir,
        &format!("allow = [\"http://127.0.0.1:{}\"]", server.port),
    );
    (dir, policy)
}

fn fetch(policy: &std::path::Path, input: serde_json::Value) -> std::process::Output {
    call(
        "fetch.wasm",
        &input.to_string(),
        &["--policy", policy.to_str().unwrap()],
    )
}

#[test]
fn an_allowed_host_is_reached() {
    let server = Server::start();
    let (_dir, policy) = granted(&server);
    let out = json_output(&fetch(
        &policy,
        serde_json::json!({ "url": server.url("/hello") }),
    ));
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "hello");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello");
    let host = seen[0].headers.iter().find(|(n, _)| n == "host").unwrap();
    assert_eq!(host.1, format!("127.0.0.1:{}", server.port));
}

#[test]
fn a_host_without_a_grant_is_denied_and_never_contacted() {
    let server = Server::start();
    let input = serde_json::json!({ "url": server.url("/hello") }).to_string();
    let out = call("fetch.wasm", &input, &[]);
    let line = error_line(&out, 1);
    assert_contains(
        &line,
        &["tool 'fetch' failed: the host denied the request (HTTP-request-denied)"],
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert_contains(
        &summary,
        &[&format!(
            "denied: http: GET {} is not granted: the policy grants 'fetch' no egress (net.allow)",
            server.url("/hello")
        )],
    );
    assert!(server.seen().is_empty());
}

#[test]
fn a_port_outside_the_pattern_is_denied() {
    let server = Server::start();
    let other = Server::start();
    let (_dir, policy) = granted(&server);
    let out = fetch(&policy, serde_json::json!({ "url": other.url("/hello") }));
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    assert!(other.seen().is_empty());
}

#[test]
fn an_allowed_name_that_resolves_to_a_loopback_address_is_denied() {
    let server = Server::start();
    // This machine's own name: granted by name, it resolves to a loopback address.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let name = name.trim();
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(name, server.port))
        .map(|mut a| a.next().map(|a| a.ip()))
        .unwrap_or(None)
        .expect("the machine's host name resolves");
    assert!(
        resolved.is_loopback() || matches!(resolved, std::net::IpAddr::V4(v4) if v4.is_private())
    );

    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        &dir,
        &format!("allow = [\"http://{name}:{}\"]", server.port),
    );
    let url = format!("http://{name}:{}/hello", server.port);
    let out = fetch(&policy, serde_json::json!({ "url": url }));
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    assert_contains(
        &String::from_utf8_lossy(&out.stderr),
        &[&format!(
            "denied: http: {name} resolves to {resolved} (a loopback address), which"
        )],
    );
    assert!(server.seen().is_empty());
}

#[test]
fn a_redirect_is_seen_by_the_guest_and_the_next_hop_is_checked_again() {
    let server = Server::start();
    let (_dir, policy) = granted(&server);
    let out = json_output(&fetch(
        &policy,
        serde_json::json!({ "url": server.url("/redirect") }),
    ));
    assert_eq!(out["status"], 302);
    let location = out["headers"]["location"].as_str().unwrap().to_string();
    assert!(location.starts_with("http://10.255.0.1:"));
    // Following it is a new request, refused: 10.255.0.1 is not granted.
    let out = fetch(&policy, serde_json::json!({ "url": location }));
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn a_wildcard_does_not_match_the_bare_domain() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        &dir,
        &format!("allow = [\"http://*.localhost:{}\"]", server.port),
    );
    let url = format!("http://localhost:{}/hello", server.port);
    let out = fetch(&policy, serde_json::json!({ "url": url }));
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    assert!(server.seen().is_empty());
}

#[test]
fn methods_outside_the_grant_are_denied() {
    let server = Server::start();
    let (dir, policy) = granted(&server);
    let out = fetch(
        &policy,
        serde_json::json!({ "url": server.url("/hello"), "method": "POST", "body": "x" }),
    );
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    assert!(server.seen().is_empty());

    let policy = policy_with_post(&dir, server.port);
    let out = json_output(&fetch(
        &policy,
        serde_json::json!({ "url": server.url("/hello"), "method": "POST", "body": "payload" }),
    ));
    assert_eq!(out["status"], 200);
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body.as_slice()),
        ("POST", &b"payload"[..])
    );
}

fn policy_with_post(dir: &tempfile::TempDir, port: u16) -> PathBuf {
    policy(
        dir,
        &format!("allow = [\"http://127.0.0.1:{port}\"]\nmethods = [\"GET\", \"POST\"]"),
    )
}

/// A server that answers at once but sends its body too slowly is reported as a response
/// timeout, naming the body, not as a connection that timed out.
#[test]
fn a_body_that_trickles_is_named_as_the_response_timeout() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let net = format!(
        "allow = [\"http://127.0.0.1:{}\"]\ntimeout = \"500ms\"",
        server.port
    );
    let policy = policy(&dir, &net);
    let store = dir.path().join("journal.db");
    let input = serde_json::json!({ "url": server.url("/trickle") }).to_string();
    let fetch = plugin("fetch.wasm");
    let out = run_with_store(
        &store,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "call",
            fetch.to_str().unwrap(),
            "--input",
            &input,
        ],
    );
    assert_contains(
        &error_line(&out, 1),
        &["the request failed (http-response-timeout)"],
    );
    let shown = text_output(&run_with_store(
        &store,
        &["trace", "show", "--json", &last_run(&store)],
    ));
    assert_contains(
        &shown,
        &[
            "HTTP-response-timeout",
            "response body of GET",
            "did not arrive within 500ms",
        ],
    );
}

/// A URL with user information reaches nothing, and the denial does not repeat it.
#[test]
fn a_url_with_user_information_is_denied_and_never_sent() {
    let server = Server::start();
    let (_dir, policy) = granted(&server);
    let url = format!("http://other:hunter2@127.0.0.1:{}/hello", server.port);
    let out = fetch(&policy, serde_json::json!({ "url": url }));
    assert_contains(
        &error_line(&out, 1),
        &["the host denied the request (HTTP-request-denied)"],
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert_contains(
        &summary,
        &["carries user information", "send credentials in a header"],
    );
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(server.seen().is_empty());
}

#[test]
fn a_guest_cannot_set_its_own_host_header() {
    let server = Server::start();
    let (_dir, policy) = granted(&server);
    let out = fetch(
        &policy,
        serde_json::json!({ "url": server.url("/hello"), "headers": { "host": "169.254.169.254" } }),
    );
    assert_contains(&error_line(&out, 1), &["header 'host'", "Forbidden"]);
    assert!(server.seen().is_empty());
}

#[test]
fn a_response_larger_than_allowed_is_refused() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(
        &dir,
        &format!(
            "allow = [\"http://127.0.0.1:{}\"]\nmax_response_bytes = \"1 KiB\"",
            server.port
        ),
    );
    let out = fetch(&policy, serde_json::json!({ "url": server.url("/big") }));
    assert_contains(
        &error_line(&out, 1),
        &["the request failed (http-response-body-size)"],
    );
}

#[test]
fn a_malformed_pattern_is_a_policy_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(&dir, "allow = [\"127.0.0.1:8080\"]");
    let out = fetch(
        &policy,
        serde_json::json!({ "url": "http://127.0.0.1:8080/" }),
    );
    assert_contains(
        &error_line(&out, 5),
        &[
            "policy.toml, line 2",
            "'127.0.0.1:8080' is not a scheme://host[:port] pattern (no scheme)",
        ],
    );
}

#[test]
fn an_http_run_replays_without_the_network() {
    let server = Server::start();
    let (dir, policy) = granted(&server);
    let bundle = dir.path().join("fetch.bundle");
    let input = serde_json::json!({ "url": server.url("/hello") }).to_string();
    let out = call(
        "fetch.wasm",
        &input,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(json_output(&out)["body"], "hello");
    drop(server);

    let shown = text_output(&run(&["trace", "show", bundle.to_str().unwrap()]));
    assert_contains(
        &shown,
        &[
            "http               GET http://127.0.0.1:",
            "/hello -> 200, 5 bytes from 127.0.0.1:",
        ],
    );
    let replayed = text_output(&run(&["replay", bundle.to_str().unwrap()]));
    assert!(replayed.starts_with("identical: "), "{replayed}");
}

/// A certificate authority and a server certificate for `localhost` signed by it.
fn tls_server() -> (Server, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], key.into())
        .unwrap();
    (Server::start_tls(std::sync::Arc::new(config)), ca.pem())
}

#[test]
fn https_is_verified_against_the_granted_authorities() {
    let (server, ca) = tls_server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("internal-ca.pem"), ca).unwrap();
    let allow = format!("allow = [\"https://localhost:{}\"]", server.port);
    let url = format!("https://localhost:{}/hello", server.port);

    // Trusted through net.ca: the request succeeds over TLS.
    let trusting = policy(&dir, &format!("{allow}\nca = \"internal-ca.pem\""));
    let out = json_output(&fetch(&trusting, serde_json::json!({ "url": url })));
    assert_eq!(
        (out["status"].as_i64(), out["body"].as_str()),
        (Some(200), Some("hello"))
    );
    assert_eq!(server.seen().len(), 1);

    // Without it, the certificate is not trusted and nothing is sent.
    let strict = policy(&dir, &allow);
    let out = fetch(&strict, serde_json::json!({ "url": url }));
    assert_contains(
        &error_line(&out, 1),
        &[
            "tool 'fetch' failed: ",
            "the request failed (tls-certificate-error)",
        ],
    );
    assert_eq!(server.seen().len(), 1);
}

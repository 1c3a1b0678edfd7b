//! The world's HTTP client: the only code that opens connections on a plugin's behalf. Only
//! the gate calls it, in live mode, after the `http` capability has matched the request
//! against the policy.
//!
//! Names are resolved here, and every resolved address is checked against the pattern that
//! allowed the request before anything connects to it, so a granted name that resolves to a
//! private or metadata address is refused; the connection goes to the checked address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpStream;

use baton_journal::event::{HttpOutcome, HttpRequestRecord};
use baton_policy::net::{NetPattern, special};

/// wasi:http error codes Baton reports (the names of wasi:http's `error-code` cases).
pub mod code {
    pub const DENIED: &str = "HTTP-request-denied";
    pub const DNS: &str = "DNS-error";
    pub const REFUSED: &str = "connection-refused";
    pub const TIMEOUT: &str = "connection-timeout";
    pub const RESPONSE_TIMEOUT: &str = "HTTP-response-timeout";
    pub const RESPONSE_TOO_LARGE: &str = "HTTP-response-body-size";
    pub const REQUEST_TOO_LARGE: &str = "HTTP-request-body-size";
    pub const PROTOCOL: &str = "HTTP-protocol-error";
    pub const TLS: &str = "TLS-protocol-error";
    pub const TLS_CERTIFICATE: &str = "TLS-certificate-error";
    pub const ABANDONED: &str = "abandoned";
}

/// What the policy allows for one request.
#[derive(Debug, Clone)]
pub struct Egress {
    /// The pattern that allowed the request (it decides which addresses are reachable).
    pub pattern: NetPattern,
    pub max_response_bytes: u64,
    pub timeout: Duration,
    /// Extra certificate authorities (a PEM file) trusted for https.
    pub ca: Option<std::path::PathBuf>,
}

pub fn failed(code: &str, message: impl Into<String>) -> HttpOutcome {
    HttpOutcome::Failed {
        code: code.into(),
        message: message.into(),
    }
}

/// Hex sha256 and base64 of a body.
pub fn encode_body(body: &[u8]) -> (String, String) {
    (hex::encode(Sha256::digest(body)), BASE64.encode(body))
}

pub fn decode_body(body: &str) -> Bytes {
    BASE64.decode(body).unwrap_or_default().into()
}

pub(crate) async fn send(request: &HttpRequestRecord, body: Bytes, egress: &Egress) -> HttpOutcome {
    // Set once the response's head has arrived: a deadline after it is the body's.
    let answered = AtomicBool::new(false);
    let exchanged = exchange(request, body, egress, &answered);
    match tokio::time::timeout(egress.timeout, exchanged).await {
        Ok(outcome) => outcome,
        Err(_) if answered.load(Ordering::Relaxed) => failed(
            code::RESPONSE_TIMEOUT,
            format!(
                "the response body of {} {} did not arrive within {} (net.timeout): the server \
                 answered, then sent its body too slowly",
                request.method,
                request.url,
                humantime::format_duration(egress.timeout)
            ),
        ),
        Err(_) => failed(
            code::TIMEOUT,
            format!(
                "{} {} took longer than {} (net.timeout)",
                request.method,
                request.url,
                humantime::format_duration(egress.timeout)
            ),
        ),
    }
}

async fn exchange(
    request: &HttpRequestRecord,
    body: Bytes,
    egress: &Egress,
    answered: &AtomicBool,
) -> HttpOutcome {
    let Ok(uri) = request.url.parse::<http::Uri>() else {
        return failed(
            code::PROTOCOL,
            format!("'{}' is not a valid URL", request.url),
        );
    };
    let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
        return failed(code::PROTOCOL, format!("'{}' has no host", request.url));
    };
    let tls = match scheme {
        "http" => false,
        "https" => true,
        other => return failed(code::PROTOCOL, format!("'{other}' is not http or https")),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = host.trim_start_matches('[').trim_end_matches(']');

    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(found) => found.collect(),
            Err(e) => return failed(code::DNS, format!("cannot resolve {host}: {e}")),
        },
    };
    let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addresses
        .into_iter()
        .partition(|a| egress.pattern.allows_address(a.ip()));
    if allowed.is_empty() {
        let detail = refused
            .first()
            .map(|a| {
                format!(
                    "{} ({})",
                    a.ip(),
                    special(a.ip()).unwrap_or("not reachable")
                )
            })
            .unwrap_or_else(|| "no address".into());
        return failed(
            code::DENIED,
            format!(
                "{host} resolves to {detail}, which '{}' does not grant; grant that address \
                 itself to reach it",
                egress.pattern
            ),
        );
    }

    let mut last_error = None;
    let mut connected = None;
    for address in &allowed {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                connected = Some((stream, *address));
                break;
            }
            Err(e) => last_error = Some(format!("{address}: {e}")),
        }
    }
    let Some((stream, address)) = connected else {
        return failed(
            code::REFUSED,
            format!(
                "cannot connect to {host}: {}",
                last_error.unwrap_or_default()
            ),
        );
    };
    if !tls {
        return send_over(
            stream,
            address,
            (&uri, host),
            request,
            body,
            (egress, answered),
        )
        .await;
    }
    let connector = match tls_connector(egress.ca.as_deref()) {
        Ok(connector) => connector,
        Err(message) => return failed(code::TLS, message),
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(host.to_string()) else {
        return failed(code::TLS, format!("'{host}' is not a name TLS can verify"));
    };
    match connector.connect(name, stream).await {
        Ok(stream) => {
            send_over(
                stream,
                address,
                (&uri, host),
                request,
                body,
                (egress, answered),
            )
            .await
        }
        Err(e) => {
            // rustls reports a rejected certificate as an InvalidData error wrapping its own.
            let certificate = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
            let code = if certificate {
                code::TLS_CERTIFICATE
            } else {
                code::TLS
            };
            failed(code, format!("TLS with {host} ({address}): {e}"))
        }
    }
}

/// A TLS client trusting the public roots and, if given, the authorities in `ca`.
fn tls_connector(ca: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca {
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read net.ca {}: {e}", path.display()))?;
        for certificate in certificates {
            let certificate = certificate
                .map_err(|e| format!("net.ca {} is not PEM certificates: {e}", path.display()))?;
            roots
                .add(certificate)
                .map_err(|e| format!("net.ca {}: {e}", path.display()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// Sends the request over a connected stream (plain or TLS) and collects the response.
/// Sends `request` to `uri` (whose host is `host`) over `stream`; `answered` is set when
/// the response's head arrives.
async fn send_over<S>(
    stream: S,
    address: SocketAddr,
    (uri, host): (&http::Uri, &str),
    request: &HttpRequestRecord,
    body: Bytes,
    (egress, answered): (&Egress, &AtomicBool),
) -> HttpOutcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                return failed(
                    code::PROTOCOL,
                    format!("HTTP handshake with {address}: {e}"),
                );
            }
        };
    tokio::spawn(connection);

    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if !request.headers.iter().any(|(n, _)| n == "host") {
        builder = builder.header("host", uri.authority().map_or(host, |a| a.as_str()));
    }
    let Ok(outgoing) = builder.body(Full::new(body)) else {
        return failed(code::PROTOCOL, "the request could not be built");
    };
    let response = match sender.send_request(outgoing).await {
        Ok(response) => response,
        Err(e) => return failed(code::PROTOCOL, format!("{address}: {e}")),
    };
    answered.store(true, Ordering::Relaxed);
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let limit = egress.max_response_bytes;
    let body = match Limited::new(response.into_body(), limit as usize)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return failed(
                code::RESPONSE_TOO_LARGE,
                format!(
                    "the response from {} is larger than {} (net.max_response_bytes)",
                    request.url,
                    baton_core::limits::size(limit)
                ),
            );
        }
        Err(e) => return failed(code::PROTOCOL, format!("reading the response: {e}")),
    };
    let (body_digest, encoded) = encode_body(&body);
    HttpOutcome::Response {
        status,
        headers,
        body: encoded,
        size: body.len() as u64,
        body_digest,
        address: address.to_string(),
    }
}

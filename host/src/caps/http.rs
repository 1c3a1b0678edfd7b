//! Outgoing HTTP (`wasi:http/outgoing-handler`): policy check → gate → the world's client.
//!
//! Here: the request's scheme, host and port must match a `net.allow` pattern (ports are
//! never implicit), its method must be in `net.methods`, and a Host header must agree with
//! the URL's authority. Anything else is refused with wasi:http's `HTTP-request-denied` and
//! journaled as a denial. In the gate's client: the name is resolved and every address is
//! checked against the pattern before connecting (see `policy::net`); response size and
//! time are bounded. Redirects are not followed: the guest sees the 3xx, and any request it
//! makes next passes through here again.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::effect::http::{Egress, code, decode_body, encode_body, failed};
use crate::effect::{Gate, Reservation};
use crate::journal::event::{EventKind, HttpOutcome, HttpRequestRecord};
use crate::policy::NetGrant;
use crate::policy::net::default_port;

/// Largest request body a plugin may send.
const MAX_REQUEST_BODY: usize = 8 << 20;

type Exchange = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;
type SendFuture = Box<dyn Future<Output = Exchange> + Send>;

pub struct EgressHooks {
    pub(crate) gate: Arc<Gate>,
    pub(crate) grant: Option<NetGrant>,
    pub(crate) plugin: Arc<str>,
}

impl EgressHooks {
    fn deny(&self, message: String) -> SendFuture {
        self.gate.emit(EventKind::Denied {
            capability: "http".into(),
            message,
        });
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _body_sent: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let (parts, body) = request.into_parts();
        let method = parts.method.as_str().to_string();
        let url = parts.uri.to_string();
        let plugin = &self.plugin;
        let Some(grant) = &self.grant else {
            return self.deny(format!(
                "{method} {url} is not granted: the policy grants '{plugin}' no egress (net.allow)"
            ));
        };
        let scheme = parts.uri.scheme_str().unwrap_or("http");
        let host = parts.uri.host().unwrap_or_default();
        let Some(port) = parts.uri.port_u16().or_else(|| default_port(scheme)) else {
            return self.deny(format!("{method} {url} is not granted: unknown scheme"));
        };
        let Some(pattern) = grant.pattern_for(scheme, host, port) else {
            return self.deny(format!(
                "{method} {url} is not granted: {scheme}://{host}:{port} matches no net.allow \
                 pattern of '{plugin}' in {}",
                grant.source
            ));
        };
        if !grant.methods.contains(&method) {
            return self.deny(format!(
                "{method} {url} is not granted: '{plugin}' may use only {} (net.methods)",
                grant.methods.join(", ")
            ));
        }
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default();
        if let Some((_, value)) = headers.iter().find(|(n, _)| n == "host")
            && !value.eq_ignore_ascii_case(authority)
        {
            return self.deny(format!(
                "{method} {url} is not granted: its Host header '{value}' disagrees with the \
                 URL's authority '{authority}'"
            ));
        }

        // The request's place in the chain is fixed now, when the guest sends it.
        let head = HttpRequestRecord {
            method,
            url,
            headers,
            body: String::new(),
            body_digest: String::new(),
        };
        let reservation = self.gate.reserve(EventKind::Http {
            request: head.clone(),
            outcome: failed(
                code::ABANDONED,
                "the guest dropped the request before it completed",
            ),
        });
        let gate = self.gate.clone();
        let egress = Egress {
            pattern: pattern.clone(),
            max_response_bytes: grant.max_response_bytes,
            timeout: grant.timeout,
        };
        Box::new(async move {
            let (body, too_large) = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                Ok(collected) => (collected.to_bytes(), false),
                Err(_) => (Bytes::new(), true),
            };
            let (body_digest, encoded) = encode_body(&body);
            let request = HttpRequestRecord {
                body: encoded,
                body_digest,
                ..head
            };
            let outcome = match reservation {
                Reservation::Live(slot) if too_large => {
                    let outcome = failed(
                        code::REQUEST_TOO_LARGE,
                        format!("the request body is larger than {MAX_REQUEST_BODY} bytes"),
                    );
                    gate.fill(
                        slot,
                        EventKind::Http {
                            request,
                            outcome: outcome.clone(),
                        },
                    );
                    outcome
                }
                Reservation::Live(slot) => gate.send_http(slot, request, body, &egress).await,
                Reservation::Replayed(Some(recorded)) => match &recorded.kind {
                    EventKind::Http { outcome, .. } => {
                        let produced = EventKind::Http {
                            request,
                            outcome: outcome.clone(),
                        };
                        gate.confirm(&recorded, &produced);
                        outcome.clone()
                    }
                    _ => failed(code::PROTOCOL, "the replay diverged here"),
                },
                Reservation::Replayed(None) => failed(code::PROTOCOL, "the replay diverged"),
            };
            respond(outcome)
        })
    }
}

/// The guest's view of an outcome.
fn respond(outcome: HttpOutcome) -> Exchange {
    match outcome {
        HttpOutcome::Response {
            status,
            headers,
            body,
            ..
        } => {
            let mut builder = http::Response::builder().status(status);
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let body = Full::new(decode_body(&body))
                .map_err(|never: Infallible| match never {})
                .boxed_unsync();
            let response = builder.body(body).map_err(|_| Error::HttpProtocolError)?;
            Ok((response, Box::new(async { Ok(()) })))
        }
        HttpOutcome::Failed { code: c, message } => Err(match c.as_str() {
            code::DENIED => Error::HttpRequestDenied,
            code::DNS => Error::DnsError {
                rcode: Some(message),
                info_code: None,
            },
            code::REFUSED => Error::ConnectionRefused,
            code::TIMEOUT => Error::ConnectionTimeout,
            code::RESPONSE_TOO_LARGE => Error::HttpResponseBodySize(None),
            code::REQUEST_TOO_LARGE => Error::HttpRequestBodySize(None),
            code::TLS => Error::TlsProtocolError,
            code::PROTOCOL => Error::HttpProtocolError,
            _ => Error::InternalError(Some(message)),
        }),
    }
}

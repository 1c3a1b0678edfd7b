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

use baton_effects::Gate;
use baton_effects::http::{Egress, code, decode_body, encode_body, failed};
use baton_journal::event::{EventKind, HttpOutcome, HttpRequestRecord};
use baton_policy::NetGrant;
use baton_policy::net::{NetPattern, default_port};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{CallSetup, Capability, HostState, Interfaces};
use crate::flow::Flow;

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

pub struct Http;

/// Each store's HTTP context, and the hooks every request it sends goes through.
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: EgressHooks,
}

impl Capability for Http {
    type State = HttpState;

    const INTERFACES: &'static [Interfaces] = &[Interfaces {
        package: "wasi:http",
        names: &["types", "outgoing-handler"],
        version: "0.2.",
    }];

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }

    fn prepare(call: &CallSetup<'_>) -> HttpState {
        HttpState {
            ctx: WasiHttpCtx::new(),
            hooks: EgressHooks {
                gate: call.grant.gate.clone(),
                flow: call.grant.flow.clone(),
                grant: call.grant.grants.net.clone(),
                plugin: call.grant.plugin.clone(),
            },
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

struct EgressHooks {
    gate: Arc<dyn Gate>,
    flow: Arc<Flow>,
    grant: Option<NetGrant>,
    plugin: Arc<str>,
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

/// The policy's verdict on a request: the grant and the pattern that allow it, or why not.
pub fn check<'g>(
    grant: Option<&'g NetGrant>,
    plugin: &str,
    request: &http::request::Parts,
) -> Result<(&'g NetGrant, &'g NetPattern), String> {
    let method = request.method.as_str();
    let url = &request.uri;
    let Some(grant) = grant else {
        return Err(format!(
            "{method} {url} is not granted: the policy grants '{plugin}' no egress (net.allow)"
        ));
    };
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or_default();
    // `user:password@` before the host: never sent on, and never echoed (it may be a secret).
    if url.authority().is_some_and(|a| a.as_str().contains('@')) {
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        return Err(format!(
            "{method} {scheme}://…@{host}{path} is not granted: its URL carries user \
             information before the host, which Baton refuses rather than forward; send \
             credentials in a header"
        ));
    }
    let Some(port) = url.port_u16().or_else(|| default_port(scheme)) else {
        return Err(format!("{method} {url} is not granted: unknown scheme"));
    };
    let Some(pattern) = grant.pattern_for(scheme, host, port) else {
        return Err(format!(
            "{method} {url} is not granted: {scheme}://{host}:{port} matches no net.allow \
             pattern of '{plugin}' in {}",
            grant.source
        ));
    };
    if !grant.methods.iter().any(|m| m == method) {
        return Err(format!(
            "{method} {url} is not granted: '{plugin}' may use only {} (net.methods)",
            grant.methods.join(", ")
        ));
    }
    let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
    if let Some(value) = request.headers.get(http::header::HOST)
        && !value.as_bytes().eq_ignore_ascii_case(authority.as_bytes())
    {
        return Err(format!(
            "{method} {url} is not granted: its Host header '{}' disagrees with the URL's \
             authority '{authority}'",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    Ok((grant, pattern))
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
        let checked = check(self.grant.as_ref(), &self.plugin, &parts);
        let (grant, pattern) = match checked {
            Ok(allowed) => allowed,
            Err(message) => return self.deny(message),
        };
        // The request is a sink for what the call carries, and what answers it a source.
        let destination = (
            parts.uri.scheme_str().unwrap_or("http"),
            parts.uri.host().unwrap_or_default(),
            pattern.port,
        );
        if self
            .flow
            .check(&format!("{method} {url}"), Some(destination))
            .is_err()
        {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        self.flow.request(destination, &url);
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

        // The request's place in the chain is fixed now, when the guest sends it.
        let head = HttpRequestRecord {
            method,
            url,
            headers,
            body: String::new(),
            body_digest: String::new(),
        };
        let slot = self.gate.reserve(EventKind::Http {
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
            ca: grant.ca.clone(),
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
            let outcome = if too_large {
                let refused = EventKind::Http {
                    request: request.clone(),
                    outcome: failed(
                        code::REQUEST_TOO_LARGE,
                        format!("the request body is larger than {MAX_REQUEST_BODY} bytes"),
                    ),
                };
                let answer = gate.resolve(slot, refused.clone(), Box::pin(async { refused }));
                match answer.await {
                    Some(EventKind::Http { outcome, .. }) => Some(outcome),
                    _ => None,
                }
            } else {
                gate.http(slot, request, body, &egress).await
            };
            let outcome = outcome.unwrap_or_else(|| failed(code::PROTOCOL, "the replay diverged"));
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
            code::RESPONSE_TIMEOUT => Error::HttpResponseTimeout,
            code::RESPONSE_TOO_LARGE => Error::HttpResponseBodySize(None),
            code::REQUEST_TOO_LARGE => Error::HttpRequestBodySize(None),
            code::TLS => Error::TlsProtocolError,
            code::TLS_CERTIFICATE => Error::TlsCertificateError,
            code::PROTOCOL => Error::HttpProtocolError,
            _ => Error::InternalError(Some(message)),
        }),
    }
}

//! Outgoing HTTP (`wasi:http/outgoing-handler`). No policy grants egress yet, so every
//! request is refused with wasi:http's `HTTP-request-denied` error code, which the guest
//! sees as an ordinary error it can handle.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

#[derive(Debug, Default)]
pub struct EgressHooks;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _body_sent: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        tracing::warn!(uri = %request.uri(), "outgoing HTTP request denied: no egress is granted");
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

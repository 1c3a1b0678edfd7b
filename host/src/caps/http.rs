//! Outgoing HTTP (`wasi:http/outgoing-handler`). No policy grants egress yet, so every
//! request is refused with wasi:http's `HTTP-request-denied` error code, which the guest
//! sees as an ordinary error it can handle, and the denial is journaled.

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

use std::sync::Arc;

use crate::effect::Gate;
use crate::journal::event::EventKind;

pub struct EgressHooks {
    pub(crate) gate: Arc<Gate>,
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _body_sent: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        self.gate.emit(EventKind::Denied {
            capability: "http".into(),
            message: format!(
                "{} {} is not granted: no egress is granted",
                request.method(),
                request.uri()
            ),
        });
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

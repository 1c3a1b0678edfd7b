//! File contents as WASI streams: every read and write one journaled operation through the
//! gate.

use std::sync::Arc;

use baton_effects::Gate;
use baton_effects::fs::{self as world, FsOp, Node};
use baton_journal::event::FsAnswer;
use bytes::Bytes;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

use super::StreamFsError;
use crate::flow::Flow;
use super::answers::error_code;
use super::types::ErrorCode;

/// Reads a file through the gate, one journaled read per call.
pub(super) struct FileReader {
    pub(super) gate: Arc<dyn Gate>,
    pub(super) flow: Arc<Flow>,
    pub(super) node: Node,
    pub(super) offset: u64,
    pub(super) ended: bool,
}

#[async_trait::async_trait]
impl Pollable for FileReader {
    async fn ready(&mut self) {}
}

impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.ended {
            return Err(StreamError::Closed);
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let op = FsOp::Read {
            offset: self.offset,
            len: size as u64,
        };
        if let Err(code) = super::flow_fs(&self.flow, &self.node, &op) {
            return Err(StreamError::LastOperationFailed(wasmtime::Error::new(StreamFsError(code))));
        }
        match self.gate.fs(&self.node, &op).0 {
            FsAnswer::Bytes { data, end } => {
                let bytes = baton_effects::http::decode_body(&data);
                self.offset += bytes.len() as u64;
                self.ended = end;
                if bytes.is_empty() && end {
                    return Err(StreamError::Closed);
                }
                Ok(bytes)
            }
            FsAnswer::Failed { code } => Err(stream_error(&code)),
            _ => Err(StreamError::Closed),
        }
    }
}

/// Writes a file through the gate, one journaled write per call.
pub(super) struct FileWriter {
    pub(super) gate: Arc<dyn Gate>,
    pub(super) flow: Arc<Flow>,
    pub(super) node: Node,
    /// `None` appends.
    pub(super) offset: Option<u64>,
}

/// The most a guest may write to a file in one call.
const WRITE_CHUNK: usize = 1 << 20;

#[async_trait::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let op = FsOp::Write {
            offset: self.offset,
            data: &bytes,
        };
        if let Err(code) = super::flow_fs(&self.flow, &self.node, &op) {
            return Err(StreamError::LastOperationFailed(wasmtime::Error::new(StreamFsError(code))));
        }
        match self.gate.fs(&self.node, &op).0 {
            FsAnswer::Count { count } => {
                if let Some(offset) = &mut self.offset {
                    *offset += count;
                }
                Ok(())
            }
            FsAnswer::Failed { code } => Err(stream_error(&code)),
            _ => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_CHUNK)
    }
}

fn stream_error(code: &str) -> StreamError {
    let code = match code {
        world::ESCAPE => ErrorCode::NotPermitted,
        code => error_code(code),
    };
    StreamError::LastOperationFailed(wasmtime::Error::new(StreamFsError(code)))
}

//! Bounded capture of a guest's stdout and stderr. Writing past the limit traps the guest with
//! a typed `LimitExceeded::Output`, so a flood is reported as what it is.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream as WasiOutputStream, StreamError};

use baton_core::limits::{LimitExceeded, OutputStream};

#[derive(Clone)]
pub struct BoundedPipe {
    stream: OutputStream,
    limit: u64,
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl BoundedPipe {
    pub fn new(stream: OutputStream, limit: u64) -> Self {
        Self {
            stream,
            limit,
            buffer: Arc::default(),
        }
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A poisoned buffer still holds valid bytes.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, bytes: &[u8]) -> Result<(), LimitExceeded> {
        let mut buffer = self.lock();
        if (buffer.len() + bytes.len()) as u64 > self.limit {
            return Err(LimitExceeded::Output {
                limit: self.limit,
                stream: self.stream,
            });
        }
        buffer.extend_from_slice(bytes);
        Ok(())
    }
}

#[async_trait::async_trait]
impl WasiOutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always accept a write, so that the one that crosses the limit traps with a typed error
        // instead of the guest waiting on a stream that never drains.
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for BoundedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn WasiOutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_limit_fail_with_a_typed_error_and_keep_what_fit() {
        let mut pipe = BoundedPipe::new(OutputStream::Stdout, 8);
        pipe.write(Bytes::from_static(b"12345")).unwrap();
        let err = pipe.write(Bytes::from_static(b"6789")).unwrap_err();
        let StreamError::Trap(trap) = err else {
            panic!("expected a trap");
        };
        assert_eq!(
            trap.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Output {
                limit: 8,
                stream: OutputStream::Stdout
            })
        );
        assert_eq!(pipe.contents(), b"12345");
    }
}

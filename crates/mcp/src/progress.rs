//! Progress notifications for calls that run long: a client that asked for progress (a
//! `progressToken` in the request's `_meta`) hears from a call once a second after its
//! first second, so that it knows the call is alive.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use tokio::time::Instant;

/// How long a call runs before its first progress notification, and between two.
const EVERY: Duration = Duration::from_secs(1);

/// Awaits `call`, telling `peer` how long it has been running every second while it does,
/// when the client gave a `token`.
pub async fn reported<F: Future>(
    call: F,
    token: Option<ProgressToken>,
    peer: &Peer<RoleServer>,
) -> F::Output {
    let Some(token) = token else {
        return call.await;
    };
    tokio::pin!(call);
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + EVERY, EVERY);
    loop {
        tokio::select! {
            output = &mut call => return output,
            _ = ticks.tick() => {
                let seconds = started.elapsed().as_secs();
                let update = ProgressNotificationParam::new(token.clone(), seconds as f64)
                    .with_message(format!("running for {seconds} s"));
                // A client that went away cannot be told; the call goes on regardless.
                if let Err(e) = peer.notify_progress(update).await {
                    tracing::debug!("progress not sent: {e}");
                }
            }
        }
    }
}

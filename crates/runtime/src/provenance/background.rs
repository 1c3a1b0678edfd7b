//! Signing off the thread that ran: a run that ends is queued to one thread per host, which
//! signs it, logs it and checkpoints the log, in the order runs ended. The run's caller does
//! not wait for the store to be read back and the statement signed.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use baton_journal::store::Recorder;

use super::RunSigner;

/// Signs ended runs on a thread of its own. Dropping it waits for what was queued.
pub struct BackgroundSigner {
    queue: Option<mpsc::Sender<(Recorder, String)>>,
    /// Runs queued and not yet signed (or refused), and a signal when that falls.
    pending: Arc<(Mutex<usize>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundSigner {
    /// Starts the signing thread of `signer`.
    pub fn start(signer: RunSigner) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(Recorder, String)>();
        let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
        let thread = {
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("baton-signer".into())
                .spawn(move || {
                    for (recorder, run) in rx {
                        if let Err(e) = signer.sign(&recorder, &run) {
                            // The run stands; `baton trace verify` will report it unsigned.
                            tracing::error!("run {run} is not signed: {e}");
                        }
                        let (count, fallen) = &*pending;
                        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                        fallen.notify_all();
                    }
                })?
        };
        Ok(Self {
            queue: Some(tx),
            pending,
            thread: Some(thread),
        })
    }

    /// Queues the ended run `run`, recorded through `recorder`, to be signed.
    pub fn submit(&self, recorder: &Recorder, run: &str) {
        if let Some(tx) = &self.queue {
            *self.pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            if tx.send((recorder.clone(), run.to_string())).is_err() {
                *self.pending.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                tracing::error!("run {run} is not signed: the signing thread stopped");
            }
        }
    }

    /// Waits until every run queued so far is signed (before a bundle is exported).
    pub fn wait(&self) {
        let (count, fallen) = &*self.pending;
        let mut left = count.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            left = fallen.wait(left).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for BackgroundSigner {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has signed what was queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

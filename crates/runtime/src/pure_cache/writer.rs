//! The cache's writer: a thread that commits the calls queued to be kept, those of a burst in
//! one transaction, while the calls that queued them go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Backend, PureCall};

/// Calls queued to be kept and not yet committed, by key: the cache answers from here until
/// the writer has committed them.
#[derive(Clone, Default)]
pub(super) struct Queued(Arc<Mutex<HashMap<String, PureCall>>>);

impl Queued {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PureCall>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, key: &str) -> Option<PureCall> {
        self.lock().get(key).cloned()
    }

    /// Queues `call` under `key`; false when a call is queued under it already (it stays).
    pub(super) fn insert(&self, key: &str, call: PureCall) -> bool {
        let mut queued = self.lock();
        if queued.contains_key(key) {
            return false;
        }
        queued.insert(key.to_owned(), call);
        true
    }
}

/// Sends the keys of queued calls to the writer thread. Dropping it waits for the thread to
/// commit what was queued.
pub(super) struct Writer {
    keys: Option<mpsc::Sender<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that keeps the calls queued in `queued` in `backend`. A thread that
    /// cannot be started leaves the cache keeping nothing (and says so): calls then run.
    pub(super) fn start(backend: Arc<Backend>, queued: Queued) -> Self {
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::Builder::new()
            .name("baton-pure-cache".into())
            .spawn(move || commit_until_closed(&backend, &queued, &rx));
        match thread {
            Ok(thread) => Self {
                keys: Some(tx),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!("the cache of pure calls keeps nothing: no thread for it: {e}");
                Self {
                    keys: None,
                    thread: None,
                }
            }
        }
    }

    /// Whether its thread runs (when not, nothing is queued).
    pub(super) fn running(&self) -> bool {
        self.keys.is_some()
    }

    /// Tells the writer a call is queued under `key`.
    pub(super) fn wake(&self, key: &str) {
        if let Some(keys) = &self.keys {
            // A send fails only when the thread is gone, which it reported.
            let _ = keys.send(key.to_owned());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has committed what was queued.
        self.keys.take();
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// How long the writer gathers keys before it commits their calls: one transaction for the
/// calls of a burst, and one wake-up of the writer per burst rather than per call (a send to
/// a writer that sleeps costs the caller no system call). The calls are answered from the
/// queue meanwhile; other processes see them this much later.
const GATHER: Duration = Duration::from_millis(2);

/// Most calls committed in one transaction.
const MAX_BATCH: usize = 1024;

/// The writer thread: for each burst of keys received, commits their calls in one
/// transaction, then takes them off the queue.
fn commit_until_closed(backend: &Backend, queued: &Queued, keys: &mpsc::Receiver<String>) {
    // Blocks only while idle: the first call of a burst wakes it.
    while let Ok(first) = keys.recv() {
        let deadline = Instant::now() + GATHER;
        let mut batch = vec![first];
        loop {
            let open = loop {
                match keys.try_recv() {
                    Ok(key) => batch.push(key),
                    Err(mpsc::TryRecvError::Empty) => break true,
                    Err(mpsc::TryRecvError::Disconnected) => break false,
                }
            };
            let now = Instant::now();
            if !open || batch.len() >= MAX_BATCH || now >= deadline {
                break;
            }
            // Dropping the cache unparks it.
            std::thread::park_timeout(deadline - now);
        }
        let calls: Vec<(String, PureCall)> = {
            let queued = queued.lock();
            batch
                .iter()
                .filter_map(|key| Some((key.clone(), queued.get(key)?.clone())))
                .collect()
        };
        if let Err(e) = backend.keep(&calls) {
            tracing::warn!("the cache of pure calls cannot keep a result: {e}");
        }
        let mut queued = queued.lock();
        for key in &batch {
            queued.remove(key);
        }
    }
}

//! The tool directories, watched: when a file in one changes, the catalog scans them again
//! (verifying what is new or replaced) and, when the tools or prompts served changed, every
//! client that can hear it is sent `notifications/tools/list_changed` or
//! `notifications/prompts/list_changed`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_runtime::Host;
use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rmcp::{Peer, RoleServer};

use crate::catalog::{Catalog, Scan};

/// How long a directory must be quiet before it is scanned: a copy is many events, and a
/// component and its signature arrive one after the other.
const QUIET: Duration = Duration::from_millis(200);

/// The clients told when the tools change (those whose session began with `initialize`;
/// the sessionless protocol has no channel for it).
#[derive(Default)]
pub struct Listeners(Mutex<Vec<Peer<RoleServer>>>);

impl Listeners {
    pub fn add(&self, peer: Peer<RoleServer>) {
        self.peers().push(peer);
    }

    /// The clients still connected (those gone are forgotten).
    fn peers(&self) -> std::sync::MutexGuard<'_, Vec<Peer<RoleServer>>> {
        let mut peers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|peer| !peer.is_transport_closed());
        peers
    }

    /// Tells every client what changed.
    async fn tell_all(&self, scan: &Scan) {
        let peers = self.peers().clone();
        for peer in peers {
            // A client that went away meanwhile cannot be told; the others still are.
            if scan.tools_changed {
                let _ = peer.notify_tool_list_changed().await;
            }
            if scan.prompts_changed {
                let _ = peer.notify_prompt_list_changed().await;
            }
        }
    }
}

/// Watches the directories of `catalog` until the returned watcher is dropped.
pub fn watch(
    host: Arc<Host>,
    catalog: Arc<Catalog>,
    listeners: Arc<Listeners>,
) -> notify::Result<RecommendedWatcher> {
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| changes_files(&e.kind)) {
            let _ = changed.send(());
        }
    })?;
    for dir in catalog.dirs() {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            while let Ok(Some(())) = tokio::time::timeout(QUIET, changes.recv()).await {}
            match catalog.scan(&host).await {
                Ok(scan) => {
                    for component in &scan.left_out {
                        tracing::warn!("not served: {component}");
                    }
                    if scan.tools_changed || scan.prompts_changed {
                        tracing::info!("what is served changed; telling the clients");
                        listeners.tell_all(&scan).await;
                    }
                }
                Err(e) => tracing::warn!("cannot scan the tool directories again: {e}"),
            }
        }
    });
    Ok(watcher)
}

/// Whether an event may have changed what a directory holds (reading a file, as a scan
/// does, does not).
fn changes_files(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

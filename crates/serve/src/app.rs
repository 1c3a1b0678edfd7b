//! What every handler shares: the host, the key store, each key's ledger, the metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use baton_budget::{Ledger, Spend};
use baton_runtime::Host;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::keys::{KeyRecord, Keys, ledger_of};
use crate::library::Library;
use crate::runs::Runs;
use crate::webhooks::HookTable;

pub struct App {
    pub host: Arc<Host>,
    pub keys: Keys,
    pub metrics: PrometheusHandle,
    pub library: Library,
    pub runs: Runs,
    pub hooks: HookTable,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
    /// Where runs' steps run when not here.
    pub dispatch: Option<Arc<dyn baton_orchestrator::remote::Dispatch>>,
    /// Each key's ledger, made on its first request from what the store says it spent.
    accounts: Mutex<HashMap<String, Account>>,
}

struct Account {
    ledger: Arc<Ledger>,
    /// What the store holds for it, so that only changes are written.
    stored: Spend,
}

impl App {
    pub fn new(
        host: Arc<Host>,
        keys: Keys,
        metrics: PrometheusHandle,
        library: Library,
        runs: Runs,
        hooks: HookTable,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            host,
            keys,
            metrics,
            library,
            runs,
            hooks,
            shutdown,
            dispatch: None,
            accounts: Mutex::default(),
        }
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ledger `key`'s runs and requests spend from: one per key for the life of the
    /// server, so that concurrent requests reserve against the same budget. With the keys in
    /// PostgreSQL, every reservation is also taken in the key's shared ledger, so that
    /// servers sharing the store never overspend it together.
    pub fn account(&self, key: &KeyRecord) -> Arc<Ledger> {
        self.accounts()
            .entry(key.id.clone())
            .or_insert_with(|| {
                let scope = format!("key '{}'", key.name);
                let ledger = match self.keys.shared() {
                    Some(db) => {
                        let owner = format!("{}/serve-{}", ledger_of(&key.id), std::process::id());
                        let shared = db.account(&ledger_of(&key.id), &owner);
                        Ledger::account_in(scope, key.budget, key.spent, shared, None)
                    }
                    None => Ledger::account(scope, key.budget, key.spent),
                };
                Account {
                    ledger,
                    stored: key.spent,
                }
            })
            .ledger
            .clone()
    }

    /// Writes what each key has spent since it was last written to the key store.
    pub fn store_spend(&self) {
        let changed: Vec<(String, Spend)> = self
            .accounts()
            .iter_mut()
            .filter_map(|(id, account)| {
                let spent = account.ledger.report().spent;
                (spent != account.stored).then(|| {
                    account.stored = spent;
                    (id.clone(), spent)
                })
            })
            .collect();
        for (id, spent) in changed {
            if let Err(e) = self.keys.record_spend(&id, spent) {
                tracing::error!("cannot record what key {id} spent: {e}");
            }
        }
    }
}

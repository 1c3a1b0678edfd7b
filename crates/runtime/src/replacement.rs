//! A component replaced in a replay (`baton replay --component NEW.wasm`): the record is made
//! to expect the new component where it recorded the old one, so that the comparison shows
//! whether the new version *behaves* differently rather than stopping at its digest.
//!
//! What is expected of the new component: its digest wherever the record names the old one's,
//! its own signature where the old one's was verified, and the fuel and peak memory the old one
//! used (another build burns other amounts; those are not behaviour). Everything else, every
//! request, answer, output and error, is compared as in any replay.

use std::collections::BTreeMap;

use baton_journal::chain::ChainWriter;
use baton_journal::event::{Event, EventKind};
use serde_json::Value;

use crate::error::Error;
use crate::plugin::Plugin;
use crate::recorded::RecordedRun;
use crate::trust::Provenance;

/// Which recorded component a replay replaced, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub name: String,
    /// The recorded component's digest.
    pub old: String,
    /// The replacement's.
    pub new: String,
}

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} replaced by {}", self.name, self.old, self.new)
    }
}

impl RecordedRun {
    /// Makes the record expect `replacement` where it recorded the component named `name`
    /// with digest `old`, and remembers the replacement (see the module's documentation).
    pub fn expect_replacement(
        &mut self,
        replacement: &Plugin,
        old: &str,
        name: &str,
    ) -> Result<(), Error> {
        let new = replacement.loaded.digest.to_string();
        let verified = match &replacement.loaded.provenance {
            Provenance::Verified(v) => Some(EventKind::Verified {
                attestation: v.attestation.clone(),
                digest: new.clone(),
                key: v.key.clone(),
                name: v.name.clone(),
                signature: v.signature.clone(),
                signer: v.signer.clone(),
                trusted_root: v.trusted_root.clone(),
            }),
            Provenance::Unverified => None,
        };
        let mut events = Vec::with_capacity(self.events.len());
        for event in std::mem::take(&mut self.events) {
            let kind = match &event.kind {
                EventKind::Verified { digest, .. } if digest == old => match &verified {
                    Some(verified) => verified.clone(),
                    // Unsigned, the replacement is not said to be verified.
                    None => continue,
                },
                // A run of one call replaces the tool called, whatever the new one's name.
                EventKind::StepStarted { step, tool, digest } if tool == name => {
                    EventKind::StepStarted {
                        step: step.clone(),
                        tool: replacement.name().to_string(),
                        digest: digest.replace(old, &new),
                    }
                }
                kind => renamed(kind, old, &new).map_err(|reason| self.invalid(reason))?,
            };
            events.push(Event { kind, ..event });
        }
        self.events = rerooted(events).map_err(|reason| self.invalid(reason))?;
        self.replaced = Some(Replaced {
            name: replacement.name().to_string(),
            old: old.into(),
            new,
        });
        Ok(())
    }
}

/// `events` with the roots of their chains recomputed: a chain whose events changed has
/// another root, and the events that seal it (a caller's `tool_call`, the run chain's
/// `step_ended`) must name that one, which changes their chains' roots in turn.
fn rerooted(mut events: Vec<Event>) -> Result<Vec<Event>, String> {
    // The root each chain is named by, as recorded: the hash of its last event.
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for event in &events {
        named.insert(event.chain.clone(), event.hash.clone());
    }
    // Each pass settles one more level of sealing; chains nest no deeper than there are.
    for _ in 0..=named.len() {
        let mut writers: BTreeMap<&str, ChainWriter> = BTreeMap::new();
        for event in &events {
            writers
                .entry(&event.chain)
                .or_insert_with(|| ChainWriter::new(&event.run, event.chain.clone()))
                .append(event.kind.clone());
        }
        let moved: Vec<(String, String, String)> = writers
            .iter()
            .filter(|(chain, writer)| writer.head() != named[**chain])
            .map(|(chain, writer)| {
                let old = named[*chain].clone();
                (chain.to_string(), old, writer.head().to_string())
            })
            .collect();
        if moved.is_empty() {
            return Ok(events);
        }
        for (chain, old, new) in moved {
            for event in &mut events {
                event.kind = renamed(&event.kind, &old, &new)?;
            }
            named.insert(chain, new);
        }
    }
    Err("its chains seal one another in a cycle".into())
}

/// `kind` with every mention of digest `old` made `new`.
fn renamed(kind: &EventKind, old: &str, new: &str) -> Result<EventKind, String> {
    let mut value = serde_json::to_value(kind).map_err(|e| e.to_string())?;
    if !replace_in(&mut value, old, new) {
        return Ok(kind.clone());
    }
    serde_json::from_value(value).map_err(|e| format!("an event cannot be read back: {e}"))
}

/// Replaces `old` by `new` in every string of `value`; whether any changed.
fn replace_in(value: &mut Value, old: &str, new: &str) -> bool {
    match value {
        Value::String(text) if text.contains(old) => {
            *text = text.replace(old, new);
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| replace_in(v, old, new) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| replace_in(v, old, new) | any),
        _ => false,
    }
}

//! Hash chains: `hash = sha256(prev_hash ‖ canonical(event))`, where `canonical` is RFC 8785
//! JSON of the event without its `hash`. Any flipped byte, dropped, inserted or reordered
//! event, or truncation (checked against the sealed root) breaks the chain at a position
//! `verify` names.

use sha2::{Digest, Sha256};

use super::event::{ChainId, Event, EventKind};

mod hasher;
pub use hasher::{Hasher, Unhashed};

/// The `prev` of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// RFC 8785 canonical JSON of an event: the bytes that are hashed (without `hash`) and stored
/// (with it). Event types are declared so that serde_json writes them canonically (sorted
/// keys, integers and strings only; see `journal::event`), which the tests below check
/// against a reference canonicalizer for every kind.
pub fn canonical(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("events serialize to JSON")
}

/// The hash of an event whose `hash` field is still empty, given its canonical bytes.
fn hash_canonical(prev: &str, unhashed: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(unhashed);
    hex_digest(hasher)
}

fn hex_digest(hasher: Sha256) -> String {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(hasher.finalize(), &mut hex).expect("64 hex digits for 32 bytes");
    String::from_utf8(hex.to_vec()).expect("hex is ASCII")
}

/// An event as the journal stores it: its key, its kind and its canonical JSON (`hash`
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub run: String,
    pub chain: ChainId,
    pub seq: u64,
    pub kind: &'static str,
    pub body: String,
}

/// The hash `event` should carry given its `prev`.
pub fn hash_of(event: &Event) -> String {
    let mut unhashed = event.clone();
    unhashed.hash.clear();
    hash_canonical(&unhashed.prev, &canonical(&unhashed))
}

/// Appends events to one chain, numbering and hashing them.
///
/// Recording is on the path of every effect, so the writer assembles each event's canonical
/// JSON from parts rather than serializing a whole `Event`: the keys of an event sort as
/// `chain`, `hash`, `kind`, `payload`, `prev`, `run`, `seq`, so its canonical form is the
/// chain (escaped once, here), the kind serialized on its own (`"kind":..,"payload":..`
/// without its braces), then the previous hash, the run (escaped once) and the number. The
/// hash is taken over the parts as they are written, and the stored body is built in one
/// pass with the hash in its place. The tests below check the result against serializing the
/// event, and against a reference RFC 8785 implementation, for every kind.
#[derive(Debug, Clone)]
pub struct ChainWriter {
    run: String,
    chain: ChainId,
    next_seq: u64,
    head: String,
    /// `{"chain":<chain>`
    opening: String,
    /// `","run":<run>,"seq":`
    closing: String,
    /// Reused for each event's `kind` and `payload`.
    scratch: Vec<u8>,
}

impl ChainWriter {
    pub fn new(run: &str, chain: ChainId) -> Self {
        let json = |s: &str| serde_json::to_string(s).expect("a string serializes");
        Self {
            opening: format!(r#"{{"chain":{}"#, json(&chain)),
            closing: format!(r#"","run":{},"seq":"#, json(run)),
            run: run.into(),
            chain,
            next_seq: 0,
            head: GENESIS.into(),
            scratch: Vec::new(),
        }
    }

    /// Appends an event and returns it.
    pub fn append(&mut self, kind: EventKind) -> Event {
        let prev = self.head.clone();
        let seq = self.next_seq;
        self.write(&kind);
        Event {
            run: self.run.clone(),
            chain: self.chain.clone(),
            seq,
            kind,
            prev,
            hash: self.head.clone(),
        }
    }

    /// Appends an event and returns it as the journal stores it.
    pub fn record(&mut self, kind: EventKind) -> Stored {
        let seq = self.next_seq;
        let body = self.write(&kind);
        Stored {
            run: self.run.clone(),
            chain: self.chain.clone(),
            seq,
            kind: kind.name(),
            body,
        }
    }

    /// Numbers and hashes the next event, making its hash the head; returns its stored body.
    fn write(&mut self, kind: &EventKind) -> String {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, kind).expect("events serialize to JSON");
        // `{"kind":..,"payload":..}` without its braces.
        let inner = &self.scratch[1..self.scratch.len() - 1];
        let mut seq = itoa::Buffer::new();
        let seq = seq.format(self.next_seq).as_bytes();
        let after_hash: [&[u8]; 7] = [
            b",",
            inner,
            br#","prev":""#,
            self.head.as_bytes(),
            self.closing.as_bytes(),
            seq,
            b"}",
        ];
        // sha256(prev ‖ the event without `hash`)
        let mut hasher = Sha256::new();
        hasher.update(self.head.as_bytes());
        hasher.update(self.opening.as_bytes());
        for part in after_hash {
            hasher.update(part);
        }
        let hash = hex_digest(hasher);
        let up_to_hash: [&[u8]; 4] = [
            self.opening.as_bytes(),
            br#","hash":""#,
            hash.as_bytes(),
            b"\"",
        ];
        let body = [&up_to_hash[..], &after_hash[..]].concat().concat();
        self.next_seq += 1;
        self.head = hash;
        String::from_utf8(body).expect("JSON is UTF-8")
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    /// Hash of the last event (the chain's root so far).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Number of events appended.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

/// Where and how a chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain '{chain}' breaks at event {seq}: {problem}")]
pub struct ChainBreak {
    pub chain: ChainId,
    pub seq: u64,
    pub problem: String,
}

/// Verifies one chain's events, given in stored order; returns its root hash.
pub fn verify(chain: &str, events: &[Event]) -> Result<String, ChainBreak> {
    let mut head = GENESIS.to_string();
    for (position, event) in events.iter().enumerate() {
        let broken = |problem: String| ChainBreak {
            chain: chain.into(),
            seq: position as u64,
            problem,
        };
        if event.chain != chain {
            return Err(broken(format!("it belongs to chain '{}'", event.chain)));
        }
        if event.seq != position as u64 {
            return Err(broken(format!(
                "found sequence number {} (an event was dropped, inserted or moved)",
                event.seq
            )));
        }
        if event.prev != head {
            return Err(broken(
                "its prev hash is not the previous event's hash (an event was dropped, \
                 inserted, moved or altered)"
                    .into(),
            ));
        }
        let computed = hash_of(event);
        if computed != event.hash {
            return Err(broken(format!(
                "its content does not match its hash (stored {}, computed {})",
                short(&event.hash),
                short(&computed)
            )));
        }
        head = event.hash.clone();
    }
    Ok(head)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(16)]
}

#[cfg(test)]
mod tests;

//! Hash chains: `hash = sha256(prev_hash ‖ canonical(event))`, where `canonical` is RFC 8785
//! JSON of the event without its `hash`. Any flipped byte, dropped, inserted or reordered
//! event, or truncation (checked against the sealed root) breaks the chain at a position
//! `verify` names.

use sha2::{Digest, Sha256};

use super::event::{ChainId, Event, EventKind};

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

    /// Counts an event that is not kept (an unrecorded chain has no hashes).
    pub fn skip(&mut self) {
        self.next_seq += 1;
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
                "its content does not match its hash (stored {}, computed {computed})",
                short(&event.hash)
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
mod tests {
    use super::*;

    fn chain_of(n: u64) -> Vec<Event> {
        let mut w = ChainWriter::new("run1", "step:a".into());
        (0..n)
            .map(|i| {
                w.append(EventKind::Log {
                    level: "info".into(),
                    message: format!("line {i}"),
                })
            })
            .collect()
    }

    #[test]
    fn a_written_chain_verifies_to_its_head() {
        let mut w = ChainWriter::new("run1", "step:a".into());
        let events: Vec<Event> = (0..3)
            .map(|_| w.append(EventKind::RandomSeed { value: "1".into() }))
            .collect();
        assert_eq!(verify("step:a", &events).unwrap(), w.head());
    }

    #[test]
    fn tampering_is_found_at_its_position() {
        let good = chain_of(5);

        let mut flipped = good.clone();
        if let EventKind::Log { message, .. } = &mut flipped[2].kind {
            message.push('!');
        }
        assert_eq!(verify("step:a", &flipped).unwrap_err().seq, 2);

        let mut dropped = good.clone();
        dropped.remove(1);
        assert_eq!(verify("step:a", &dropped).unwrap_err().seq, 1);

        let mut swapped = good.clone();
        swapped.swap(3, 4);
        assert_eq!(verify("step:a", &swapped).unwrap_err().seq, 3);

        let mut inserted = good.clone();
        inserted.insert(4, good[0].clone());
        assert_eq!(verify("step:a", &inserted).unwrap_err().seq, 4);
    }

    /// One event of every kind, with strings that need escaping.
    fn every_kind() -> Vec<EventKind> {
        use super::super::event::*;
        let tricky = "quote \" backslash \\ tab \t nl \n ctl \u{1} del \u{7f} é ✓ \u{2028} 🦀";
        let pair = vec![(tricky.to_string(), "v".to_string())];
        let limits = LimitsRecord {
            budget_fuel: true,
            budget_timeout: false,
            fuel: (1 << 53) - 1,
            memory: 64 << 20,
            output: 1,
            timeout_ms: 5000,
        };
        vec![
            EventKind::RunStarted {
                baton: "0.1.0".into(),
                command: "call".into(),
                format: FORMAT_VERSION,
                policies: vec![PolicyRef {
                    digest: "sha256:00".into(),
                    name: tricky.into(),
                }],
                started_at: "2026-11-21T00:00:00.000Z".into(),
            },
            EventKind::StepStarted {
                digest: "d".into(),
                step: "call".into(),
                tool: tricky.into(),
            },
            EventKind::InvocationStarted {
                digest: "d".into(),
                input: tricky.into(),
                limits,
                secrets: vec!["A".into()],
            },
            EventKind::WallClock {
                nanos: 7,
                seconds: 1_795_000_000,
            },
            EventKind::MonotonicClock {
                nanos: 0,
                seconds: 0,
            },
            EventKind::Random {
                bytes: "00ff".into(),
                source: RandomSource::Insecure,
            },
            EventKind::RandomSeed {
                value: u128::MAX.to_string(),
            },
            EventKind::Log {
                level: "info".into(),
                message: tricky.into(),
            },
            EventKind::Environment { vars: pair.clone() },
            EventKind::Denied {
                capability: "http".into(),
                message: tricky.into(),
            },
            EventKind::Http {
                outcome: HttpOutcome::Response {
                    address: "127.0.0.1:80".into(),
                    body: "aGk=".into(),
                    body_digest: "x".into(),
                    headers: pair.clone(),
                    size: 2,
                    status: 200,
                },
                request: HttpRequestRecord {
                    body: String::new(),
                    body_digest: "e3".into(),
                    headers: pair.clone(),
                    method: "GET".into(),
                    url: "http://h/".into(),
                },
            },
            EventKind::Http {
                outcome: HttpOutcome::Failed {
                    code: "c".into(),
                    message: tricky.into(),
                },
                request: HttpRequestRecord {
                    body: String::new(),
                    body_digest: String::new(),
                    headers: Vec::new(),
                    method: "GET".into(),
                    url: "u".into(),
                },
            },
            EventKind::Fs {
                answer: FsAnswer::Stat {
                    stat: FileStat {
                        accessed: None,
                        links: 1,
                        modified: Some(Timestamp {
                            nanos: 5,
                            seconds: 1_795_000_000,
                        }),
                        node: "regular-file".into(),
                        size: 12,
                    },
                },
                args: "path=a/b follow=true".into(),
                op: "stat_at".into(),
                path: tricky.into(),
            },
            EventKind::Fs {
                answer: FsAnswer::Entries {
                    entries: pair.clone(),
                },
                args: String::new(),
                op: "read_directory".into(),
                path: "/data".into(),
            },
            EventKind::Fs {
                answer: FsAnswer::Bytes {
                    data: "aGk=".into(),
                    end: true,
                },
                args: "offset=0 len=4096".into(),
                op: "read".into(),
                path: "/data/x".into(),
            },
            EventKind::ToolCall {
                chain: "step:call/1".into(),
                events: 3,
                input: tricky.into(),
                outcome: ToolCallOutcome::Returned {
                    output: tricky.into(),
                },
                root: "ab".into(),
                tool: "calc".into(),
            },
            EventKind::Verified {
                attestation: "sha256:ab".into(),
                digest: "sha256:cd".into(),
                key: "-----BEGIN PUBLIC KEY-----\nMFk=\n-----END PUBLIC KEY-----\n".into(),
                name: "baton-dev".into(),
                signature: "MEQ=".into(),
                signer: tricky.into(),
                trusted_root: String::new(),
            },
            EventKind::ToolCall {
                chain: String::new(),
                events: 0,
                input: "{}".into(),
                outcome: ToolCallOutcome::Failed {
                    kind: "unavailable".into(),
                    message: tricky.into(),
                },
                root: String::new(),
                tool: "x".into(),
            },
            EventKind::Fs {
                answer: FsAnswer::Done,
                args: String::new(),
                op: "sync".into(),
                path: "/data/x".into(),
            },
            EventKind::Llm {
                attempts: vec![LlmAttempt {
                    breaker: "closed->open".into(),
                    delay_ms: 250,
                    error: tricky.into(),
                    model: "m".into(),
                    provider: "openai".into(),
                    status: 429,
                }],
                committed: SpendRecord {
                    calls: 1,
                    nano_usd: (1 << 53) - 1,
                    tokens: 30,
                },
                outcome: LlmOutcome::Completed {
                    finish_reason: "stop".into(),
                    input_tokens: 10,
                    model: "m".into(),
                    output_tokens: 20,
                    text: tricky.into(),
                },
                request: LlmRequest {
                    idempotency_key: Some(tricky.into()),
                    max_tokens: 64,
                    messages: vec![LlmMessage {
                        content: tricky.into(),
                        role: "user".into(),
                    }],
                    model: "m".into(),
                    seed: Some(u64::MAX.to_string()),
                    stop: vec!["\n".into()],
                    temperature: "0.7".into(),
                },
                reserved: SpendRecord::default(),
                similarity: String::new(),
                source: "provider".into(),
            },
            EventKind::Llm {
                attempts: Vec::new(),
                committed: SpendRecord::default(),
                outcome: LlmOutcome::Failed {
                    kind: "budget-exceeded".into(),
                    message: tricky.into(),
                },
                request: LlmRequest {
                    idempotency_key: None,
                    max_tokens: 1,
                    messages: Vec::new(),
                    model: "m".into(),
                    seed: None,
                    stop: Vec::new(),
                    temperature: "0".into(),
                },
                reserved: SpendRecord::default(),
                similarity: "0.9431".into(),
                source: "cache:semantic".into(),
            },
            EventKind::LlmEmbed {
                dims: 2,
                error: String::new(),
                model: "all-minilm-l6-v2".into(),
                texts_digest: "ab".into(),
                vectors: "AACAPwAAAAA=".into(),
            },
            EventKind::LlmTokens {
                count: 7,
                error: String::new(),
                model: "smollm2".into(),
                text_digest: "ab".into(),
            },
            EventKind::InvocationEnded {
                duration_us: 1234,
                fuel: 99,
                outcome: InvocationOutcome::Returned {
                    output: tricky.into(),
                },
                peak_memory: 65536,
            },
            EventKind::InvocationEnded {
                duration_us: 1,
                fuel: 1,
                outcome: InvocationOutcome::ToolError {
                    kind: "failed".into(),
                    message: "m".into(),
                },
                peak_memory: 0,
            },
            EventKind::InvocationEnded {
                duration_us: 1,
                fuel: 1,
                outcome: InvocationOutcome::Limit {
                    limit: "fuel".into(),
                    message: "m".into(),
                },
                peak_memory: 0,
            },
            EventKind::InvocationEnded {
                duration_us: 1,
                fuel: 1,
                outcome: InvocationOutcome::Trap {
                    message: "m".into(),
                },
                peak_memory: 0,
            },
            EventKind::Workflow {
                input: "{\"n\":1}".into(),
                planner: "static sha256:00".into(),
                prompts: vec![("react".into(), "sha256:02".into())],
                settings: "{}".into(),
                task: "add".into(),
                tools: vec![("calc".into(), "sha256:01".into())],
            },
            EventKind::Resumed {
                chain: "step:a".into(),
                output: "{}".into(),
                root: "r".into(),
                run: "01k".into(),
            },
            EventKind::StepEnded {
                events: 3,
                root: "r".into(),
                step: "call".into(),
            },
            EventKind::RunEnded {
                status: "ok".into(),
            },
        ]
    }

    #[test]
    fn serde_output_is_rfc_8785_canonical_for_every_kind() {
        let mut writer = ChainWriter::new("run\u{1}é", "step:a".into());
        for kind in every_kind() {
            let hashed = writer.append(kind);
            let mut unhashed = hashed.clone();
            unhashed.hash.clear();
            for event in [&hashed, &unhashed] {
                let fast = String::from_utf8(canonical(event)).unwrap();
                let reference = serde_json_canonicalizer::to_string(event).unwrap();
                assert_eq!(fast, reference, "{}", event.kind.name());
            }
        }
    }

    #[test]
    fn a_recorded_event_is_stored_as_its_hashed_canonical_form() {
        let mut appended = ChainWriter::new("run1", "step:\"quoted\" é".into());
        let mut recorded = appended.clone();
        for kind in every_kind() {
            let event = appended.append(kind.clone());
            let stored = recorded.record(kind);
            assert_eq!(stored.body.as_bytes(), canonical(&event), "{}", stored.kind);
            assert_eq!(
                (&stored.run, &stored.chain, stored.seq, stored.kind),
                (&event.run, &event.chain, event.seq, event.kind.name())
            );
        }
        assert_eq!(appended.head(), recorded.head());
    }

    #[test]
    fn a_written_chain_hashes_as_its_serialized_events_do() {
        let chain = "step:\"quoted\" é";
        let mut writer = ChainWriter::new("run\u{1}é", chain.into());
        let events: Vec<Event> = every_kind().into_iter().map(|k| writer.append(k)).collect();
        for event in &events {
            assert_eq!(hash_of(event), event.hash, "{}", event.kind.name());
        }
        assert_eq!(verify(chain, &events).unwrap(), writer.head());
    }

    #[test]
    fn canonical_form_sorts_keys_and_has_no_whitespace() {
        let event = &chain_of(1)[0];
        let mut unhashed = event.clone();
        unhashed.hash.clear();
        let text = String::from_utf8(canonical(&unhashed)).unwrap();
        assert!(text.starts_with(r#"{"chain":"step:a","kind":"log","payload":{"level":"info""#));
        assert!(!text.contains(' ') || text.contains("line 0"));
    }
}

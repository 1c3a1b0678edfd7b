//! The chain writer against serde and the reference RFC 8785 canonicalizer, and
//! verification finding tampering where it is.

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
    let broken = verify("step:a", &flipped).unwrap_err();
    assert_eq!(broken.seq, 2);
    // Both hashes are shown the same way: 16 hex digits each.
    let (stored, computed) = broken
        .problem
        .split_once("(stored ")
        .unwrap()
        .1
        .split_once(", computed ")
        .unwrap();
    let computed = computed.trim_end_matches(')');
    assert_eq!(
        (stored.len(), computed.len()),
        (16, 16),
        "{}",
        broken.problem
    );
    assert_ne!(stored, computed);

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
                pattern: None,
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
                pattern: None,
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
        EventKind::CacheHit {
            key: "9f".into(),
            run: "01k".into(),
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

//! Journal events: what happened in a run, one typed event at a time.
//!
//! Each event kind says what "the same" means for replay (`same_as`): host-produced events
//! must match exactly; an effect matches when its *request* matches (the recorded response is
//! what replay serves); measured durations are adopted from the record, because wall time is
//! itself a nondeterministic input.

use serde::{Deserialize, Serialize};

use baton_core::limits::Limits;

/// Format version of events and stores. Readers accept every version up to this one.
pub const FORMAT_VERSION: u32 = 1;

/// The chain an event belongs to: the run's own chain, or one step's.
pub type ChainId = String;

/// The run's chain id.
pub const RUN_CHAIN: &str = "run";

/// A step's chain id.
pub fn step_chain(step: &str) -> ChainId {
    format!("step:{step}")
}

/// One journal entry, as stored: canonical JSON of everything but `hash`, hashed with the
/// previous entry's hash.
///
/// Every serialized type here declares its fields in sorted key order, uses only integers
/// and strings, and tags enums externally or adjacently (`kind`, `payload`), so that plain
/// serde_json output is already RFC 8785 canonical JSON; `chain::tests` checks this against
/// a reference canonicalizer for every kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub chain: ChainId,
    /// Hex sha256 of `prev ‖ canonical(event without hash)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Hex sha256 of the previous event in this chain (64 zeros for the first).
    pub prev: String,
    pub run: String,
    pub seq: u64,
}

/// A policy file a run was governed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    /// `sha256:` digest of its text.
    pub digest: String,
    /// How the file was named (its path, or `policies/default.toml` for the built-in one).
    pub name: String,
}

/// Which WASI random interface was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomSource {
    Secure,
    Insecure,
}

/// Limits as journaled (durations in milliseconds, since canonical JSON numbers are doubles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRecord {
    /// The fuel limit is what was left of the run's or step's budget (absent: it is not).
    #[serde(default, skip_serializing_if = "is_false")]
    pub budget_fuel: bool,
    /// The deadline is what was left of the budget's time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub budget_timeout: bool,
    pub fuel: u64,
    pub memory: u64,
    pub output: u64,
    pub timeout_ms: u64,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl From<&Limits> for LimitsRecord {
    fn from(l: &Limits) -> Self {
        Self {
            budget_fuel: false,
            budget_timeout: false,
            fuel: l.fuel,
            memory: l.memory,
            timeout_ms: l.timeout.as_millis() as u64,
            output: l.output,
        }
    }
}

impl From<&LimitsRecord> for Limits {
    fn from(l: &LimitsRecord) -> Self {
        Self {
            fuel: l.fuel,
            memory: l.memory,
            timeout: std::time::Duration::from_millis(l.timeout_ms),
            output: l.output,
        }
    }
}

/// An outgoing HTTP request, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestRecord {
    /// Base64 of the body.
    pub body: String,
    /// Hex sha256 of the body.
    pub body_digest: String,
    /// Header names (lowercase) and values, in the order sent.
    pub headers: Vec<(String, String)>,
    pub method: String,
    pub url: String,
}

/// How an outgoing HTTP request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpOutcome {
    /// `code` is the wasi:http error code the guest received.
    Failed { code: String, message: String },
    Response {
        /// The address actually connected to.
        address: String,
        /// Base64 of the body.
        body: String,
        body_digest: String,
        headers: Vec<(String, String)>,
        size: u64,
        status: u16,
    },
}

/// A point in time, as seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamp {
    pub nanos: u32,
    pub seconds: u64,
}

/// A file's metadata as the guest received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStat {
    pub accessed: Option<Timestamp>,
    pub links: u64,
    pub modified: Option<Timestamp>,
    /// The wasi:filesystem descriptor type (`regular-file`, `directory`, ...).
    pub node: String,
    pub size: u64,
}

/// What a filesystem operation answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FsAnswer {
    /// Bytes read (base64), and whether they reach the end of the file.
    Bytes {
        data: String,
        end: bool,
    },
    /// Bytes written.
    Count {
        count: u64,
    },
    Done,
    /// A directory's entries: (name, descriptor type), sorted by name.
    Entries {
        entries: Vec<(String, String)>,
    },
    /// The wasi:filesystem error code by its WIT name, or `escape` for a path that led
    /// outside its preopened directory (the guest sees `not-permitted`).
    Failed {
        code: String,
    },
    /// `open-at` opened something of this descriptor type.
    Opened {
        node: String,
    },
    Stat {
        stat: FileStat,
    },
    /// A symbolic link's target.
    Text {
        text: String,
    },
}

/// What a call to another tool gave the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolCallOutcome {
    /// The callee's output, as the caller received it (JSON text).
    Returned { output: String },
    /// The baton:plugin error the caller received (`kind`: its variant, e.g. `failed`).
    Failed { kind: String, message: String },
}

/// One message of a completion request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmMessage {
    pub content: String,
    /// system, user, assistant or tool.
    pub role: String,
}

/// A completion request as a plugin (or `baton llm complete`) made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRequest {
    pub idempotency_key: Option<String>,
    pub max_tokens: u32,
    pub messages: Vec<LlmMessage>,
    /// The model name asked for (a route in the policy's `[llm.models]`).
    pub model: String,
    /// Decimal text of a u64 (journal numbers are doubles).
    pub seed: Option<String>,
    pub stop: Vec<String>,
    /// The shortest decimal text of the f32 asked for.
    pub temperature: String,
    /// A regular expression the whole reply must match (`llm.complete-constrained`); absent
    /// from requests that have none, so their events and hashes are as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// One attempt at a provider, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmAttempt {
    /// The circuit-breaker transitions this attempt caused (`closed->open`, or
    /// `open->half_open, half_open->closed` for a probe that succeeded), or empty.
    pub breaker: String,
    /// How long Baton waited before the next attempt, in milliseconds (0: none followed).
    pub delay_ms: u64,
    /// Why it failed; empty when it succeeded.
    pub error: String,
    /// The model route tried.
    pub model: String,
    pub provider: String,
    /// The HTTP status, or 0 when there was none.
    pub status: u16,
}

/// What a call reserved or spent against the budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendRecord {
    pub calls: u64,
    /// US dollars in nano-dollars.
    pub nano_usd: u64,
    pub tokens: u64,
}

/// What a completion request gave the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LlmOutcome {
    Completed {
        /// stop, length or content-filter.
        finish_reason: String,
        input_tokens: u32,
        /// The model route that answered (a fallback, when the budget chose one).
        model: String,
        output_tokens: u32,
        text: String,
    },
    /// `kind`: the baton:plugin error variant the caller received (`budget-exceeded`, ...).
    Failed { kind: String, message: String },
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum InvocationOutcome {
    /// A limit stopped it (`limit`: fuel, memory, timeout, output, stack).
    Limit {
        limit: String,
        message: String,
    },
    /// The component returned; `output` is exactly what it returned.
    Returned {
        output: String,
    },
    /// The tool returned an error (`kind`: invalid_input, failed, host).
    ToolError {
        kind: String,
        message: String,
    },
    Trap {
        message: String,
    },
    /// Its caller stopped it (an MCP client's `notifications/cancelled`).
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "payload",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum EventKind {
    /// First event of the run chain.
    RunStarted {
        baton: String,
        command: String,
        format: u32,
        /// The policy files in force, built-in defaults first; their texts are bundle blobs.
        policies: Vec<PolicyRef>,
        /// RFC 3339 time the run started.
        started_at: String,
    },
    /// What `baton run` was asked to do (run chain, after `run_started`): the planner and
    /// the tools by name and digest, the task, the input (JSON) and the settings (JSON, see
    /// `orchestrator::workflow::Settings`). A replay runs the same again.
    Workflow {
        input: String,
        planner: String,
        /// The prompts the planner may render, by name and digest (absent when none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        prompts: Vec<(String, String)>,
        settings: String,
        task: String,
        tools: Vec<(String, String)>,
    },
    /// A step begins (run chain, in plan order).
    StepStarted {
        digest: String,
        step: String,
        tool: String,
    },
    /// First event of a step chain.
    InvocationStarted {
        digest: String,
        input: String,
        limits: LimitsRecord,
        /// Names of the secrets injected (their values never appear in a journal).
        secrets: Vec<String>,
    },
    WallClock {
        nanos: u32,
        seconds: u64,
    },
    MonotonicClock {
        nanos: u32,
        seconds: u64,
    },
    Random {
        /// Hex of the bytes handed to the guest.
        bytes: String,
        source: RandomSource,
    },
    /// The seed of wasi:random/insecure-seed, as decimal text (a u128).
    RandomSeed {
        value: String,
    },
    Log {
        level: String,
        message: String,
    },
    /// The environment variables the guest was given (secrets appear redacted).
    Environment {
        vars: Vec<(String, String)>,
    },
    /// An outgoing HTTP exchange, in the position where the guest sent the request.
    Http {
        outcome: HttpOutcome,
        request: HttpRequestRecord,
    },
    /// The invoked component's signature verified when it was loaded (second event of its
    /// chain): what a replay re-verifies the bundled bytes with.
    Verified {
        /// `sha256:` of its verified attestation, or empty.
        attestation: String,
        digest: String,
        /// The signer's public key (PEM), empty for a keyless signature.
        key: String,
        /// The key's name, or the keyless subject.
        name: String,
        /// The detached signature (base64) or the Sigstore bundle (JSON).
        signature: String,
        /// Who signed, as shown to users.
        signer: String,
        /// The Sigstore trusted root (JSON) it was verified under, when the policy named one.
        trusted_root: String,
    },
    /// A call to another tool through the host, recorded in the caller's chain once it
    /// returns. The callee's own events are in `chain` (empty if it never ran), sealed here
    /// by their count and root.
    ToolCall {
        chain: ChainId,
        events: u64,
        input: String,
        outcome: ToolCallOutcome,
        root: String,
        tool: String,
    },
    /// The invocation was served from the cache of pure calls rather than run: its plugin
    /// reaches nothing outside its sandbox, and the same component called with the same input
    /// in run `run` read no clock and no randomness (`key`: hex sha256 of the digest and the
    /// input). The events after this one are those that call recorded; a replay runs the
    /// component again and checks them.
    CacheHit {
        key: String,
        run: String,
    },
    /// A filesystem operation on a preopened directory or something beneath it.
    Fs {
        answer: FsAnswer,
        /// The operation's arguments (written data appears as its size and digest).
        args: String,
        op: String,
        /// The guest path of the descriptor it was made on.
        path: String,
    },
    /// A completion request, in the position where it was made: the budget reservation,
    /// every attempt (retries and breaker transitions included), the outcome and what was
    /// spent. A replay serves the outcome and needs no provider.
    Llm {
        attempts: Vec<LlmAttempt>,
        committed: SpendRecord,
        outcome: LlmOutcome,
        request: LlmRequest,
        reserved: SpendRecord,
        /// A semantic cache hit's cosine similarity (decimal text), or empty.
        similarity: String,
        /// Where the outcome came from: `provider`, `idempotency` (a stored result),
        /// `cache:exact` or `cache:semantic`; empty when nothing answered.
        source: String,
    },
    /// Embeddings asked of an embedding model: `vectors` is base64 of every vector's f32
    /// values, little-endian, one after another (`dims` each), in the order of the texts.
    LlmEmbed {
        dims: u32,
        /// Why there are no vectors (no route, no model), or empty.
        error: String,
        model: String,
        /// Hex sha256 of the texts as a JSON array.
        texts_digest: String,
        vectors: String,
    },
    /// A token count asked of a model's tokenizer (`text_digest`: hex sha256 of the text).
    LlmTokens {
        count: u32,
        /// Why there is no count (no route, no model), or empty.
        error: String,
        model: String,
        text_digest: String,
    },
    /// The policy refused a capability the guest asked for (`capability`: llm, tools, http,
    /// fs).
    Denied {
        capability: String,
        message: String,
    },
    /// The labels the invocation's data carries from here on (information-flow control), each
    /// with where it came from, recorded whenever they change: at its start (its input's,
    /// its secrets'), after what it read brought new ones, and at its end when its output
    /// sheds or adds some. Absent while everything is public.
    Labels {
        /// (label, where it came from), sorted by label.
        labels: Vec<(String, String)>,
        /// What changed them.
        reason: String,
    },
    /// A step a resumed run did not run again (the only event of its chain): the output the
    /// interrupted `run` recorded in `chain`, whose root hash was `root`. With `run`, `chain`
    /// and `root` empty: a result a fork gave the step instead of running it
    /// (`replay --fork-at ID --response FILE`).
    Resumed {
        chain: ChainId,
        output: String,
        root: String,
        run: String,
    },
    /// Last event of a step chain.
    InvocationEnded {
        /// Wall time in microseconds.
        duration_us: u64,
        fuel: u64,
        outcome: InvocationOutcome,
        peak_memory: u64,
    },
    /// A step ends (run chain), sealing the step chain's root hash.
    StepEnded {
        events: u64,
        root: String,
        step: String,
    },
    /// Last event of the run chain.
    RunEnded {
        status: String,
    },
}

mod matching;
mod payload;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_kind_and_payload() {
        let event = Event {
            run: "r".into(),
            chain: step_chain("call"),
            seq: 1,
            kind: EventKind::WallClock {
                seconds: 5,
                nanos: 7,
            },
            prev: "00".into(),
            hash: String::new(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "wall_clock");
        assert_eq!(json["payload"]["seconds"], 5);
        assert!(json.get("hash").is_none());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn effects_match_on_their_request_only() {
        let a = EventKind::Random {
            source: RandomSource::Secure,
            bytes: "0011".into(),
        };
        let same_len = EventKind::Random {
            source: RandomSource::Secure,
            bytes: "ffee".into(),
        };
        let longer = EventKind::Random {
            source: RandomSource::Secure,
            bytes: "ffeedd".into(),
        };
        assert!(a.same_as(&same_len));
        assert!(!a.same_as(&longer));
        let log = |m: &str| EventKind::Log {
            level: "info".into(),
            message: m.into(),
        };
        assert!(log("x").same_as(&log("x")));
        assert!(!log("x").same_as(&log("y")));
    }
}

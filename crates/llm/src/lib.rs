//! The world's model providers: the only code that sends completion requests. Only the gate
//! calls `Llm::perform`, in live mode, after the `llm` capability has checked the policy;
//! everything that happens on the way (the budget reservation, the model the budget chose,
//! each attempt, retry and breaker transition, the outcome and what it cost) comes back as
//! one record for the journal.

pub mod breaker;
pub mod cache;
mod cached;
pub mod embedding;
pub mod idempotency;
mod local;
mod openai;
pub mod pattern;
pub mod provider;
mod retry;
mod store;
mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::Instrument;

use baton_budget::{Hold, Ledger, Spend, Usd};
use baton_journal::event::{EventKind, LlmAttempt, LlmOutcome, LlmRequest, SpendRecord};
use baton_policy::llm::{CacheSettings, LlmConfig, ModelRoute, ProviderConfig, ProviderKind};
use breaker::Breaker;
use cache::{Cache, Keys};
use idempotency::{Idempotency, Prior};
use provider::Provider;
pub use store::{Store, Stores};

/// Fixes the number of threads the tensor library uses, as `RAYON_NUM_THREADS`, to the number
/// it would choose itself (one per physical core) unless the variable is already set.
///
/// Without the variable the library re-counts the cores before every matrix product by
/// parsing `/proc/cpuinfo`: about a fifth of a short embedding's time. It governs every model
/// run in the host (embeddings and the local model). It sets an environment variable, so call
/// it before the process starts any other thread: first thing in `main`.
pub fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // SAFETY: the caller runs this before any other thread exists, so nothing reads the
        // environment while it changes.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

/// Where an outcome came from.
pub mod source {
    pub const PROVIDER: &str = "provider";
    pub const IDEMPOTENCY: &str = "idempotency";
}

/// One provider, created on first use (loading a local model takes a while).
struct Slot {
    config: ProviderConfig,
    breaker: Breaker,
    provider: OnceCell<Result<Arc<dyn Provider>, String>>,
}

impl Slot {
    async fn get(&self) -> Result<Arc<dyn Provider>, String> {
        self.provider
            .get_or_init(|| async {
                let config = self.config.clone();
                let made =
                    tokio::task::spawn_blocking(move || -> Result<Arc<dyn Provider>, String> {
                        Ok(match config.kind {
                            ProviderKind::Openai => Arc::new(openai::OpenAi::new(&config)?),
                            ProviderKind::Local => {
                                Arc::new(local::Local::load(&config.model_file)?)
                            }
                            ProviderKind::Embedding => {
                                Arc::new(embedding::Embedding::load(&config.model_file)?)
                            }
                        })
                    })
                    .await;
                made.unwrap_or_else(|e| Err(format!("loading the provider stopped: {e}")))
            })
            .await
            .clone()
    }
}

/// The providers and model routes of a policy, with their breakers, idempotency keys and
/// the completion cache.
pub struct Llm {
    models: BTreeMap<String, ModelRoute>,
    slots: BTreeMap<String, Slot>,
    idempotency: Idempotency,
    cache: Cache,
    cache_settings: CacheSettings,
    policy_version: String,
}

/// Who asks for a completion: a plugin (its name and digest) or the command line.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// Idempotency keys are scoped by it.
    pub name: &'a str,
    /// The component's digest (part of the semantic cache's namespace), or empty.
    pub digest: &'a str,
    /// Whether the cache may answer it (`None`: as the policy's `[cache]` says).
    pub cache: Option<bool>,
}

/// Everything one completion request led to, as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmRecord {
    pub attempts: Vec<LlmAttempt>,
    pub reserved: SpendRecord,
    pub committed: SpendRecord,
    pub outcome: LlmOutcome,
    pub source: String,
    /// A semantic cache hit's similarity (4 decimals), or empty.
    pub similarity: String,
}

impl LlmRecord {
    fn failed(kind: &str, message: impl Into<String>) -> Self {
        Self {
            attempts: Vec::new(),
            reserved: SpendRecord::default(),
            committed: SpendRecord::default(),
            outcome: LlmOutcome::Failed {
                kind: kind.into(),
                message: message.into(),
            },
            source: String::new(),
            similarity: String::new(),
        }
    }

    pub fn into_event(self, request: LlmRequest) -> EventKind {
        EventKind::Llm {
            attempts: self.attempts,
            committed: self.committed,
            outcome: self.outcome,
            request,
            reserved: self.reserved,
            similarity: self.similarity,
            source: self.source,
        }
    }
}

/// A spend as the journal records it.
fn spend_record(s: Spend) -> SpendRecord {
    SpendRecord {
        calls: s.calls,
        nano_usd: s.usd.0,
        tokens: s.tokens,
    }
}

impl Llm {
    /// The routing table `config`, keeping idempotency keys and the cache in `stores`.
    pub fn new(config: &LlmConfig, stores: &Stores) -> Self {
        let slots = config
            .providers
            .iter()
            .map(|(name, config)| {
                let slot = Slot {
                    breaker: Breaker::new(config.breaker),
                    config: config.clone(),
                    provider: OnceCell::new(),
                };
                (name.clone(), slot)
            })
            .collect();
        let (idempotency, cache) = match stores {
            Stores::Memory => (Idempotency::new(None), Cache::new(None)),
            Stores::Beside(journal) => (
                Idempotency::new(Some(&journal.with_file_name("llm-idempotency.db"))),
                Cache::new(Some(&journal.with_file_name("llm-cache.db"))),
            ),
            Stores::Postgres { db, index_dir } => (
                Idempotency::in_postgres(db.clone()),
                Cache::in_postgres(db.clone(), index_dir.clone()),
            ),
        };
        Self {
            models: config.models.clone(),
            slots,
            idempotency,
            cache,
            cache_settings: config.cache.clone(),
            policy_version: config.policy_version.clone(),
        }
    }

    /// The completion cache (for `baton cache`).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The policy's `[cache]` settings.
    pub fn cache_settings(&self) -> &CacheSettings {
        &self.cache_settings
    }

    pub fn route(&self, model: &str) -> Option<&ModelRoute> {
        self.models.get(model)
    }

    fn no_route(model: &str) -> String {
        format!("model '{model}' has no route: add [llm.models.{model}] to the policy")
    }

    /// The provider serving `route`, loaded if it was not yet.
    async fn provider(&self, route: &ModelRoute) -> Result<(&Slot, Arc<dyn Provider>), String> {
        let slot = self
            .slots
            .get(&route.provider)
            .expect("policies are validated: every route's provider exists");
        Ok((slot, slot.get().await?))
    }

    /// One unit-length embedding per text by `model` (an embedding model of the policy).
    /// Embeddings are computed on this machine, from the model's weights alone.
    pub async fn embed(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let route = self.route(model).ok_or_else(|| Self::no_route(model))?;
        let (_, provider) = self.provider(route).await?;
        provider
            .embed(texts)
            .await
            .map_err(|e| format!("model '{model}': {e}"))
    }

    /// Tokens of `text` by `model`'s tokenizer (an upper bound where Baton lacks it).
    pub async fn count(&self, model: &str, text: &str) -> Result<u32, String> {
        let route = self.route(model).ok_or_else(|| Self::no_route(model))?;
        let (_, provider) = self.provider(route).await?;
        Ok(provider.count_text(text).min(u32::MAX as u64) as u32)
    }

    /// Serves one completion request for `caller`, spending from `ledger`.
    pub async fn perform(
        &self,
        requester: &Requester<'_>,
        request: &LlmRequest,
        ledger: &Arc<Ledger>,
    ) -> LlmRecord {
        let mut cache_asked = false;
        let span = telemetry::span(request, self.route(&request.model));
        let record = self
            .serve(requester, request, ledger, &mut cache_asked)
            .instrument(span.clone())
            .await;
        telemetry::completion(request, &record, cache_asked);
        telemetry::finish(&span, &record);
        record
    }

    async fn serve(
        &self,
        requester: &Requester<'_>,
        request: &LlmRequest,
        ledger: &Arc<Ledger>,
        cache_asked: &mut bool,
    ) -> LlmRecord {
        let caller = requester.name;
        let Some(route) = self.route(&request.model) else {
            // An unknown model is the caller's mistake, not an outage.
            return LlmRecord::failed("invalid-argument", Self::no_route(&request.model));
        };
        let claim = match &request.idempotency_key {
            None => None,
            Some(key) => match self.idempotency.begin(caller, key, &fingerprint(request)) {
                Ok(Prior::Fresh(claim)) => Some(claim),
                Ok(Prior::Stored(outcome)) => {
                    return LlmRecord {
                        outcome,
                        source: source::IDEMPOTENCY.into(),
                        ..LlmRecord::failed("", "")
                    };
                }
                Ok(Prior::Mismatch) => {
                    return LlmRecord::failed(
                        "invalid-argument",
                        format!(
                            "idempotency key '{key}' was used before with different \
                             parameters; use a new key for a new request"
                        ),
                    );
                }
                Ok(Prior::InFlight) => {
                    return LlmRecord::failed(
                        "failed",
                        format!("a call with idempotency key '{key}' is still in progress"),
                    );
                }
                Err(e) => return LlmRecord::failed("failed", format!("idempotency store: {e}")),
            },
        };
        let cached = route.cache && requester.cache.unwrap_or(self.cache_settings.enabled);
        let keys = cached.then(|| Keys::of(request, requester.digest, &self.policy_version));
        *cache_asked = cached;
        let mut vector = None;
        if let Some(keys) = &keys {
            match self
                .cached(&self.cache, &self.cache_settings, keys, request)
                .await
            {
                Ok((Some(hit), _)) => {
                    ledger.note_cache_hit(hit.tier == cache::tier::SEMANTIC);
                    return LlmRecord {
                        outcome: hit.outcome,
                        source: hit.tier.into(),
                        similarity: match hit.tier {
                            cache::tier::SEMANTIC => format!("{:.4}", hit.similarity),
                            _ => String::new(),
                        },
                        ..LlmRecord::failed("", "")
                    };
                }
                Ok((None, embedded)) => vector = embedded,
                Err(e) => tracing::warn!("the completion cache: {e}"),
            }
        }
        let record = self.route_and_call(route, request, ledger).await;
        if let (Some(keys), LlmOutcome::Completed { .. }) = (&keys, &record.outcome)
            && let Err(e) = self.cache.store(
                keys,
                vector.as_deref(),
                &record.outcome,
                &self.cache_settings,
            )
        {
            tracing::warn!("the completion cache: {e}");
        }
        // Only an outcome the provider gave is stored: a refusal by the budget or an open
        // breaker never reached it, so the key stays free to try again.
        if let Some(claim) = claim
            && record.source == source::PROVIDER
            && let Err(e) = self.idempotency.store(claim, &record.outcome)
        {
            tracing::warn!("cannot store the outcome of an idempotent call: {e}");
        }
        record
    }

    /// Picks the first of `route` and its fallbacks whose worst case the budget can cover,
    /// reserves it, and calls it.
    async fn route_and_call(
        &self,
        route: &ModelRoute,
        request: &LlmRequest,
        ledger: &Arc<Ledger>,
    ) -> LlmRecord {
        let mut refusal = None;
        let fallbacks = route.fallbacks.iter().filter_map(|f| self.route(f));
        for candidate in std::iter::once(route).chain(fallbacks) {
            let (slot, provider) = match self.provider(candidate).await {
                Ok(found) => found,
                Err(e) => return LlmRecord::failed("unavailable", e),
            };
            let input = provider.count_input(&request.messages);
            let max = request.max_tokens as u64;
            if input + max > candidate.context_window as u64 {
                refusal.get_or_insert(format!(
                    "{input} input tokens and max_tokens {max} exceed model '{}''s context \
                     window of {} tokens",
                    candidate.name, candidate.context_window
                ));
                continue;
            }
            let worst = Spend {
                tokens: input + max,
                usd: price(candidate, input, max),
                calls: 1,
                fuel: 0,
            };
            match ledger.reserve(worst) {
                Ok(hold) => {
                    if let Some(refused) = &refusal {
                        ledger.note(format!(
                            "model '{}' answered in place of '{}' ({refused})",
                            candidate.name, route.name
                        ));
                    }
                    return self.call(candidate, slot, &*provider, request, hold).await;
                }
                Err(exceeded) => {
                    refusal.get_or_insert(format!("model '{}': {exceeded}", candidate.name));
                }
            }
        }
        LlmRecord::failed(
            "budget-exceeded",
            refusal.unwrap_or_else(|| "no model can serve this request".into()),
        )
    }

    /// Attempts `route` through its provider's breaker, retrying what may succeed later.
    async fn call(
        &self,
        route: &ModelRoute,
        slot: &Slot,
        provider: &dyn Provider,
        request: &LlmRequest,
        hold: Hold,
    ) -> LlmRecord {
        let settings = slot.config.retry;
        let reserved = spend_record(hold.held());
        let mut attempts = Vec::new();
        let record = |attempts: Vec<LlmAttempt>, outcome, committed: Spend| LlmRecord {
            attempts,
            reserved,
            committed: spend_record(committed),
            outcome,
            source: source::PROVIDER.into(),
            similarity: String::new(),
        };
        let one_call = Spend {
            calls: 1,
            ..Spend::default()
        };
        let mut retry = 0;
        loop {
            let mut attempt = LlmAttempt {
                breaker: String::new(),
                delay_ms: 0,
                error: String::new(),
                model: route.name.clone(),
                provider: slot.config.name.clone(),
                status: 0,
            };
            match slot.breaker.admit() {
                Ok(transition) => note(&mut attempt, transition),
                Err(open) => {
                    attempt.error = "circuit open".into();
                    attempts.push(attempt);
                    let next = match open.retry_in.is_zero() {
                        true => "is testing it with one call now".to_string(),
                        false => format!(
                            "lets a call through again in {}",
                            baton_core::text::duration(open.retry_in)
                        ),
                    };
                    let message = format!(
                        "provider '{}' is failing: its circuit breaker opened after {} \
                         consecutive failures and {next}",
                        slot.config.name,
                        slot.breaker.settings().failures,
                    );
                    let outcome = LlmOutcome::Failed {
                        kind: "unavailable".into(),
                        message,
                    };
                    // Nothing reached the provider: the call is not charged.
                    drop(hold);
                    let mut r = record(attempts, outcome, Spend::default());
                    r.source = String::new();
                    return r;
                }
            }
            let timeout = match hold_time_left(&hold) {
                Some(left) if left.is_zero() => {
                    attempt.error = "the time budget ran out".into();
                    attempts.push(attempt);
                    let outcome = LlmOutcome::Failed {
                        kind: "budget-exceeded".into(),
                        message: "the time budget ran out before the model answered".into(),
                    };
                    hold.commit(one_call);
                    return record(attempts, outcome, one_call);
                }
                Some(left) => left.min(slot.config.timeout),
                None => slot.config.timeout,
            };
            let error = match provider.complete(&route.remote, request, timeout).await {
                Ok(done) => {
                    note(&mut attempt, slot.breaker.success());
                    attempts.push(attempt);
                    let (input, output) = (done.input_tokens as u64, done.output_tokens as u64);
                    let spent = Spend {
                        tokens: input + output,
                        usd: price(route, input, output),
                        calls: 1,
                        fuel: 0,
                    };
                    hold.commit(spent);
                    let outcome = LlmOutcome::Completed {
                        finish_reason: done.finish_reason,
                        input_tokens: done.input_tokens,
                        model: route.name.clone(),
                        output_tokens: done.output_tokens,
                        text: done.text,
                    };
                    return record(attempts, outcome, spent);
                }
                Err(error) => error,
            };
            attempt.status = error.status();
            attempt.error = error.to_string();
            let transition = match error.retryable() {
                true => slot.breaker.failure(),
                // The provider answered: it is up, whatever it thought of the request.
                false => slot.breaker.success(),
            };
            note(&mut attempt, transition);
            let stop = if !error.retryable() || retry >= settings.retries {
                Some(String::new())
            } else {
                match retry::delay(&settings, retry, error.retry_after()) {
                    Ok(wait) if hold_time_left(&hold).is_some_and(|left| left <= wait) => {
                        Some("; the time budget ends before a retry".into())
                    }
                    Ok(wait) => {
                        attempt.delay_ms = wait.as_millis() as u64;
                        attempts.push(attempt.clone());
                        tokio::time::sleep(wait).await;
                        None
                    }
                    Err(why) => Some(format!("; {why}")),
                }
            };
            if let Some(why) = stop {
                attempts.push(attempt);
                let tries = attempts.len();
                let outcome = LlmOutcome::Failed {
                    kind: error.kind().into(),
                    message: format!(
                        "model '{}' via provider '{}': {error}{why} ({tries} attempt{})",
                        route.name,
                        slot.config.name,
                        if tries == 1 { "" } else { "s" }
                    ),
                };
                hold.commit(one_call);
                return record(attempts, outcome, one_call);
            }
            retry += 1;
        }
    }
}

/// Adds a breaker transition to an attempt's record.
fn note(attempt: &mut LlmAttempt, transition: Option<breaker::Transition>) {
    if let Some(t) = transition {
        telemetry::breaker(&attempt.provider, t);
        if !attempt.breaker.is_empty() {
            attempt.breaker.push_str(", ");
        }
        attempt.breaker.push_str(t);
    }
}

fn hold_time_left(hold: &Hold) -> Option<Duration> {
    hold.ledger().time_left()
}

/// What `input` tokens in and `output` out cost on `route`.
fn price(route: &ModelRoute, input: u64, output: u64) -> Usd {
    Usd(Usd::for_tokens(route.input_per_1k, input).0
        + Usd::for_tokens(route.output_per_1k, output).0)
}

/// What identifies a request's parameters for its idempotency key: everything but the key.
fn fingerprint(request: &LlmRequest) -> String {
    let bare = LlmRequest {
        idempotency_key: None,
        ..request.clone()
    };
    let json = serde_json::to_vec(&bare).expect("requests serialize");
    hex::encode(Sha256::digest(json))
}

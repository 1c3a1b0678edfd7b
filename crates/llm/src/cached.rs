//! The completion path's cache lookups (exact tier, then the embedding and the semantic tier),
//! and the same lookups tried on a pair of questions for `baton cache eval`.

use baton_journal::event::{LlmMessage, LlmOutcome, LlmRequest};
use baton_policy::llm::CacheSettings;

use crate::Llm;
use crate::cache::{Cache, Hit, Keys};

impl Llm {
    /// Looks a request up in the exact tier, then the semantic one (when it applies: the
    /// tier is on, and the request is greedy or the policy serves sampled ones too). Returns
    /// the hit, or the user turn's embedding to store the answer with.
    pub(crate) async fn cached(
        &self,
        cache: &Cache,
        settings: &CacheSettings,
        keys: &Keys,
        request: &LlmRequest,
    ) -> Result<(Option<Hit>, Option<Vec<f32>>), String> {
        if let Some(hit) = cache.exact(keys, settings)? {
            return Ok((Some(hit), None));
        }
        let greedy = request.temperature.parse::<f32>().is_ok_and(|t| t == 0.0);
        if !settings.semantic || keys.query.is_empty() || !(greedy || settings.sampled) {
            return Ok((None, None));
        }
        let vector = self
            .embed(&settings.embedding_model, std::slice::from_ref(&keys.query))
            .await?
            .pop()
            .unwrap_or_default();
        let hit = cache.semantic(keys, &vector, settings)?;
        Ok((hit, Some(vector)))
    }

    /// How the cache under `settings` answers the question `asked` once it holds an answer
    /// to `stored`, through the same lookups a completion takes (exact, then semantic with
    /// the second check). The trial runs in a cache of its own, in memory, so trials never
    /// see each other's entries. Returns the hit, or `None` when the question would go to
    /// the provider.
    pub async fn cache_trial(
        &self,
        settings: &CacheSettings,
        stored: &str,
        asked: &str,
    ) -> Result<Option<Hit>, String> {
        let cache = Cache::new(None);
        let request = |text: &str| LlmRequest {
            idempotency_key: None,
            max_tokens: 1,
            messages: vec![LlmMessage {
                role: "user".into(),
                content: text.into(),
            }],
            model: "cache-trial".into(),
            seed: None,
            stop: Vec::new(),
            temperature: "0".into(),
            pattern: None,
        };
        let (first, second) = (request(stored), request(asked));
        let keys = Keys::of(&first, "", &self.policy_version);
        let (_, vector) = self.cached(&cache, settings, &keys, &first).await?;
        let answer = LlmOutcome::Completed {
            finish_reason: "stop".into(),
            input_tokens: 0,
            model: first.model.clone(),
            output_tokens: 0,
            text: String::new(),
        };
        cache.store(&keys, vector.as_deref(), &answer, settings)?;
        let keys = Keys::of(&second, "", &self.policy_version);
        Ok(self.cached(&cache, settings, &keys, &second).await?.0)
    }
}

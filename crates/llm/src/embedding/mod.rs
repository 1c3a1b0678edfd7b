//! The embedding provider: a sentence-transformers BERT model run with candle (by default
//! all-MiniLM-L6-v2, which `cargo xtask models` fetches), embedding as sentence-transformers
//! does: mean pooling of the last hidden states under the attention mask, then L2
//! normalization, so the cosine similarity of two embeddings is their dot product.

mod encoder;
mod gelu;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::provider::{Completion, Provider, ProviderError};
use baton_journal::event::{LlmMessage, LlmRequest};
use encoder::Encoder;

/// Longest input in tokens; longer texts are cut (the model was trained on up to 256).
const MAX_TOKENS: usize = 256;

#[derive(Clone)]
pub struct Embedding {
    model: Arc<Encoder>,
    tokenizer: Arc<Tokenizer>,
    /// Embeddings computed at once. Each already spreads its matrix products over the
    /// cores; more at once only make them fight for the cores and caches (on two cores, 64
    /// concurrent requests were embedded at 66 a second all at once, 95 one at a time).
    running: Arc<tokio::sync::Semaphore>,
}

impl Embedding {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let file = |name: &str| {
            let path = dir.join(name);
            match path.is_file() {
                true => Ok(path),
                false => Err(format!(
                    "the embedding model lacks {} ({}), or set model_file in the policy's \
                     [llm.providers.<name>]",
                    path.display(),
                    baton_policy::llm::models_hint()
                )),
            }
        };
        let config = std::fs::read_to_string(file("config.json")?)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let config: Config = serde_json::from_str(&config)
            .map_err(|e| format!("{}/config.json: {e}", dir.display()))?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| format!("{}/tokenizer.json: {e}", dir.display()))?;
        // The file pads every input to 128 tokens; pad a batch to its longest input instead.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("{}/tokenizer.json: {e}", dir.display()))?;
        let weights = file("model.safetensors")?;
        // SAFETY: the weights file is mapped read-only and not changed while Baton runs.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .map_err(|e| format!("{}/model.safetensors: {e}", dir.display()))?;
        let model = Encoder::load(vb, &config).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            running: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// One unit-length embedding per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| format!("tokenizing: {e}"))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> candle_core::Result<Tensor> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&rows, 0)
        };
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = rows(&|e| e.get_ids())?;
            let types = rows(&|e| e.get_type_ids())?;
            let mask = rows(&|e| e.get_attention_mask())?;
            let hidden = self.model.forward(&ids, &types, &mask)?;
            // Mean over the real tokens only.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| format!("the embedding model: {e}"))
    }
}

/// Vectors' values as little-endian f32 bytes, one after another: how journals and the cache
/// keep embeddings.
pub fn to_bytes<'a>(values: impl IntoIterator<Item = &'a f32>) -> Vec<u8> {
    values.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The values `to_bytes` wrote.
pub fn from_bytes(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The cosine similarity of two embeddings (their dot product, as they have unit length).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The indices of the (at most) `k` of `candidates` closest to `query`, closest first;
/// equal scores keep the candidates' order.
pub fn closest<V: AsRef<[f32]>>(query: &[f32], candidates: &[V], k: usize) -> Vec<usize> {
    let mut ranked: Vec<(f32, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, v)| (cosine(query, v.as_ref()), i))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked.into_iter().take(k).map(|(_, i)| i).collect()
}

#[async_trait::async_trait]
impl Provider for Embedding {
    fn count_input(&self, messages: &[LlmMessage]) -> u64 {
        messages.iter().map(|m| self.count_text(&m.content)).sum()
    }

    fn count_text(&self, text: &str) -> u64 {
        self.tokenizer
            .encode_fast(text, true)
            .map_or(0, |e| e.get_ids().len() as u64)
    }

    async fn complete(
        &self,
        model: &str,
        _request: &LlmRequest,
        _timeout: std::time::Duration,
    ) -> Result<Completion, ProviderError> {
        Err(ProviderError::Broken(format!(
            "model '{model}' is an embedding model; it does not complete text"
        )))
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        // CPU work (milliseconds a sentence), kept off the async threads.
        let (this, texts) = (self.clone(), texts.to_vec());
        let _turn = self
            .running
            .acquire()
            .await
            .map_err(|e| ProviderError::Broken(format!("the embedding model stopped: {e}")))?;
        tokio::task::spawn_blocking(move || this.embed(&texts))
            .await
            .map_err(|e| ProviderError::Broken(format!("the embedding model stopped: {e}")))?
            .map_err(ProviderError::Broken)
    }
}

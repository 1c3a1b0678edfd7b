//! The local provider: a quantized GGUF model of the llama or Qwen2 architecture run on this
//! machine with candle (by default SmolLM2-135M-Instruct; `cargo xtask models` also fetches
//! Qwen2.5-Coder-1.5B-Instruct, the agent example's model).
//!
//! The tokenizer is built from the GGUF's own metadata (`tokenizer` module), so the model file
//! is all it needs. Prompts use the ChatML template both families were trained with.
//! Generation is deterministic for a given prompt, seed and temperature: temperature 0 takes
//! the most likely token.

mod tokenizer;
mod weights;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokenizers::Tokenizer;

use super::pattern::Pattern;
use super::provider::{Completion, Provider, ProviderError};
use baton_journal::event::{LlmMessage, LlmRequest};

/// The seed used when a request gives none.
const DEFAULT_SEED: u64 = 299_792_458;
/// Repetition penalty over the last tokens, as candle's llama examples use: small models
/// loop without it.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;

#[derive(Clone)]
pub struct Local {
    path: Arc<PathBuf>,
    family: Arc<weights::Family>,
    /// Read on the first completion, not at load: counting tokens needs only the tokenizer,
    /// and a large model takes seconds to read (a prompt component counting tokens under a
    /// short deadline would not wait for it).
    weights: Arc<OnceLock<Result<weights::Weights, String>>>,
    tokenizer: Arc<Tokenizer>,
    /// Tokens that end an answer.
    eos: Vec<u32>,
    /// Each token's bytes (`None` for control tokens), for replies held to a pattern.
    token_bytes: Arc<Vec<Option<Vec<u8>>>>,
}

fn model_error(path: &Path) -> impl Fn(candle_core::Error) -> String + '_ {
    move |e| format!("the local model {} cannot be read: {e}", path.display())
}

impl Local {
    /// Opens the model at `path` and reads its tokenizer; its weights are read when first
    /// needed.
    pub fn load(path: &Path) -> Result<Self, String> {
        let mut file = File::open(path).map_err(|e| {
            format!(
                "cannot open the local model {}: {e} ({}), or name another with model or \
                 model_file in the policy's [llm.providers.NAME]",
                path.display(),
                baton_policy::llm::models_hint()
            )
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(model_error(path))?;
        let family = weights::Family::of(&content)
            .map_err(|e| format!("the local model {}: {e}", path.display()))?;
        let tokenizer = tokenizer::tokenizer_from_gguf(&content)
            .map_err(|e| format!("the local model {}: {e}", path.display()))?;
        let eos = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let token_bytes = tokenizer::token_bytes(&content)
            .map_err(|e| format!("the local model {}: {e}", path.display()))?;
        Ok(Self {
            path: Arc::new(path.to_path_buf()),
            family: Arc::new(family),
            weights: Arc::new(OnceLock::new()),
            tokenizer: Arc::new(tokenizer),
            eos,
            token_bytes: Arc::new(token_bytes),
        })
    }

    /// The model's weights, read on first use.
    fn weights(&self) -> Result<&weights::Weights, ProviderError> {
        self.weights
            .get_or_init(|| {
                let path = self.path.as_path();
                let mut file = File::open(path)
                    .map_err(|e| format!("cannot open the local model {}: {e}", path.display()))?;
                let content = gguf_file::Content::read(&mut file).map_err(model_error(path))?;
                weights::Weights::load(&self.family, content, &mut file).map_err(model_error(path))
            })
            .as_ref()
            .map_err(|e| ProviderError::Broken(e.clone()))
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    fn decode(&self, tokens: &[u32]) -> Result<String, ProviderError> {
        self.tokenizer
            .decode(tokens, true)
            .map_err(|e| ProviderError::Broken(format!("decoding: {e}")))
    }

    fn generate(
        &self,
        request: &LlmRequest,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let broken = |e: candle_core::Error| ProviderError::Broken(format!("the local model: {e}"));
        let prompt = self.encode(&chat_prompt(self.family.system, &request.messages));
        let max_tokens = request.max_tokens as usize;
        if prompt.len() + max_tokens > self.family.context {
            return Err(ProviderError::Broken(format!(
                "{} prompt tokens and max_tokens {max_tokens} exceed the model's context of {} \
                 tokens",
                prompt.len(),
                self.family.context
            )));
        }
        let temperature = request.temperature.parse::<f64>().unwrap_or(0.0);
        let seed = request
            .seed
            .as_ref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SEED);
        let sampling = match temperature > 0.0 {
            true => Sampling::All { temperature },
            false => Sampling::ArgMax,
        };
        let mut sampler = LogitsProcessor::from_sampling(seed, sampling);
        let pattern = match &request.pattern {
            Some(pattern) => Some(Pattern::new(pattern).map_err(ProviderError::Broken)?),
            None => None,
        };
        let mut held = pattern.as_ref().map(Pattern::decoder);
        let mut model = self.weights()?.start();
        let mut tokens = prompt.clone();
        let mut generated: Vec<u32> = Vec::new();
        let mut finish = "length";
        let mut input = prompt.as_slice();
        let mut next;
        while generated.len() < max_tokens {
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout(timeout));
            }
            let position = tokens.len() - input.len();
            let x = Tensor::new(input, &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(broken)?;
            let logits = model
                .forward(&x, position)
                .and_then(|l| l.squeeze(0))
                .map_err(broken)?;
            let recent = &tokens[tokens.len().saturating_sub(REPEAT_WINDOW)..];
            let mut logits =
                candle_transformers::utils::apply_repeat_penalty(&logits, REPEAT_PENALTY, recent)
                    .map_err(broken)?;
            if let Some(held) = &mut held {
                let mut masked = logits.to_vec1::<f32>().map_err(broken)?;
                held.mask(&mut masked, &self.token_bytes, &self.eos);
                logits = Tensor::new(masked, &Device::Cpu).map_err(broken)?;
            }
            next = [sampler.sample(&logits).map_err(broken)?];
            if self.eos.contains(&next[0]) {
                finish = "stop";
                break;
            }
            if let Some(held) = &mut held {
                let bytes = self.token_bytes[next[0] as usize].as_deref();
                // The mask leaves only tokens that keep a match in reach; when it left none,
                // the sampler still picked one.
                if !held.advance(bytes.unwrap_or_default()) {
                    return Err(ProviderError::Broken(format!(
                        "no token of the local model can continue {:?} within the pattern",
                        self.decode(&generated)?
                    )));
                }
            }
            tokens.push(next[0]);
            generated.push(next[0]);
            input = &next;
            if held.as_ref().is_some_and(|held| held.done()) {
                finish = "stop";
                break;
            }
            // The text so far is needed only to watch for stop sequences.
            if request.stop.iter().all(String::is_empty) {
                continue;
            }
            let mut text = self.decode(&generated)?;
            if let Some(at) = request
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                return Ok(Completion {
                    text,
                    finish_reason: "stop".into(),
                    input_tokens: prompt.len() as u32,
                    output_tokens: generated.len() as u32,
                });
            }
        }
        let text = self.decode(&generated)?;
        Ok(Completion {
            text,
            finish_reason: finish.into(),
            input_tokens: prompt.len() as u32,
            output_tokens: generated.len() as u32,
        })
    }
}

/// The ChatML chat template, with the model's own system prompt when the conversation has
/// none, ending with the assistant's turn opened.
fn chat_prompt(system: &str, messages: &[LlmMessage]) -> String {
    let mut prompt = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        prompt.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
    }
    for m in messages {
        prompt.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt
}

#[async_trait::async_trait]
impl Provider for Local {
    fn count_input(&self, messages: &[LlmMessage]) -> u64 {
        self.encode(&chat_prompt(self.family.system, messages))
            .len() as u64
    }

    fn count_text(&self, text: &str) -> u64 {
        self.encode(text).len() as u64
    }

    async fn complete(
        &self,
        _model: &str,
        request: &LlmRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let deadline = Instant::now() + timeout;
        let request = request.clone();
        // A clone shares the weights; generating is CPU work, kept off the async threads.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.generate(&request, deadline, timeout))
            .await
            .map_err(|e| ProviderError::Broken(format!("the local model stopped: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_template_adds_the_default_system_prompt_once() {
        let user = LlmMessage {
            role: "user".into(),
            content: "Hi".into(),
        };
        let prompt = chat_prompt("Be helpful.", std::slice::from_ref(&user));
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        let system = LlmMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        };
        let prompt = chat_prompt("Be helpful.", &[system, user]);
        assert!(prompt.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
        assert_eq!(prompt.matches("system").count(), 1);
    }
}

//! The local provider: a quantized GGUF model of the llama architecture run on this machine
//! with candle (by default SmolLM2-135M-Instruct, which `cargo xtask models` fetches).
//!
//! The tokenizer is built from the GGUF's own metadata (`tokenizer.ggml.*`: a byte-level BPE
//! with its vocabulary, merges and control tokens), so the model file is all it needs.
//! Prompts use the ChatML template SmolLM2 was trained with. Generation is deterministic for
//! a given prompt, seed and temperature: temperature 0 takes the most likely token.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::pattern::Pattern;
use super::provider::{Completion, Provider, ProviderError};
use baton_journal::event::{LlmMessage, LlmRequest};

/// The system prompt SmolLM2's chat template adds when a conversation has none.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
/// The seed used when a request gives none.
const DEFAULT_SEED: u64 = 299_792_458;
/// Repetition penalty over the last tokens, as candle's llama examples use: small models
/// loop without it.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;
/// A GGUF token type: control tokens (`<|im_start|>`, ...) are special.
const CONTROL_TOKEN: i32 = 3;

#[derive(Clone)]
pub struct Local {
    /// Weights, never run: each generation works on a clone (the weights are shared, the
    /// clone gets its own attention cache).
    model: ModelWeights,
    tokenizer: Arc<Tokenizer>,
    /// Tokens that end an answer.
    eos: Vec<u32>,
    context: usize,
    /// Each token's bytes (`None` for control tokens), for replies held to a pattern.
    token_bytes: Arc<Vec<Option<Vec<u8>>>>,
}

fn model_error(path: &Path) -> impl Fn(candle_core::Error) -> String + '_ {
    move |e| format!("the local model {} cannot be read: {e}", path.display())
}

impl Local {
    pub fn load(path: &Path) -> Result<Self, String> {
        let mut file = File::open(path).map_err(|e| {
            format!(
                "cannot open the local model {}: {e} ({}), or set model_file in the \
                 policy's [llm.providers.local]",
                path.display(),
                baton_policy::llm::models_hint()
            )
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(model_error(path))?;
        let tokenizer = tokenizer_from_gguf(&content)
            .map_err(|e| format!("the local model {}: {e}", path.display()))?;
        let context = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(2048) as usize;
        let eos = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let token_bytes = token_bytes(&content)
            .map_err(|e| format!("the local model {}: {e}", path.display()))?;
        let (content, mut weights) = vectorizable(content, &mut file).map_err(model_error(path))?;
        let model = ModelWeights::from_gguf(content, &mut weights, &Device::Cpu)
            .map_err(model_error(path))?;
        Ok(Self {
            model,
            tokenizer: Arc::new(tokenizer),
            eos,
            // candle's llama precomputes attention for at most this many positions.
            context: context.min(candle_transformers::models::quantized_llama::MAX_SEQ_LEN),
            token_bytes: Arc::new(token_bytes),
        })
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
        let prompt = self.encode(&chat_prompt(&request.messages));
        let max_tokens = request.max_tokens as usize;
        if prompt.len() + max_tokens > self.context {
            return Err(ProviderError::Broken(format!(
                "{} prompt tokens and max_tokens {max_tokens} exceed the model's context of {} \
                 tokens",
                prompt.len(),
                self.context
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
        let mut model = self.model.clone();
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

/// candle multiplies Q4_1 weights with scalar code only, while Q8_0 has an AVX2 kernel: a
/// model with Q4_1 tensors is re-quantized to Q8_0 in memory (from Q4_1's own values, so
/// nothing is lost but memory), which makes generation several times faster. Returns the
/// GGUF to build the model from.
fn vectorizable(
    content: gguf_file::Content,
    file: &mut File,
) -> candle_core::Result<(gguf_file::Content, std::io::Cursor<Vec<u8>>)> {
    use candle_core::quantized::{GgmlDType, QTensor};
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for name in content.tensor_infos.keys() {
        let tensor = content.tensor(file, name, &Device::Cpu)?;
        let tensor = match tensor.dtype() {
            GgmlDType::Q4_1 => {
                QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?
            }
            _ => tensor,
        };
        tensors.push((name.clone(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut buffer = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buffer, &metadata, &tensors)?;
    buffer.set_position(0);
    let content = gguf_file::Content::read(&mut buffer)?;
    Ok((content, buffer))
}

/// SmolLM2's chat template (ChatML), ending with the assistant's turn opened.
fn chat_prompt(messages: &[LlmMessage]) -> String {
    let mut prompt = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        prompt.push_str(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"));
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

/// The bytes each token of a GGUF's byte-level BPE vocabulary stands for; `None` for control
/// tokens, which a reply held to a pattern never contains.
fn token_bytes(content: &gguf_file::Content) -> Result<Vec<Option<Vec<u8>>>, String> {
    let tokens = content
        .metadata
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok())
        .ok_or("its metadata lacks tokenizer.ggml.tokens")?;
    let types = content
        .metadata
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok());
    let alphabet = byte_level_alphabet();
    tokens
        .iter()
        .enumerate()
        .map(|(id, token)| {
            let token = token.to_string().map_err(|e| e.to_string())?;
            let kind = types
                .and_then(|t| t.get(id))
                .and_then(|t| t.to_i32().ok())
                .unwrap_or(1);
            if kind == CONTROL_TOKEN {
                return Ok(None);
            }
            token
                .chars()
                .map(|c| alphabet.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .map(Some)
                .ok_or_else(|| format!("token {id} ({token:?}) is not byte-level BPE"))
        })
        .collect()
}

/// GPT-2's byte-level alphabet, read backwards: printable bytes stand for themselves, and
/// the others, in order, for the characters from U+0100 on.
fn byte_level_alphabet() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut shifted = 0u32;
    (0..=255u8)
        .map(|b| match printable(b) {
            true => (char::from(b), b),
            false => {
                shifted += 1;
                (char::from_u32(255 + shifted).expect("below U+0200"), b)
            }
        })
        .collect()
}

/// A byte-level BPE tokenizer from a GGUF's `tokenizer.ggml.*` metadata, pre-tokenizing as
/// SmolLM2's does (digits one by one, then GPT-2's byte-level split).
fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    let get = |key: &str| {
        content
            .metadata
            .get(key)
            .ok_or_else(|| format!("its metadata lacks {key}"))
    };
    let strings = |key: &str| -> Result<Vec<String>, String> {
        get(key)?
            .to_vec()
            .map_err(|e| format!("{key}: {e}"))?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
            .collect()
    };
    let kind = get("tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| e.to_string())?;
    if kind != "gpt2" {
        return Err(format!(
            "its tokenizer is '{kind}'; Baton builds only byte-level BPE ('gpt2') tokenizers"
        ));
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge '{m}' is not two tokens"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let types: Vec<i32> = get("tokenizer.ggml.token_type")?
        .to_vec()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|v| v.to_i32().unwrap_or(1))
        .collect();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("its BPE vocabulary: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]))));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| **t == CONTROL_TOKEN)
        .map(|(token, _)| AddedToken::from(token.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| format!("its control tokens: {e}"))?;
    Ok(tokenizer)
}

#[async_trait::async_trait]
impl Provider for Local {
    fn count_input(&self, messages: &[LlmMessage]) -> u64 {
        self.encode(&chat_prompt(messages)).len() as u64
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
        let prompt = chat_prompt(std::slice::from_ref(&user));
        assert_eq!(
            prompt,
            format!(
                "<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                 <|im_start|>assistant\n"
            )
        );
        let system = LlmMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        };
        let prompt = chat_prompt(&[system, user]);
        assert!(prompt.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n"));
        assert_eq!(prompt.matches("system").count(), 1);
    }
}

//! A local model's weights, by architecture (`general.architecture` in its GGUF): the llama
//! family (SmolLM2) and Qwen2 (Qwen2.5), both prompted with ChatML.

use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2};

pub(super) enum Weights {
    /// Never run: each generation works on a clone (the weights are shared, the clone gets
    /// its own attention cache).
    Llama(Box<quantized_llama::ModelWeights>),
    /// candle's Qwen2 cannot be cloned: generations take turns, each starting from an empty
    /// attention cache.
    Qwen2(Arc<Mutex<quantized_qwen2::ModelWeights>>),
}

/// What a model family needs besides its weights.
pub(super) struct Family {
    architecture: Architecture,
    /// The system prompt its chat template adds when a conversation has none.
    pub system: &'static str,
    /// Positions it can attend to.
    pub context: usize,
}

#[derive(Clone, Copy)]
enum Architecture {
    Llama,
    Qwen2,
}

impl Family {
    /// The family of the model a GGUF's metadata describes (`general.architecture`).
    pub fn of(content: &gguf_file::Content) -> Result<Self, String> {
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .map_or("llama", String::as_str);
        let context = |key: &str| {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .unwrap_or(2048) as usize
        };
        match architecture {
            "llama" => Ok(Family {
                architecture: Architecture::Llama,
                system: "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                // candle's llama precomputes attention for at most this many positions.
                context: context("llama.context_length").min(quantized_llama::MAX_SEQ_LEN),
            }),
            "qwen2" => Ok(Family {
                architecture: Architecture::Qwen2,
                system: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                context: context("qwen2.context_length"),
            }),
            other => Err(format!(
                "its architecture is '{other}'; the local provider runs 'llama' (SmolLM2) and \
                 'qwen2' (Qwen2.5) models"
            )),
        }
    }
}

impl Weights {
    /// Reads the weights of a model of `family` from its GGUF.
    pub fn load(
        family: &Family,
        content: gguf_file::Content,
        file: &mut File,
    ) -> candle_core::Result<Self> {
        Ok(match family.architecture {
            Architecture::Llama => {
                let (content, mut weights) = vectorizable(content, file)?;
                let model =
                    quantized_llama::ModelWeights::from_gguf(content, &mut weights, &Device::Cpu)?;
                Self::Llama(Box::new(model))
            }
            Architecture::Qwen2 => {
                let model = quantized_qwen2::ModelWeights::from_gguf(content, file, &Device::Cpu)?;
                Self::Qwen2(Arc::new(Mutex::new(model)))
            }
        })
    }

    /// Weights ready for one generation, with an empty attention cache.
    pub fn start(&self) -> Running<'_> {
        match self {
            Self::Llama(model) => Running::Llama(model.clone()),
            Self::Qwen2(model) => {
                // A generation that panicked leaves only its attention cache behind, which
                // is cleared here.
                let mut model = model.lock().unwrap_or_else(PoisonError::into_inner);
                model.clear_kv_cache();
                Running::Qwen2(model)
            }
        }
    }
}

pub(super) enum Running<'a> {
    Llama(Box<quantized_llama::ModelWeights>),
    Qwen2(MutexGuard<'a, quantized_qwen2::ModelWeights>),
}

impl Running<'_> {
    /// The next token's logits after `x`, the tokens from `position` on.
    pub fn forward(&mut self, x: &Tensor, position: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(model) => model.forward(x, position),
            Self::Qwen2(model) => model.forward(x, position),
        }
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

//! The BERT encoder embeddings run through, written for the short inputs a cache looks up
//! (a question is a dozen tokens). It computes what the reference BERT computes, in inference
//! only, and the embedding parity test holds it to the reference model's similarities. Three
//! things make it faster on short inputs than a general implementation:
//!
//! - Dense layers multiply `W · xᵀ` rather than `x · Wᵀ` (see [`Dense`]).
//! - The query, key and value weights are stacked, so attention takes one product, not three.
//! - The activation is a vectorised exact GELU.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder, embedding, layer_norm};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::gelu::gelu;

pub struct Encoder {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

struct Layer {
    /// Query, key and value stacked, in that order, along the output dimension.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    up: Dense,
    down: Dense,
    out_norm: LayerNorm,
}

impl Encoder {
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!(
                "hidden_act {:?} is not supported; Baton runs BERT models with \"gelu\"",
                config.hidden_act
            );
        }
        // Some exports keep the encoder under a `bert.` prefix.
        let vb = match vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            true => vb.pp("bert"),
            false => vb,
        };
        let hidden = config.hidden_size;
        let norm = |vb: VarBuilder| layer_norm(hidden, config.layer_norm_eps, vb.pp("LayerNorm"));
        let embeddings = vb.pp("embeddings");
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config, &norm))
            .collect::<Result<_>>()?;
        Ok(Self {
            words: embedding(config.vocab_size, hidden, embeddings.pp("word_embeddings"))?,
            positions: embedding(
                config.max_position_embeddings,
                hidden,
                embeddings.pp("position_embeddings"),
            )?,
            token_types: embedding(
                config.type_vocab_size,
                hidden,
                embeddings.pp("token_type_embeddings"),
            )?,
            norm: norm(embeddings)?,
            layers,
            heads: config.num_attention_heads,
        })
    }

    /// The last hidden states, `[batch, tokens, hidden]`, of token ids and type ids
    /// `[batch, tokens]` under an attention mask of 1 for real tokens and 0 for padding.
    pub fn forward(&self, ids: &Tensor, token_types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let tokens = ids.dim(1)?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let xs = (self.words.forward(ids)? + self.token_types.forward(token_types)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        let mut xs = self.norm.forward(&xs)?;
        // Added to the attention scores: 0 for a real token, the lowest f32 for padding.
        let mask = mask
            .to_dtype(DType::F32)?
            .affine(f64::from(f32::MAX), -f64::from(f32::MAX))?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, self.heads)?;
        }
        Ok(xs)
    }
}

impl Layer {
    fn load(
        vb: VarBuilder,
        config: &Config,
        norm: &dyn Fn(VarBuilder) -> Result<LayerNorm>,
    ) -> Result<Self> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let attention = vb.pp("attention");
        let projections = ["query", "key", "value"]
            .map(|name| Dense::load(hidden, hidden, attention.pp("self").pp(name)))
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            qkv: Dense::stack(&projections)?,
            attention_out: Dense::load(hidden, hidden, attention.pp("output.dense"))?,
            attention_norm: norm(attention.pp("output"))?,
            up: Dense::load(hidden, inner, vb.pp("intermediate.dense"))?,
            down: Dense::load(inner, hidden, vb.pp("output.dense"))?,
            out_norm: norm(vb.pp("output"))?,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, hidden) = xs.dims3()?;
        let head = hidden / heads;
        // [batch, tokens, 3 · hidden] → query, key and value as [batch, heads, tokens, head].
        let qkv = self
            .qkv
            .forward(xs)?
            .reshape((batch, tokens, 3, heads, head))?
            .permute((2, 0, 3, 1, 4))?;
        let [query, key, value] = [0, 1, 2].map(|i| qkv.get(i).and_then(|t| t.contiguous()));
        let scores = (query?.matmul(&key?.t()?)? / (head as f64).sqrt())?.broadcast_add(mask)?;
        let context = candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(&value?)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, tokens, hidden))?;
        let xs = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + xs)?)?;
        let inner = gelu(&self.up.forward(&xs)?)?;
        self.out_norm.forward(&(self.down.forward(&inner)? + xs)?)
    }
}

/// A dense layer, `x · Wᵀ + b`, with `W` stored `[out, in]` as the weights file has it.
///
/// It computes the product as `(W · xᵀ)ᵀ`, which gives the same values (the same sums in the
/// same order). Written `x · Wᵀ`, the matrix kernel copies all of `W` into its packed layout
/// on every call. Written `W · xᵀ`, it packs only the few rows of `x` and streams `W` row by
/// row from memory. On a dozen tokens, with weights larger than the cache, that is about a
/// third faster.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((outputs, inputs), "weight")?,
            bias: vb.get(outputs, "bias")?,
        })
    }

    /// One layer computing the given layers' outputs, concatenated in order.
    fn stack(layers: &[Dense]) -> Result<Self> {
        let weights: Vec<_> = layers.iter().map(|l| l.weight.clone()).collect();
        let biases: Vec<_> = layers.iter().map(|l| l.bias.clone()).collect();
        Ok(Self {
            weight: Tensor::cat(&weights, 0)?,
            bias: Tensor::cat(&biases, 0)?,
        })
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, tokens, inputs) = xs.dims3()?;
        self.weight
            .matmul(&xs.reshape((batch * tokens, inputs))?.t()?)?
            .t()?
            .broadcast_add(&self.bias)?
            .reshape((batch, tokens, ()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_transformers::models::bert::BertModel;

    use super::*;
    use baton_policy::llm::{DEFAULT_EMBEDDING_MODEL, models_dir};

    #[test]
    fn hidden_states_match_the_reference_bert_on_a_padded_batch() {
        let dir = models_dir().join(DEFAULT_EMBEDDING_MODEL);
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let weights = [dir.join("model.safetensors")];
        // SAFETY: the test's weights file is not changed while it runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, &Device::Cpu) }
            .unwrap();
        let ours = Encoder::load(vb.clone(), &config).unwrap();
        let reference = BertModel::load(vb, &config).unwrap();
        // Three inputs of 9, 5 and 3 tokens, padded to 9: the mask decides what attends where.
        let ids = Tensor::new(
            &[
                [101u32, 2054, 2003, 1996, 3007, 1997, 2605, 1029, 102],
                [101, 3007, 1997, 2605, 102, 0, 0, 0, 0],
                [101, 7592, 102, 0, 0, 0, 0, 0, 0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let mask = ids.ne(0u32).unwrap().to_dtype(DType::U32).unwrap();
        let types = ids.zeros_like().unwrap();
        let found = ours.forward(&ids, &types, &mask).unwrap();
        let expected = reference.forward(&ids, &types, Some(&mask)).unwrap();
        assert_eq!(found.dims(), expected.dims());
        let worst = (found - expected)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap();
        assert!(worst < 1e-4, "largest difference {worst}");
    }

    #[test]
    fn a_model_with_another_activation_is_refused() {
        let config = Config {
            hidden_act: HiddenAct::Relu,
            ..Config::default()
        };
        let vb = VarBuilder::zeros(DType::F32, &candle_core::Device::Cpu);
        let error = Encoder::load(vb, &config).err().unwrap().to_string();
        assert!(
            error.contains("hidden_act Relu is not supported"),
            "{error}"
        );
    }
}

//! A GGUF's own tokenizer: the byte-level BPE its `tokenizer.ggml.*` metadata describes (its
//! vocabulary, merges and control tokens), pre-tokenized as the model's family was trained
//! (`tokenizer.ggml.pre`), so the model file is all the local provider needs.

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// A GGUF token type: control tokens (`<|im_start|>`, ...) are special.
const CONTROL_TOKEN: i32 = 3;
/// A GGUF token type: tokens added to the vocabulary after training (Qwen2's `<tool_call>`,
/// ...), matched whole but not special.
const USER_DEFINED_TOKEN: i32 = 4;

/// How Qwen2's tokenizer splits text before BPE: letters with at most one leading
/// non-letter, each digit alone, runs of punctuation, newlines, spaces.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The bytes each token of a GGUF's byte-level BPE vocabulary stands for; `None` for control
/// tokens, which a reply held to a pattern never contains.
pub(super) fn token_bytes(content: &gguf_file::Content) -> Result<Vec<Option<Vec<u8>>>, String> {
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
            match kind {
                CONTROL_TOKEN => return Ok(None),
                // Added tokens are stored as their text, not in BPE's alphabet.
                USER_DEFINED_TOKEN => return Ok(Some(token.as_bytes().to_vec())),
                _ => {}
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
/// its family does: Qwen2's split (`tokenizer.ggml.pre = "qwen2"`), else SmolLM2's (digits one
/// by one, then GPT-2's byte-level split).
pub(super) fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
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
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        Some(pre) => pre.to_string().map_err(|e| e.to_string())?.as_str(),
        None => "",
    };
    // Qwen2 splits with its own regex, after which the byte-level step only maps bytes to
    // BPE's alphabet; SmolLM2 splits digits apart, then lets the byte-level step split as
    // GPT-2 does.
    let (split, byte_level_splits) = match pre {
        "qwen2" => {
            tokenizer
                .with_normalizer(Some(NFC))
                .map_err(|e| format!("Qwen2's normalizer: {e}"))?;
            let split = Split::new(
                SplitPattern::Regex(QWEN2_SPLIT.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format!("Qwen2's pre-tokenizer: {e}"))?;
            (PreTokenizerWrapper::Split(split), false)
        }
        _ => (PreTokenizerWrapper::Digits(Digits::new(true)), true),
    };
    tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        split,
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, byte_level_splits)),
    ]))));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let added = |kind: i32| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == kind)
            .map(|(token, _)| AddedToken::from(token.clone(), kind == CONTROL_TOKEN))
            .collect()
    };
    tokenizer
        .add_special_tokens(added(CONTROL_TOKEN))
        .map_err(|e| format!("its control tokens: {e}"))?;
    tokenizer
        .add_tokens(added(USER_DEFINED_TOKEN))
        .map_err(|e| format!("its added tokens: {e}"))?;
    Ok(tokenizer)
}

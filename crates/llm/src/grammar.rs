//! Replies held to a grammar (`llm.complete-constrained`), with llguidance.
//!
//! A grammar is Lark as llguidance reads it, with `%json { ... }` for a JSON Schema. The local
//! model is held to it while it decodes: before each token, every token the grammar cannot
//! take next is masked out, so the reply follows the grammar whatever the model would have
//! preferred (unless `max_tokens` cuts it short), and ends as soon as the grammar is complete.
//! Other providers cannot be steered that way: they are sent the request as it is, and their
//! replies come back as they are, for the caller to check as it would any reply.

use std::sync::{Arc, LazyLock};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie, TokenId};
use llguidance::{Matcher, ParserFactory};

/// Grammars are checked over a vocabulary of single bytes.
static BYTES: LazyLock<Result<ParserFactory, String>> =
    LazyLock::new(|| factory(&ApproximateTokEnv::single_byte_env()));

fn factory(env: &TokEnv) -> Result<ParserFactory, String> {
    let mut factory = ParserFactory::new_simple(env)
        .map_err(|e| format!("cannot prepare grammar-constrained decoding: {e}"))?;
    // Its diagnostics are returned as errors; nothing goes to standard error.
    factory.set_stderr_log_level(0);
    Ok(factory)
}

fn matcher(factory: &ParserFactory, grammar: &str) -> Result<Matcher, String> {
    let parser = factory
        .create_parser(TopLevelGrammar::from_lark(grammar.to_string()))
        .map_err(|e| {
            // The first line says what and where; the rest quotes the grammar around it.
            let e = e.to_string();
            let what = e.lines().next().unwrap_or_default();
            format!("the grammar is not one Baton can use: {what}")
        })?;
    Ok(Matcher::new(Ok(parser)))
}

/// Whether `grammar` is a grammar: `Err` says what is wrong with it.
pub fn check(grammar: &str) -> Result<(), String> {
    matcher(BYTES.as_ref().map_err(Clone::clone)?, grammar).map(|_| ())
}

/// A vocabulary's grammar machinery: made once per model, shared by its generations.
pub struct Vocabulary {
    factory: ParserFactory,
}

impl Vocabulary {
    /// The vocabulary whose token `i` is the bytes `tokens[i]` (control tokens marked as
    /// llguidance expects), ending replies with `eos`.
    pub fn new(tokens: &[Vec<u8>], eos: TokenId) -> Result<Self, String> {
        let info = TokRxInfo::new(tokens.len() as u32, eos);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, tokens)));
        Ok(Self {
            factory: factory(&env)?,
        })
    }

    /// A decoder held to `grammar`.
    pub fn constrain(&self, grammar: &str) -> Result<Constrained, String> {
        Ok(Constrained {
            matcher: matcher(&self.factory, grammar)?,
        })
    }

    /// How llguidance marks a control token's bytes.
    pub const CONTROL_MARKER: u8 = TokTrie::SPECIAL_TOKEN_MARKER;
}

/// One generation held to a grammar.
pub struct Constrained {
    matcher: Matcher,
}

impl Constrained {
    /// Whether the grammar is complete and can take nothing more.
    pub fn done(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Sets to minus infinity the logit of every token the grammar cannot take next (the
    /// end-of-reply token stays only where the grammar may end).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        let allowed = self
            .matcher
            .compute_mask()
            .map_err(|e| format!("the grammar: {e}"))?;
        for (token, logit) in logits.iter_mut().enumerate() {
            if !allowed.is_allowed(token as TokenId) {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Moves the grammar past the token chosen.
    pub fn advance(&mut self, token: TokenId) -> Result<(), String> {
        self.matcher
            .consume_token(token)
            .map_err(|e| format!("the grammar: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL_OR_FINISH: &str = r#"
start: "CALL calc " %json { "type": "object", "properties": {"expression": {"type": "string"}},
                            "required": ["expression"], "additionalProperties": false }
     | "FINISH " /[^\n]+/
"#;

    #[test]
    fn a_grammar_that_does_not_parse_is_named_as_such() {
        assert!(check(CALL_OR_FINISH).is_ok());
        let error = check("start: \"CALL\" undefined_rule").unwrap_err();
        assert!(
            error.starts_with("the grammar is not one Baton can use"),
            "{error}"
        );
    }

    /// Whether a decoder over single bytes may produce `text` and then end.
    fn accepts(grammar: &str, text: &str) -> bool {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(vec![Vocabulary::CONTROL_MARKER, b'e', b'o', b's']);
        let mut constrained = Vocabulary::new(&tokens, 256)
            .unwrap()
            .constrain(grammar)
            .unwrap();
        for byte in text.bytes() {
            let mut logits = vec![0.0f32; tokens.len()];
            constrained.mask(&mut logits).unwrap();
            if logits[byte as usize].is_infinite() {
                return false;
            }
            constrained.advance(byte as TokenId).unwrap();
        }
        let mut logits = vec![0.0f32; tokens.len()];
        constrained.done() || {
            constrained.mask(&mut logits).unwrap();
            logits[256].is_finite()
        }
    }

    #[test]
    fn only_whole_replies_of_the_grammar_can_be_decoded() {
        assert!(accepts(CALL_OR_FINISH, r#"CALL calc {"expression":"1+2"}"#));
        assert!(accepts(CALL_OR_FINISH, "FINISH 3"));
        // A prefix of a valid reply, an unknown tool, an input the schema refuses.
        assert!(!accepts(CALL_OR_FINISH, r#"CALL calc {"expression":"1+2""#));
        assert!(!accepts(CALL_OR_FINISH, r#"CALL fetch {"url":"x"}"#));
        assert!(!accepts(CALL_OR_FINISH, r#"CALL calc {"expr":"1"}"#));
        assert!(!accepts(CALL_OR_FINISH, "The answer is 3."));
    }

    /// Decoding over a byte vocabulary: whatever the logits prefer, the mask leaves only
    /// what the grammar can take, and the reply ends where the grammar does.
    #[test]
    fn the_mask_steers_decoding_into_the_grammar() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(vec![Vocabulary::CONTROL_MARKER, b'e', b'o', b's']);
        let eos = 256;
        let vocabulary = Vocabulary::new(&tokens, eos).unwrap();
        let mut constrained = vocabulary
            .constrain(r#"start: "FINISH " /[0-9]+/"#)
            .unwrap();
        let mut reply = Vec::new();
        for _ in 0..32 {
            // A model that would rather say "x" and never stop, but prefers '7' to other digits.
            let mut logits = vec![0.0f32; tokens.len()];
            logits[b'x' as usize] = 10.0;
            logits[b'7' as usize] = 5.0;
            logits[eos as usize] = if reply.len() > 9 { 20.0 } else { -5.0 };
            constrained.mask(&mut logits).unwrap();
            let best = (0..logits.len())
                .max_by(|a, b| logits[*a].total_cmp(&logits[*b]))
                .unwrap() as TokenId;
            if best == eos {
                break;
            }
            constrained.advance(best).unwrap();
            reply.push(best as u8);
        }
        assert_eq!(String::from_utf8(reply).unwrap(), "FINISH 777");
    }
}

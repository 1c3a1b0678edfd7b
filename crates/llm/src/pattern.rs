//! Replies held to a pattern (`llm.complete-constrained`): a regular expression, in the
//! syntax of the `regex` crate, that the whole reply must match.
//!
//! The local model is held to it while it decodes: the pattern is compiled to a DFA over bytes,
//! and before each token every token whose bytes would leave no way to a match is masked out,
//! so the reply always matches (unless `max_tokens` cuts it short) and ends as soon as the
//! pattern can take nothing more. Other providers cannot be steered that way: they are sent
//! the request as it is, and their replies come back as they are, for the caller to check as
//! it would any reply.
//!
//! A DFA reports a match one byte late, so "not dead" does not mean "can still match": a state
//! that only reports the match just passed leads nowhere. Each state's liveness (some
//! continuation ends in a whole match) is therefore computed once, over the states reachable
//! from the start. The DFA reports every match (`MatchKind::All`), so no alternative is cut off
//! because another matched a prefix.

use std::collections::{HashMap, VecDeque};

use regex_automata::dfa::dense::{self, DFA};
use regex_automata::dfa::{Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::{Anchored, Input, MatchKind};

/// The most memory a pattern's DFA may take, to build and to keep: this also bounds the time
/// a pattern a component chose can cost the host to compile (at 16 MiB, a pattern the
/// `patterns` fuzz target found took seconds). The react planner's protocol over the shipped
/// tools needs 46 KiB.
const DFA_BYTES: usize = 4 << 20;

/// Whether `pattern` is a regular expression: parsing only, cheap enough to answer a component
/// at once (compiling it is the local model's work, off the async threads).
pub fn check(pattern: &str) -> Result<(), String> {
    regex_automata::util::syntax::parse(pattern)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "the pattern is not a regular expression Baton can use: {}",
                innermost(&e)
            )
        })
}

/// A compiled pattern.
pub struct Pattern {
    dfa: DFA<Vec<u32>>,
    start: StateID,
    /// Whether a whole match can still be reached from each reachable state.
    live: HashMap<StateID, bool>,
}

impl Pattern {
    /// `pattern` compiled, or a one-line reason it cannot be.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let refused = |e: &dyn std::error::Error| {
            format!(
                "the pattern is not a regular expression Baton can use: {}",
                innermost(e)
            )
        };
        let dfa = dense::Builder::new()
            // A bounded repetition such as `[0-9]{1,644444}` is small to parse but huge to
            // compile: without this limit it took gigabytes (found by the `patterns` fuzz
            // target).
            .thompson(thompson::Config::new().nfa_size_limit(Some(DFA_BYTES)))
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_BYTES))
                    .determinize_size_limit(Some(DFA_BYTES)),
            )
            .build(pattern)
            .map_err(|e| refused(&e))?;
        let start = dfa
            .start_state_forward(&Input::new("").anchored(Anchored::Yes))
            .map_err(|e| refused(&e))?;
        let live = liveness(&dfa, start);
        Ok(Self { dfa, start, live })
    }

    /// A decoder held to this pattern, at the start of the reply.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            pattern: self,
            state: self.start,
        }
    }

    /// The state after `bytes` from `from`, if a whole match can still be reached there.
    fn walk(&self, from: StateID, bytes: &[u8]) -> Option<StateID> {
        let mut state = from;
        for &byte in bytes {
            state = self.dfa.next_state(state, byte);
            if !self.live.get(&state).copied().unwrap_or(false) {
                return None;
            }
        }
        Some(state)
    }

    /// Whether the reply that led to `state` is a whole match.
    fn matches(&self, state: StateID) -> bool {
        self.dfa.is_match_state(self.dfa.next_eoi_state(state))
    }
}

/// The most specific line of `error` and its sources: a regex syntax error's own `error: …`
/// line rather than the picture of the pattern around it.
fn innermost(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()));
    line.unwrap_or_default().trim().to_string()
}

/// For every state reachable from `start`: whether a whole match can be reached from it (it
/// matches at the end of input, or a byte leads to a state that can).
fn liveness(dfa: &DFA<Vec<u32>>, start: StateID) -> HashMap<StateID, bool> {
    let mut seen = vec![start];
    let mut index = HashMap::from([(start, 0usize)]);
    let mut from: Vec<Vec<usize>> = vec![Vec::new()];
    let mut queue = VecDeque::from([start]);
    while let Some(state) = queue.pop_front() {
        for byte in 0..=255u8 {
            let next = dfa.next_state(state, byte);
            if dfa.is_dead_state(next) || dfa.is_quit_state(next) {
                continue;
            }
            let at = *index.entry(next).or_insert_with(|| {
                seen.push(next);
                from.push(Vec::new());
                queue.push_back(next);
                seen.len() - 1
            });
            from[at].push(index[&state]);
        }
    }
    let mut live = vec![false; seen.len()];
    let mut work: Vec<usize> = (0..seen.len())
        .filter(|&i| dfa.is_match_state(dfa.next_eoi_state(seen[i])))
        .collect();
    for &i in &work {
        live[i] = true;
    }
    while let Some(i) = work.pop() {
        for &j in &from[i] {
            if !live[j] {
                live[j] = true;
                work.push(j);
            }
        }
    }
    seen.into_iter().zip(live).collect()
}

/// One generation held to a pattern.
pub struct Decoder<'p> {
    pattern: &'p Pattern,
    state: StateID,
}

impl Decoder<'_> {
    /// Whether the reply so far matches the whole pattern, so it may end here.
    pub fn may_end(&self) -> bool {
        self.pattern.matches(self.state)
    }

    /// Whether the reply matches and nothing more can follow.
    pub fn done(&self) -> bool {
        self.may_end() && (0..=255u8).all(|b| self.pattern.walk(self.state, &[b]).is_none())
    }

    /// Sets to minus infinity the logit of every token that cannot come next: token `i` is
    /// `tokens[i]`'s bytes (`None` for a control token, never allowed), and `end` the tokens
    /// that end a reply, allowed only where the pattern may end.
    pub fn mask(&self, logits: &mut [f32], tokens: &[Option<Vec<u8>>], end: &[u32]) {
        let may_end = self.may_end();
        for (token, logit) in logits.iter_mut().enumerate() {
            let allowed = if end.contains(&(token as u32)) {
                may_end
            } else {
                match tokens.get(token) {
                    Some(Some(bytes)) if !bytes.is_empty() => {
                        self.pattern.walk(self.state, bytes).is_some()
                    }
                    _ => false,
                }
            };
            if !allowed {
                *logit = f32::NEG_INFINITY;
            }
        }
    }

    /// Moves past the bytes of the token chosen; `false` if they lead to no match (the
    /// decoder then stays where it was).
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        match self.pattern.walk(self.state, bytes) {
            Some(next) => {
                self.state = next;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL_OR_FINISH: &str = r#"CALL calc \{"expression": "[^"\\\n]*"\}|CALL text-stats \{"text": "[^"\\\n]*"\}|FINISH [^\n]+"#;

    #[test]
    fn a_pattern_that_does_not_compile_is_named_as_such() {
        assert!(Pattern::new(CALL_OR_FINISH).is_ok());
        let error = Pattern::new("CALL (calc").err().unwrap();
        assert!(
            error.starts_with("the pattern is not a regular expression Baton can use"),
            "{error}"
        );
        assert!(error.ends_with(": unclosed group"), "{error}");
    }

    #[test]
    fn a_pattern_is_checked_cheaply_and_one_too_large_to_compile_is_refused() {
        assert!(check(CALL_OR_FINISH).is_ok());
        assert!(
            check("CALL (calc")
                .unwrap_err()
                .ends_with(": unclosed group")
        );
        // Each parses, but one's DFA needs a state per combination of the last 40 letters,
        // and the other's NFA a state per repetition (the fuzz target's finding).
        // A third took seconds to build under the limit then (16 MiB, now 4).
        let slow = "CALL calF*\"\\}|FINI......\0\0\0...+.............-........+.........\
                    ...................l.......\u{3f7}S [!\\n]\0\0@\0\0?\0\0\0\0\0\0\0";
        for blowup in ["(a|b)*a(a|b){40}", r"ANSWER: [0-9]{1,644444}\.", slow] {
            assert!(check(blowup).is_ok());
            let error = Pattern::new(blowup).err().unwrap();
            assert!(
                error.starts_with("the pattern is not a regular expression Baton can use"),
                "{error}"
            );
        }
    }

    /// Whether a decoder may produce `text` and then end.
    fn accepts(pattern: &str, text: &str) -> bool {
        let pattern = Pattern::new(pattern).unwrap();
        let mut decoder = pattern.decoder();
        decoder.advance(text.as_bytes()) && decoder.may_end()
    }

    #[test]
    fn only_whole_replies_of_the_pattern_can_be_decoded() {
        assert!(accepts(
            CALL_OR_FINISH,
            r#"CALL calc {"expression": "1+2"}"#
        ));
        assert!(accepts(
            CALL_OR_FINISH,
            r#"CALL text-stats {"text": "a b"}"#
        ));
        assert!(accepts(CALL_OR_FINISH, "FINISH 3"));
        // A prefix of a valid reply, an unknown tool, an input of another shape, prose.
        assert!(!accepts(
            CALL_OR_FINISH,
            r#"CALL calc {"expression": "1+2""#
        ));
        assert!(!accepts(CALL_OR_FINISH, r#"CALL fetch {"url": "x"}"#));
        assert!(!accepts(CALL_OR_FINISH, r#"CALL calc {"expr": "1"}"#));
        assert!(!accepts(CALL_OR_FINISH, "The answer is 3."));
        assert!(!accepts(CALL_OR_FINISH, "FINISH 3\nand more"));
    }

    /// Decoding over a vocabulary of single bytes and multi-byte tokens: whatever the logits
    /// prefer, the mask leaves only what the pattern can take, and the reply ends where the
    /// pattern does.
    #[test]
    fn the_mask_steers_decoding_into_the_pattern() {
        let mut tokens: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        tokens.push(Some(b"FIN".to_vec()));
        tokens.push(None);
        let eos = 257u32;
        let pattern = Pattern::new("FINISH [0-9]{3}").unwrap();
        let mut decoder = pattern.decoder();
        let mut reply = Vec::new();
        while !decoder.done() {
            // A model that would rather say "x" or stop, and prefers '7' to other digits and
            // the token "FIN" to its letters.
            let mut logits = vec![0.0f32; tokens.len()];
            logits[b'x' as usize] = 10.0;
            logits[eos as usize] = 20.0;
            logits[b'7' as usize] = 5.0;
            logits[256] = 1.0;
            decoder.mask(&mut logits, &tokens, &[eos]);
            let best = (0..logits.len())
                .max_by(|a, b| logits[*a].total_cmp(&logits[*b]))
                .unwrap();
            assert!(logits[best].is_finite(), "nothing allowed after {reply:?}");
            let bytes = tokens[best].clone().unwrap();
            assert!(decoder.advance(&bytes));
            reply.extend(bytes);
        }
        assert_eq!(String::from_utf8(reply).unwrap(), "FINISH 777");
    }
}

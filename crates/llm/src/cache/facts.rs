//! The second check on a semantic candidate: what two questions must share to have the same
//! answer beyond similar wording.

use std::collections::BTreeSet;

/// Whether an answer to `a` may be served for `b` as far as a cheap check can tell: the
/// second check on a semantic candidate (see `Facts`).
pub fn same_facts(a: &str, b: &str) -> bool {
    Facts::of(a).agrees_with(&Facts::of(b))
}

/// What two questions must share to have the same answer, beyond similar wording: their
/// numbers (digits and number words), their names (capitalized words past the first), whether
/// they are negated, and the order of the content words they have in common ("from Paris to
/// London" is not "from London to Paris").
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Facts {
    numbers: BTreeSet<String>,
    names: BTreeSet<String>,
    negated: bool,
    /// Content words (lowercase, not function words), in order.
    words: Vec<String>,
}

const NUMBER_WORDS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "hundred", "thousand",
];
const NEGATIONS: [&str; 9] = [
    "not", "no", "never", "none", "nor", "without", "neither", "cannot", "nothing",
];
/// Function words: their order says little.
const FUNCTION_WORDS: [&str; 58] = [
    "a", "an", "the", "is", "are", "was", "were", "be", "do", "does", "did", "i", "me", "my",
    "you", "your", "it", "its", "to", "of", "in", "on", "for", "with", "at", "by", "from", "and",
    "or", "what", "what's", "which", "who", "how", "why", "when", "where", "can", "could", "would",
    "should", "will", "say", "tell", "give", "please", "this", "that", "these", "those", "some",
    "any", "there", "about", "than", "as", "so", "if",
];

impl Facts {
    pub(super) fn of(text: &str) -> Self {
        let mut numbers = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut words = Vec::new();
        let mut negated = text.to_lowercase().contains("n't");
        let raw = text.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '\''));
        for (index, raw) in raw.filter(|w| !w.is_empty()).enumerate() {
            let raw = raw.trim_matches(|c| c == '.' || c == '\'');
            // A possessive names the same thing: "France's" is "France".
            let raw = raw.strip_suffix("'s").unwrap_or(raw);
            let word = raw.to_lowercase();
            if word.is_empty() {
                continue;
            }
            if word.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&word.as_str()) {
                numbers.insert(word.clone());
            } else if NEGATIONS.contains(&word.as_str()) {
                negated = true;
            }
            if index > 0 && raw.len() > 1 && raw.starts_with(|c: char| c.is_uppercase()) {
                names.insert(word.clone());
            }
            if !FUNCTION_WORDS.contains(&word.as_str()) && !words.contains(&word) {
                words.push(word);
            }
        }
        Facts {
            numbers,
            names,
            negated,
            words,
        }
    }

    pub(super) fn agrees_with(&self, other: &Facts) -> bool {
        let common = |words: &[String], with: &[String]| -> Vec<String> {
            words.iter().filter(|w| with.contains(w)).cloned().collect()
        };
        self.numbers == other.numbers
            && self.names == other.names
            && self.negated == other.negated
            && !self.negates_a_word_of(other)
            && !other.negates_a_word_of(self)
            && common(&self.words, &other.words) == common(&other.words, &self.words)
    }

    /// Whether one of these words is a word of `other` with a negating prefix ("illegal"
    /// for "legal", "unhealthy" for "healthy").
    fn negates_a_word_of(&self, other: &Facts) -> bool {
        const PREFIXES: [&str; 7] = ["un", "in", "im", "il", "ir", "dis", "non"];
        self.words.iter().any(|word| {
            PREFIXES.iter().any(|prefix| {
                word.strip_prefix(prefix)
                    .is_some_and(|stem| stem.len() > 2 && other.words.iter().any(|w| w == stem))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_differ_in_their_facts() {
        assert!(same_facts("Is Paris big?", "is Paris large"));
        assert!(same_facts(
            "What is the capital of France?",
            "what's the capital city of France?"
        ));
        assert!(!same_facts("Buy 3 apples", "Buy 4 apples"));
        assert!(!same_facts("Is it safe?", "Isn't it safe?"));
        assert!(!same_facts("with sugar", "without sugar"));
        assert!(!same_facts("two days", "three days"));
        assert!(same_facts("Version 2.5.", "version 2.5"));
        assert!(!same_facts(
            "The capital of France",
            "The capital of Germany"
        ));
        assert!(!same_facts(
            "Flights from Paris to Rome",
            "Flights from Rome to Paris"
        ));
        assert!(!same_facts(
            "Why is tea better than coffee?",
            "Why is coffee better than tea?"
        ));
        assert!(!same_facts("Is it legal?", "Is it illegal?"));
        assert!(same_facts("Is it legal?", "Is this legal?"));
    }
}

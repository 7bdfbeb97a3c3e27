//! Decoding constrained to an environment's action grammar.
//!
//! The reply is forced to the VL-DAC output format `{"action": "<label>"}`: the prompt ends with
//! the forced prefix `{"action": "`, the model generates one of the label token sequences
//! followed by the closing quote, and the policy appends `}`. At each generated position the
//! distribution is the model's softmax restricted to the tokens that continue some label (the
//! same restriction is applied when the update re-scores the tokens, so old and new log-probs are
//! of the same distribution). A small model can then only ever emit valid actions, and RL shapes
//! which one, which is how the embedded default learns on a CPU in minutes.
//!
//! With a thought span ([`ActionGrammar::with_thought`]) the reply is
//! `{"thoughts": "<n free tokens>", "action": "<label>"}` instead: the model first samples `n`
//! tokens from a small alphabet (its "thoughts"), the separator `", "action": "` is forced, then
//! the label follows as above. The thought tokens are part of the reply's log-probability, which
//! is what RL4VLM's thought weight λ scales ([`ActionGrammar::action_start`] marks where the
//! action span begins).

use std::collections::BTreeSet;

/// The forced start of the reply.
pub const REPLY_PREFIX: &str = "{\"action\": \"";
/// The forced start of the reply when it has a thought span.
pub const THOUGHT_PREFIX: &str = "{\"thoughts\": \"";
/// Forced between the thoughts and the label.
pub const THOUGHT_SEPARATOR: &str = "\", \"action\": \"";
/// The characters a thought token may be (each must be one token).
pub const THOUGHT_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz ";
/// The forced end of the reply after the generated `label"`.
pub const REPLY_SUFFIX: &str = "}";

/// Token sequences of `label"` for every label of a discrete action space, optionally after a
/// span of free thought tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionGrammar {
    sequences: Vec<Vec<u32>>,
    thought: Option<Thought>,
}

/// `len` free tokens from `alphabet`, then the forced `separator`.
#[derive(Debug, Clone, PartialEq)]
struct Thought {
    len: usize,
    alphabet: Vec<u32>,
    separator: Vec<u32>,
}

impl ActionGrammar {
    /// `encode` tokenizes text; every label is encoded with the closing quote appended, so a label
    /// that is a prefix of another (`1` and `10`) still ends unambiguously.
    pub fn new<E>(labels: &[String], mut encode: impl FnMut(&str) -> Result<Vec<u32>, E>) -> Result<Self, E> {
        let mut sequences = Vec::with_capacity(labels.len());
        for l in labels {
            sequences.push(encode(&format!("{l}\""))?);
        }
        Ok(ActionGrammar { sequences, thought: None })
    }

    /// Puts `len` free thought tokens (each one character of [`THOUGHT_ALPHABET`]) and the forced
    /// [`THOUGHT_SEPARATOR`] before the label; the prompt must then end with [`THOUGHT_PREFIX`]
    /// ([`Self::reply_prefix`]). `len = 0` keeps the plain grammar. Fails (with a message) if the
    /// tokenizer splits an alphabet character into several tokens.
    pub fn with_thought<E: std::fmt::Display>(
        mut self,
        len: usize,
        mut encode: impl FnMut(&str) -> Result<Vec<u32>, E>,
    ) -> Result<Self, String> {
        if len == 0 {
            return Ok(self);
        }
        let mut alphabet = BTreeSet::new();
        for c in THOUGHT_ALPHABET.chars() {
            match encode(&c.to_string()).map_err(|e| e.to_string())?.as_slice() {
                [t] => alphabet.insert(*t),
                other => return Err(format!("thought character {c:?} is {} tokens, not one", other.len())),
            };
        }
        let separator = encode(THOUGHT_SEPARATOR).map_err(|e| e.to_string())?;
        self.thought = Some(Thought { len, alphabet: alphabet.into_iter().collect(), separator });
        Ok(self)
    }

    /// What the prompt ends with: [`REPLY_PREFIX`], or [`THOUGHT_PREFIX`] with a thought span.
    pub fn reply_prefix(&self) -> &'static str {
        if self.thought.is_some() { THOUGHT_PREFIX } else { REPLY_PREFIX }
    }

    /// Index of the first generated token after the thoughts (0 without a thought span): RL4VLM
    /// weighs the tokens before it by λ.
    pub fn action_start(&self) -> usize {
        self.thought.as_ref().map_or(0, |t| t.len)
    }

    /// Tokens of `tokens` after the thought span and separator; `None` while still inside them
    /// (or if they do not match the grammar).
    fn label_part<'t>(&self, tokens: &'t [u32]) -> Option<&'t [u32]> {
        match &self.thought {
            None => Some(tokens),
            Some(t) => {
                let head = t.len + t.separator.len();
                (tokens.len() >= head && tokens[t.len..head] == t.separator[..]).then(|| &tokens[head..])
            }
        }
    }

    /// Tokens allowed after `prefix` (empty when `prefix` completes a sequence or leaves them all).
    pub fn allowed(&self, prefix: &[u32]) -> Vec<u32> {
        if let Some(t) = &self.thought {
            let n = prefix.len();
            if n < t.len {
                return t.alphabet.clone();
            }
            if n < t.len + t.separator.len() {
                let k = n - t.len;
                return if prefix[t.len..] == t.separator[..k] { vec![t.separator[k]] } else { vec![] };
            }
        }
        let Some(prefix) = self.label_part(prefix) else { return vec![] };
        let set: BTreeSet<u32> = self
            .sequences
            .iter()
            .filter(|s| s.len() > prefix.len() && s.starts_with(prefix))
            .map(|s| s[prefix.len()])
            .collect();
        set.into_iter().collect()
    }

    /// Whether `tokens` is one complete label sequence.
    pub fn is_complete(&self, tokens: &[u32]) -> bool {
        self.label_part(tokens).is_some_and(|l| self.sequences.iter().any(|s| s == l))
    }

    /// The longest reply (the most generation steps a reply needs).
    pub fn max_len(&self) -> usize {
        let head = self.thought.as_ref().map_or(0, |t| t.len + t.separator.len());
        head + self.sequences.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn sequences(&self) -> &[Vec<u32>] {
        &self.sequences
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Result<Vec<u32>, String> {
        Ok(s.bytes().map(u32::from).collect())
    }

    #[test]
    fn prefixes_of_other_labels_end_with_the_quote() {
        let labels: Vec<String> = ["1", "10", "+"].iter().map(|s| s.to_string()).collect();
        let g = ActionGrammar::new(&labels, bytes).unwrap();
        assert_eq!(g.allowed(&[]), vec![b'+' as u32, b'1' as u32]);
        assert_eq!(g.allowed(&[b'1' as u32]), vec![b'"' as u32, b'0' as u32]);
        assert!(g.is_complete(&[b'1' as u32, b'"' as u32]));
        assert!(!g.is_complete(&[b'1' as u32]));
        assert!(g.allowed(&[b'+' as u32, b'"' as u32]).is_empty());
        assert_eq!(g.max_len(), 3);
        assert_eq!((g.reply_prefix(), g.action_start()), (REPLY_PREFIX, 0));
    }

    #[test]
    fn thoughts_are_free_then_the_separator_is_forced_then_a_label() {
        let labels: Vec<String> = ["ab", "c"].iter().map(|s| s.to_string()).collect();
        let g = ActionGrammar::new(&labels, bytes).unwrap().with_thought(2, bytes).unwrap();
        let letters: Vec<u32> = bytes(THOUGHT_ALPHABET).unwrap();
        let mut sorted = letters.clone();
        sorted.sort();
        assert_eq!(g.allowed(&[]), sorted);
        assert_eq!(g.allowed(&[b'x' as u32]), sorted);
        let sep = bytes(THOUGHT_SEPARATOR).unwrap();
        let mut reply = vec![b'x' as u32, b' ' as u32];
        for &t in &sep {
            assert_eq!(g.allowed(&reply), vec![t], "the separator is forced");
            assert!(!g.is_complete(&reply));
            reply.push(t);
        }
        assert_eq!(g.allowed(&reply), vec![b'a' as u32, b'c' as u32]);
        reply.extend(bytes("c\"").unwrap());
        assert!(g.is_complete(&reply));
        assert!(g.allowed(&reply).is_empty());
        // A wrong separator token leads nowhere.
        let mut bad = vec![b'x' as u32, b'y' as u32, b'?' as u32];
        assert!(g.allowed(&bad).is_empty());
        bad.extend(bytes("c\"").unwrap());
        assert!(!g.is_complete(&bad));
        assert_eq!(g.max_len(), 2 + sep.len() + 3);
        assert_eq!((g.reply_prefix(), g.action_start()), (THOUGHT_PREFIX, 2));
        // The full reply is the VL-DAC JSON with both keys.
        let text = format!("{THOUGHT_PREFIX}x {THOUGHT_SEPARATOR}c\"{REPLY_SUFFIX}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["thoughts"].as_str(), v["action"].as_str()), (Some("x "), Some("c")));
    }

    #[test]
    fn a_multi_token_alphabet_character_is_refused() {
        let g = ActionGrammar::new(&["a".to_string()], bytes).unwrap();
        let two = |s: &str| -> Result<Vec<u32>, String> { Ok(if s == "q" { vec![1, 2] } else { vec![3] }) };
        assert!(g.with_thought(3, two).unwrap_err().contains("'q' is 2 tokens"));
    }
}

//! The inference contract the evaluators are written against: a batch of chat requests with
//! images or videos in, one reply text per request out. The VLM crate implements it; tests use
//! small deterministic models.

use vldac_core::Frame;

/// A picture or a clip in a message. Videos are kept apart from image lists because Qwen2-VL
/// encodes them differently (temporal patches of two frames, video position ids).
#[derive(Debug, Clone, PartialEq)]
pub enum Visual {
    Image(Frame),
    /// Sampled frames in time order.
    Video(Vec<Frame>),
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat turn: its visuals come first, then its text (the order lmms-eval, VisualWebBench
/// and BALROG use for Qwen2-VL).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub visuals: Vec<Visual>,
    pub text: String,
}

impl ChatMessage {
    pub fn user(visuals: Vec<Visual>, text: impl Into<String>) -> Self {
        ChatMessage { role: Role::User, visuals, text: text.into() }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        ChatMessage { role: Role::Assistant, visuals: Vec::new(), text: text.into() }
    }
}

/// Generation settings. Benchmarks are scored with greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
}

/// One conversation to continue with an assistant reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub messages: Vec<ChatMessage>,
    pub generation: GenerationConfig,
}

impl Request {
    /// A single user turn, greedy.
    pub fn single(visuals: Vec<Visual>, text: impl Into<String>, max_new_tokens: usize) -> Self {
        Request {
            messages: vec![ChatMessage::user(visuals, text)],
            generation: GenerationConfig { max_new_tokens, temperature: 0.0 },
        }
    }
}

/// Errors a model reports; the runner stops and keeps the predictions written so far.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("model failure: {0}")]
pub struct ModelError(pub String);

/// Tokens one request consumed (BALROG logs their sums per episode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Prompt tokens, image tokens included.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// A vision-language model that answers batches of chat requests.
///
/// `generate` returns exactly one reply per request, in order (the runner checks). Replies are
/// the decoded text without the prompt and without special tokens.
pub trait Model {
    /// Name recorded in prediction files and score tables.
    fn name(&self) -> String;

    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError>;

    /// Token counts of the last `generate` call, one per request, when the model knows them
    /// (empty otherwise).
    fn last_usage(&self) -> Vec<TokenUsage> {
        Vec::new()
    }
}

impl<M: Model + ?Sized> Model for Box<M> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        (**self).generate(batch)
    }
    fn last_usage(&self) -> Vec<TokenUsage> {
        (**self).last_usage()
    }
}

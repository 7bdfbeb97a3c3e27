//! Qwen2-VL (vldac-vlm) as a VL-DAC actor-critic (vldac-dac's `TextPolicy`).
//!
//! * `act`: batched generation with a KV cache, free or constrained to the action grammar
//!   ([`ActionGrammar`]); old log-probs are untempered (VL-DAC) unless the score config says
//!   otherwise; the value is the value head on the last prompt token's hidden state.
//! * `evaluate`: one forward over `prompt ++ reply` with gradients; log-probs of the reply tokens
//!   (restricted to the grammar when constrained) and `V(s)` from the stop-gradient hidden state.
//! * `reference_log_probs`: the same with the LoRA adapters switched off (the frozen reference).

use burn::module::Module;
use burn::tensor::Tensor;
use vldac_dac::{Generation, PolicyError, SampleConfig, ScoreConfig, Scored, TextPolicy, ValueHead};
use vldac_vlm::{
    Batch, DecodeOptions, DecodeRules, FreeDecoding, GenerateConfig, Prompt, Qwen2Vl, Qwen2VlTokenizer, generate_with,
    score_with,
};

use crate::grammar::{ActionGrammar, REPLY_SUFFIX};

/// What the policy acts on: a tokenized prompt (image pads expanded) with its pixel values.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyObs {
    pub prompt: Prompt,
}

/// Qwen2-VL with LoRA adapters and a value head.
#[derive(Module, Debug)]
pub struct VlmPolicy {
    pub model: Qwen2Vl,
    pub value_head: ValueHead,
    /// `Some`: replies are constrained to the action grammar (the prompt ends with
    /// [`ActionGrammar::reply_prefix`]).
    #[module(skip)]
    pub grammar: Option<ActionGrammar>,
    #[module(skip)]
    pub pad_id: u32,
    #[module(skip)]
    pub stop_tokens: Vec<u32>,
    #[module(skip)]
    pub tokenizer: ReplyTokenizer,
    /// Global index of the first row this process samples for (a data-parallel rank's first
    /// environment; 0 alone), so row `r` draws the stream of environment `row_offset + r`.
    #[module(skip)]
    pub row_offset: usize,
}

/// The tokenizer the policy decodes replies with (a newtype so the module can derive `Debug`).
#[derive(Clone)]
pub struct ReplyTokenizer(pub Qwen2VlTokenizer);

impl std::fmt::Debug for ReplyTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Qwen2VlTokenizer(vocab {})", self.0.vocab_size())
    }
}

fn model_err(e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Model(e.to_string())
}

/// The action grammar as decoding rules: only tokens that keep the reply a prefix of some
/// `{"action": "<label>"}`, finished when the reply is complete.
struct GrammarRules<'a>(&'a ActionGrammar);

impl DecodeRules for GrammarRules<'_> {
    fn allowed(&self, prefix: &[u32]) -> Option<Vec<u32>> {
        Some(self.0.allowed(prefix))
    }
    fn finished(&self, tokens: &[u32], _stop_tokens: &[u32]) -> bool {
        self.0.is_complete(tokens)
    }
}

/// Row `r`'s sampling stream (as in earlier releases, so seeded runs reproduce), for the
/// environment `ROW_OFFSET + r`.
fn row_seed(seed: u64, r: usize) -> u64 {
    let global = ROW_OFFSET.with(|o| o.get()) + r;
    vldac_core::seed::mix64(seed ^ global as u64)
}

thread_local! {
    /// [`VlmPolicy::row_offset`] of the `act` call in progress on this thread (`DecodeOptions`
    /// takes a plain `fn` for the row seed).
    static ROW_OFFSET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl VlmPolicy {
    /// The reply text the environment parses.
    pub fn reply_text(&self, tokens: &[u32]) -> Result<String, PolicyError> {
        let body = self.tokenizer.0.decode(tokens, true).map_err(model_err)?;
        Ok(match &self.grammar {
            Some(g) => format!("{}{body}{REPLY_SUFFIX}", g.reply_prefix()),
            None => body,
        })
    }

    fn rules(&self) -> Box<dyn DecodeRules + '_> {
        match &self.grammar {
            Some(g) => Box::new(GrammarRules(g)),
            None => Box::new(FreeDecoding),
        }
    }

    fn prompts(obs: &[&PolicyObs]) -> Vec<Prompt> {
        obs.iter().map(|o| o.prompt.clone()).collect()
    }

    fn batch(&self, obs: &[&PolicyObs]) -> Result<Batch, PolicyError> {
        Batch::left_padded(&Self::prompts(obs), self.pad_id).map_err(model_err)
    }

    /// Log-probs of `tokens[b]` after `obs[b]`, `[B, L]` (0 past a reply's end), plus the hidden
    /// state of the last prompt token `[B, H]`.
    fn score(
        &self,
        obs: &[&PolicyObs],
        tokens: &[&[u32]],
        temperature: f32,
        adapters: bool,
    ) -> Result<(Tensor<2>, Tensor<2>), PolicyError> {
        if obs.len() != tokens.len() || obs.is_empty() {
            return Err(PolicyError::Input(format!("{} observations and {} replies", obs.len(), tokens.len())));
        }
        let replies: Vec<Vec<u32>> = tokens.iter().map(|t| t.to_vec()).collect();
        let out =
            score_with(&self.model, &Self::prompts(obs), &replies, self.pad_id, adapters, temperature, &*self.rules())
                .map_err(model_err)?;
        Ok((out.token_logprobs, out.last_prompt_hidden))
    }
}

impl TextPolicy for VlmPolicy {
    type Obs = PolicyObs;

    fn act(
        &self,
        obs: &[&PolicyObs],
        sample: &SampleConfig,
        score: &ScoreConfig,
    ) -> Result<Vec<Generation>, PolicyError> {
        let max_new_tokens = match &self.grammar {
            Some(g) => g.max_len(),
            None => sample.max_new_tokens,
        };
        let gen_cfg = GenerateConfig {
            max_new_tokens,
            temperature: sample.temperature,
            top_p: sample.top_p.unwrap_or(1.0),
            top_k: sample.top_k.unwrap_or(0),
            stop_tokens: self.stop_tokens.clone(),
            seed: sample.seed,
        };
        let rules = self.rules();
        let opts = DecodeOptions { rules: &*rules, logprob_temperature: score.logit_temperature, row_seed };
        ROW_OFFSET.with(|o| o.set(self.row_offset));
        let g = generate_with(&self.model, &Self::prompts(obs), &gen_cfg, self.pad_id, true, &opts);
        ROW_OFFSET.with(|o| o.set(0));
        let g = g.map_err(model_err)?;
        let values: Vec<f32> =
            self.value_head.forward(g.last_prompt_hidden, true).into_data().try_to_vec::<f32>().map_err(model_err)?;
        let (mut tokens, mut log_probs) = (g.tokens, g.logprobs);
        let b = tokens.len();
        let mut out = Vec::with_capacity(b);
        for r in 0..b {
            let text = self.reply_text(&tokens[r])?;
            out.push(Generation {
                tokens: std::mem::take(&mut tokens[r]),
                log_probs: std::mem::take(&mut log_probs[r]),
                value: values[r],
                // Constrained replies know where their action span starts (after the thoughts);
                // free ones leave it to RL4VLM's fallback.
                action_start: self.grammar.as_ref().map(ActionGrammar::action_start),
                text,
            });
        }
        Ok(out)
    }

    fn evaluate(&self, obs: &[&PolicyObs], tokens: &[&[u32]], score: &ScoreConfig) -> Result<Scored, PolicyError> {
        let (log_probs, hidden) = self.score(obs, tokens, score.logit_temperature, true)?;
        let values = self.value_head.forward(hidden, score.value_stop_grad);
        Ok(Scored { log_probs, values })
    }

    fn reference_log_probs(
        &self,
        obs: &[&PolicyObs],
        tokens: &[&[u32]],
        score: &ScoreConfig,
    ) -> Result<Vec<Vec<f32>>, PolicyError> {
        let (lp, _) = self.score(obs, tokens, score.logit_temperature, false)?;
        let [b, r] = lp.dims();
        let host = lp.detach().into_data().try_to_vec::<f32>().map_err(model_err)?;
        Ok((0..b).map(|i| host[i * r..i * r + tokens[i].len()].to_vec()).collect())
    }

    fn values(&self, obs: &[&PolicyObs]) -> Result<Vec<f32>, PolicyError> {
        let batch = self.batch(obs)?;
        let (b, s) = (batch.batch_size(), batch.seq_len());
        let h = self.model.config.text.hidden_size;
        let hidden = self.model.forward_hidden(&batch, true).map_err(model_err)?;
        let last = vldac_vlm::nn::cast(hidden.narrow(1, s - 1, 1).reshape([b, h]), burn::tensor::DType::F32);
        self.value_head.forward(last, true).detach().into_data().try_to_vec::<f32>().map_err(model_err)
    }
}

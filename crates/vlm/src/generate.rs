//! Autoregressive generation with a KV cache for a batch of prompts of different lengths.
//!
//! Prompts are left-padded so every row's last prompt token is at the same index; one prefill
//! fills the cache, then each step feeds one token per row at M-RoPE position
//! `max prompt position + 1 + step` (the rope-delta rule of transformers).

use burn::tensor::Tensor;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, VlmError};
use crate::model::{Batch, Prompt, Qwen2Vl};
use crate::text::KvCache;

/// How to pick tokens. `temperature == 0` is greedy (ties go to the lowest id, like argmax).
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens with probability >= top_p (1 = off).
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Generation of a row ends after it emits one of these (the stop token is kept).
    pub stop_tokens: Vec<u32>,
    /// Row `r` samples from its own stream seeded by `seed` and `r`.
    pub seed: u64,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { max_new_tokens: 64, temperature: 0.0, top_p: 1.0, top_k: 0, stop_tokens: vec![], seed: 0 }
    }
}

impl GenerateConfig {
    pub fn greedy(max_new_tokens: usize) -> Self {
        GenerateConfig { max_new_tokens, ..Default::default() }
    }
    fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(VlmError::Input(format!("temperature must be >= 0, got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(VlmError::Input(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        Ok(())
    }
}

/// Result of [`generate`], one entry per prompt.
#[derive(Debug)]
pub struct Generation {
    /// Generated ids (including a final stop token when one was hit).
    pub tokens: Vec<Vec<u32>>,
    /// `log p(token)` under the model's unmodified distribution (temperature 1, no top-k/p),
    /// i.e. what [`crate::score::score`] returns for the same tokens ([`generate_with`]: at its
    /// log-prob temperature, restricted to the allowed tokens).
    pub logprobs: Vec<Vec<f32>>,
    /// Whether each row finished (a stop token, or its decoding rules ended it) rather than
    /// running out of `max_new_tokens`.
    pub stopped: Vec<bool>,
    /// Final-norm hidden state of each prompt's last token, `[b, hidden]` (the value head's input).
    pub last_prompt_hidden: Tensor<2>,
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
    x.iter().map(|&v| (v as f64 - lse) as f32).collect()
}

/// `log_softmax(logits / t)` over the `allowed` tokens only (all when `None`); other tokens get
/// `-inf`. Accumulates in f64.
pub fn restricted_log_softmax(row: &[f32], t: f32, allowed: Option<&[u32]>) -> Vec<f32> {
    let scaled: Vec<f64> = row.iter().map(|&x| x as f64 / t as f64).collect();
    let keep = |i: usize| allowed.is_none_or(|a| a.contains(&(i as u32)));
    let kept = || scaled.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, &x)| x);
    let m = kept().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + kept().map(|x| (x - m).exp()).sum::<f64>().ln();
    scaled.iter().enumerate().map(|(i, &x)| if keep(i) { (x - lse) as f32 } else { f32::NEG_INFINITY }).collect()
}

/// Per-row decoding rules for [`generate_with`] and [`crate::score::score_with`]: which tokens may
/// come next (constrained decoding, e.g. an action grammar) and when a row is finished. The
/// defaults: any token; finished after a stop token.
pub trait DecodeRules {
    /// The tokens that may follow `prefix` (`None`: any). An empty list finishes the row.
    fn allowed(&self, _prefix: &[u32]) -> Option<Vec<u32>> {
        None
    }
    /// Whether a row that has emitted `tokens` is finished.
    fn finished(&self, tokens: &[u32], stop_tokens: &[u32]) -> bool {
        tokens.last().is_some_and(|t| stop_tokens.contains(t))
    }
}

/// Plain decoding: any token, stop tokens end a row.
pub struct FreeDecoding;

impl DecodeRules for FreeDecoding {}

/// What [`generate_with`] adds to [`GenerateConfig`].
pub struct DecodeOptions<'a> {
    pub rules: &'a dyn DecodeRules,
    /// Temperature of the recorded log-probs (1: the model's distribution), independent of the
    /// sampling temperature: RL needs `log pi(a|s)` of the policy it optimises.
    pub logprob_temperature: f32,
    /// The seed of row `r`'s sampling stream from `GenerateConfig::seed` and `r`.
    pub row_seed: fn(u64, usize) -> u64,
}

fn default_row_seed(seed: u64, r: usize) -> u64 {
    seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions { rules: &FreeDecoding, logprob_temperature: 1.0, row_seed: default_row_seed }
    }
}

/// Picks one token from a row of logits.
pub fn sample_token(logits: &[f32], cfg: &GenerateConfig, rng: &mut ChaCha8Rng) -> u32 {
    if cfg.temperature == 0.0 {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if cfg.top_k > 0 {
        order.truncate(cfg.top_k);
    }
    let scaled: Vec<f32> = order.iter().map(|&i| logits[i] / cfg.temperature).collect();
    let lp = log_softmax(&scaled);
    let mut probs: Vec<f64> = lp.iter().map(|&l| (l as f64).exp()).collect();
    if cfg.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cum += p;
            if cum >= cfg.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (k, p) in probs.iter().enumerate() {
        u -= p;
        if u <= 0.0 {
            return order[k] as u32;
        }
    }
    order[probs.len() - 1] as u32
}

/// Generates continuations for `prompts` (with adapters on or off).
pub fn generate(
    model: &Qwen2Vl,
    prompts: &[Prompt],
    cfg: &GenerateConfig,
    pad_id: u32,
    adapters: bool,
) -> Result<Generation> {
    generate_with(model, prompts, cfg, pad_id, adapters, &DecodeOptions::default())
}

/// [`generate`] with decoding rules (constrained decoding), a log-prob temperature and per-row
/// seeds. A row whose rules allow no token is finished without emitting one.
pub fn generate_with(
    model: &Qwen2Vl,
    prompts: &[Prompt],
    cfg: &GenerateConfig,
    pad_id: u32,
    adapters: bool,
    opts: &DecodeOptions,
) -> Result<Generation> {
    cfg.validate()?;
    let batch = Batch::left_padded(prompts, pad_id)?;
    let (b, s) = (batch.batch_size(), batch.seq_len());
    let v = model.config.text.vocab_size;
    let h = model.config.text.hidden_size;
    // One stream per row, so a row's sample does not depend on what else is in the batch.
    let mut rngs: Vec<ChaCha8Rng> = (0..b).map(|r| ChaCha8Rng::seed_from_u64((opts.row_seed)(cfg.seed, r))).collect();
    let mut cache = KvCache::default();
    let fwd = model.forward_last(&batch, Some(&mut cache), adapters)?;
    // The value head is f32 whatever the model's precision.
    let last_prompt_hidden = crate::nn::cast(fwd.hidden.narrow(1, s - 1, 1).reshape([b, h]), burn::tensor::DType::F32);
    let mut logits = fwd.logits.reshape([b, v]);
    let mut next_pos: Vec<i64> = fwd.positions.iter().map(|p| s as i64 + p.rope_delta).collect();
    let mut tokens = vec![Vec::new(); b];
    let mut logprobs = vec![Vec::new(); b];
    let mut stopped = vec![false; b];
    for step in 0..cfg.max_new_tokens {
        let host: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| VlmError::Input(format!("logits are not f32: {e:?}")))?;
        let mut feed = Vec::with_capacity(b);
        for r in 0..b {
            let allowed = if stopped[r] { None } else { opts.rules.allowed(&tokens[r]) };
            if stopped[r] || allowed.as_ref().is_some_and(|a| a.is_empty()) {
                stopped[r] = true;
                feed.push(pad_id);
                continue;
            }
            let row = &host[r * v..(r + 1) * v];
            let t = match &allowed {
                Some(a) => {
                    let masked: Vec<f32> =
                        (0..v).map(|i| if a.contains(&(i as u32)) { row[i] } else { f32::NEG_INFINITY }).collect();
                    sample_token(&masked, cfg, &mut rngs[r])
                }
                None => sample_token(row, cfg, &mut rngs[r]),
            };
            let lp = if allowed.is_none() && opts.logprob_temperature == 1.0 {
                log_softmax(row)
            } else {
                restricted_log_softmax(row, opts.logprob_temperature, allowed.as_deref())
            };
            logprobs[r].push(lp[t as usize]);
            tokens[r].push(t);
            stopped[r] = opts.rules.finished(&tokens[r], &cfg.stop_tokens);
            feed.push(t);
        }
        if stopped.iter().all(|&x| x) || step + 1 == cfg.max_new_tokens {
            break;
        }
        let (lg, _) = model.decode_step(&feed, &next_pos, &mut cache, adapters)?;
        logits = lg;
        next_pos.iter_mut().for_each(|p| *p += 1);
    }
    Ok(Generation { tokens, logprobs, stopped, last_prompt_hidden })
}

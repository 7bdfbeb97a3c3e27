//! The training-time forward: log-probabilities of given response tokens (with gradients on
//! an autodiff device) and the hidden state of the last prompt token, for a batch.

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::error::{Result, VlmError};
use crate::generate::{DecodeRules, FreeDecoding};
use crate::model::{Batch, Prompt, Qwen2Vl};
use crate::nn::cast;

pub struct ScoreOutput {
    /// `log p(response[r][i] | prompt, response[..i])`, `[b, max_response_len]`; 0 on padding.
    pub token_logprobs: Tensor<2>,
    /// `[b, max_response_len]`: 1 on real response tokens, 0 on padding.
    pub response_mask: Tensor<2>,
    /// Final-norm hidden state of each prompt's last token, `[b, hidden]`.
    pub last_prompt_hidden: Tensor<2>,
}

/// Scores `responses[r]` as continuations of `prompts[r]`. Rows are laid out as
/// `[left padding | prompt | response | right padding]`, so logits are computed only at the
/// response positions.
pub fn score(
    model: &Qwen2Vl,
    prompts: &[Prompt],
    responses: &[Vec<u32>],
    pad_id: u32,
    adapters: bool,
) -> Result<ScoreOutput> {
    score_with(model, prompts, responses, pad_id, adapters, 1.0, &FreeDecoding)
}

/// [`score`] of `log_softmax(logits / temperature)` restricted to the tokens `rules` allow at each
/// position: the training-time counterpart of [`crate::generate::generate_with`].
pub fn score_with(
    model: &Qwen2Vl,
    prompts: &[Prompt],
    responses: &[Vec<u32>],
    pad_id: u32,
    adapters: bool,
    temperature: f32,
    rules: &dyn DecodeRules,
) -> Result<ScoreOutput> {
    if prompts.len() != responses.len() {
        return Err(VlmError::Input(format!("{} prompts but {} responses", prompts.len(), responses.len())));
    }
    let mut batch = Batch::left_padded(prompts, pad_id)?;
    let (b, p) = (batch.batch_size(), batch.seq_len());
    let r = responses.iter().map(|x| x.len()).max().unwrap_or(0);
    if r == 0 {
        return Err(VlmError::Input("every response is empty".into()));
    }
    let v = model.config.text.vocab_size;
    let mut mask_f = Vec::with_capacity(b * r);
    let mut targets = Vec::with_capacity(b * r);
    // -1e9 on tokens the rules forbid (finite, so padded positions stay NaN-free).
    let mut forbid: Option<Vec<f32>> = None;
    for (row, resp) in responses.iter().enumerate() {
        for i in 0..r {
            let real = i < resp.len();
            batch.ids[row].push(if real { resp[i] } else { pad_id });
            batch.mask[row].push(real);
            mask_f.push(if real { 1.0f32 } else { 0.0 });
            targets.push(if real { resp[i] as i64 } else { 0 });
            if let Some(allowed) = if real { rules.allowed(&resp[..i]) } else { None } {
                let f = forbid.get_or_insert_with(|| vec![0.0; b * r * v]);
                let at = (row * r + i) * v;
                for (t, x) in f[at..at + v].iter_mut().enumerate() {
                    if !allowed.contains(&(t as u32)) {
                        *x = -1.0e9;
                    }
                }
            }
        }
    }
    let dev = model.device();
    let h = model.config.text.hidden_size;
    let fwd = model.forward_hidden(&batch, adapters)?;
    // The value head is f32 whatever the model's precision.
    let last_prompt_hidden = cast(fwd.clone().narrow(1, p - 1, 1).reshape([b, h]), DType::F32);
    // Position p-1+i predicts response token i.
    let mut logits = model.lm_logits(fwd.narrow(1, p - 1, r));
    if temperature != 1.0 {
        logits = logits.div_scalar(temperature);
    }
    if let Some(f) = forbid {
        logits = logits + Tensor::<3>::from_data(TensorData::new(f, [b, r, v]), &dev);
    }
    let lp = log_softmax(logits, 2);
    let idx = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, r, 1]), &dev);
    let response_mask = Tensor::<2>::from_data(TensorData::new(mask_f, [b, r]), &dev);
    let token_logprobs = lp.gather(2, idx).reshape([b, r]) * response_mask.clone();
    Ok(ScoreOutput { token_logprobs, response_mask, last_prompt_hidden })
}

//! Perception pretraining of the tiny random model, before RL.
//!
//! VL-DAC fine-tunes a VLM that already sees: Qwen2-VL knows where the red box is in a MiniWorld
//! frame, and RL only has to turn that into actions. A random tiny model does not: its image
//! tokens hold the box's bearing (a linear probe reads it back), but two random LM layers wash it
//! out of the last prompt token that the actor and the critic read (`examples/frame_signal.rs`).
//! So before RL, the model answers "Where is the red box?" about frames from random walks in the
//! training environment, with answers read off the pixels (where the clearly red pixels are), and
//! is trained on them by supervised next-token prediction.
//!
//! Nothing here says which action to take. An anchor keeps the model's token log-probabilities
//! of every action reply on the RL prompt where the random model had them (squared difference,
//! on frames from the same walks): without it the answers' training reshapes the reply
//! distribution (one run left `move forward` at probability 0.002) and RL starts from a
//! collapsed policy.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use vldac_core::{Action, ActionSpace, Environment, Observation};
use vldac_vlm::tokenizer::ChatMessage;
use vldac_vlm::{FreeDecoding, ImageProcessor, Prompt, Qwen2Vl, Qwen2VlTokenizer, score_with};

/// The question asked about every frame.
pub const QUESTION: &str = "Where is the red box?";

/// The answers, indexed by [`Bearing`].
pub const ANSWERS: [&str; 4] = ["not in view", "on the left", "straight ahead", "on the right"];

/// `model.perception`: pretraining steps and their data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptionConfig {
    /// Adam steps on question/answer batches.
    pub steps: usize,
    /// Frames collected by random walks; the last sixth is held out for the report.
    #[serde(default = "default_frames")]
    pub frames: usize,
    /// Questions per step, the four answers equally often.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Weight of the anchor on the action replies' log-probabilities.
    #[serde(default = "default_anchor")]
    pub anchor: f32,
}

fn default_frames() -> usize {
    3000
}
fn default_batch() -> usize {
    32
}
fn default_lr() -> f64 {
    1e-3
}
fn default_anchor() -> f32 {
    1.0
}

impl PerceptionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.steps == 0 || self.batch_size == 0 {
            return Err("model.perception.steps and batch_size must be > 0".into());
        }
        if self.frames < 12 {
            return Err(format!("model.perception.frames must be >= 12, got {}", self.frames));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("model.perception.lr must be a positive number, got {}", self.lr));
        }
        if !(self.anchor >= 0.0 && self.anchor.is_finite()) {
            return Err(format!("model.perception.anchor must be >= 0, got {}", self.anchor));
        }
        Ok(())
    }
}

/// Where the red target is in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearing {
    NotInView = 0,
    Left = 1,
    Ahead = 2,
    Right = 3,
}

/// The bearing of the clearly red pixels' centroid (thirds of the width); fewer than 4 such
/// pixels is [`Bearing::NotInView`].
pub fn red_bearing(image: &image::RgbImage) -> Bearing {
    let (mut n, mut sum_x) = (0usize, 0f64);
    for (x, _, p) in image.enumerate_pixels() {
        let [r, g, b] = p.0.map(i32::from);
        if r > 80 && r > 2 * g && r > 2 * b {
            n += 1;
            sum_x += x as f64;
        }
    }
    if n < 4 {
        return Bearing::NotInView;
    }
    match ((sum_x / n as f64) * 3.0 / image.width() as f64) as usize {
        0 => Bearing::Left,
        1 => Bearing::Ahead,
        _ => Bearing::Right,
    }
}

/// What pretraining did (written to the run directory as `perception.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerceptionReport {
    pub frames: usize,
    /// Frames per answer (not in view, left, ahead, right).
    pub answers: [usize; 4],
    /// Held-out balanced accuracy (mean recall over the answers present) of picking the answer
    /// with the highest log-probability, before and after.
    pub held_out_balanced_accuracy_before: f64,
    pub held_out_balanced_accuracy_after: f64,
    /// Mean question loss (summed answer-token NLL) over the first and last 10% of the steps.
    pub loss_first: f64,
    pub loss_last: f64,
    /// Mean |Δ log-prob| of the anchored reply tokens on held-out frames, after.
    pub anchor_drift: f64,
    pub seconds: f64,
}

/// Everything pretraining reads besides the model.
pub struct PerceptionData<'a> {
    pub tokenizer: &'a Qwen2VlTokenizer,
    pub processor: &'a ImageProcessor,
    pub merge_size: usize,
    /// The RL prompt of an observation (what the policy acts on).
    pub rl_prompt: &'a dyn Fn(&dyn Environment, &Observation) -> anyhow::Result<Prompt>,
    /// Reply token sequences whose log-probabilities the anchor holds (every action reply).
    pub anchor_replies: Vec<Vec<u32>>,
}

struct Sample {
    question: Prompt,
    rl: Prompt,
    answer: Bearing,
}

/// A counter-based random stream (splitmix), so a seed gives the same walks and batches on every
/// machine and rank.
struct Stream(u64);

impl Stream {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(1);
        (vldac_core::seed::mix64(self.0) % n as u64) as usize
    }
}

fn collect(
    env: &mut dyn Environment,
    cfg: &PerceptionConfig,
    seed: u64,
    data: &PerceptionData,
) -> anyhow::Result<Vec<Sample>> {
    let ActionSpace::Discrete { labels, .. } = env.spec().action_space.clone() else {
        anyhow::bail!("model.perception needs a discrete action space");
    };
    let mut rng = Stream(seed);
    let mut samples = Vec::with_capacity(cfg.frames);
    let mut episode = 0u64;
    while samples.len() < cfg.frames {
        let (mut obs, _) = env.reset(Some(vldac_core::seed::mix64(seed ^ 0x7065_7263 ^ episode)))?;
        episode += 1;
        if !obs.task.contains("red") {
            anyhow::bail!(
                "model.perception asks where the red box is, but {} sets the task {:?}",
                env.spec().id,
                obs.task
            );
        }
        loop {
            let frame = obs
                .frames
                .last()
                .ok_or_else(|| anyhow::anyhow!("{}: an observation without a frame", env.spec().id))?;
            let image = frame.to_image();
            let pixels = data.processor.preprocess(std::slice::from_ref(&image))?;
            let ids = data.tokenizer.encode_chat(
                &[ChatMessage::user_with_images(1, QUESTION)],
                &pixels.grids,
                data.merge_size,
                true,
            )?;
            samples.push(Sample {
                question: Prompt { ids, pixels: Some(pixels) },
                rl: (data.rl_prompt)(env, &obs)?,
                answer: red_bearing(&image),
            });
            if samples.len() == cfg.frames {
                break;
            }
            let step = env.step(&Action::Discrete(rng.next(labels.len())))?;
            if step.terminated || step.truncated {
                break;
            }
            obs = step.obs;
        }
    }
    Ok(samples)
}

/// Summed log-probability of each reply after each prompt, `[prompts.len()]` per reply.
fn reply_scores(model: &Qwen2Vl, prompts: &[Prompt], reply: &[u32], pad: u32) -> anyhow::Result<Vec<f32>> {
    let replies = vec![reply.to_vec(); prompts.len()];
    token_logprobs(model, prompts, &replies, pad)?
        .sum_dim(1)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn balanced_accuracy(model: &Qwen2Vl, held_out: &[Sample], answers: &[Vec<u32>], pad: u32) -> anyhow::Result<f64> {
    let (mut right, mut seen) = ([0usize; 4], [0usize; 4]);
    for chunk in held_out.chunks(16) {
        let prompts: Vec<Prompt> = chunk.iter().map(|s| s.question.clone()).collect();
        let scores: Vec<Vec<f32>> =
            answers.iter().map(|a| reply_scores(model, &prompts, a, pad)).collect::<anyhow::Result<_>>()?;
        for (r, s) in chunk.iter().enumerate() {
            let best = (0..answers.len()).max_by(|&a, &b| scores[a][r].total_cmp(&scores[b][r])).unwrap_or(0);
            seen[s.answer as usize] += 1;
            right[s.answer as usize] += usize::from(best == s.answer as usize);
        }
    }
    let present: Vec<usize> = (0..4).filter(|&k| seen[k] > 0).collect();
    Ok(present.iter().map(|&k| right[k] as f64 / seen[k] as f64).sum::<f64>() / present.len().max(1) as f64)
}

/// Token log-probs of `replies[i]` after `prompts[i]`, `[n, max_len]` (0 on padding).
fn token_logprobs(model: &Qwen2Vl, prompts: &[Prompt], replies: &[Vec<u32>], pad: u32) -> anyhow::Result<Tensor<2>> {
    Ok(score_with(model, prompts, replies, pad, false, 1.0, &FreeDecoding)?.token_logprobs)
}

/// Pretrains `model` (every parameter trainable, on an autodiff device) on where the red box is
/// in frames of `env`. Deterministic given `seed`.
pub fn pretrain(
    model: Qwen2Vl,
    cfg: &PerceptionConfig,
    env: &mut dyn Environment,
    seed: u64,
    data: &PerceptionData,
) -> anyhow::Result<(Qwen2Vl, PerceptionReport)> {
    let start = Instant::now();
    let pad = data.tokenizer.special.endoftext;
    let samples = collect(env, cfg, seed, data)?;
    let split = samples.len() * 5 / 6;
    let (train, held_out) = samples.split_at(split);
    let mut answers_count = [0usize; 4];
    samples.iter().for_each(|s| answers_count[s.answer as usize] += 1);
    let answers: Vec<Vec<u32>> = ANSWERS
        .iter()
        .map(|a| {
            let mut ids = data.tokenizer.encode(a)?;
            ids.push(data.tokenizer.special.im_end);
            Ok(ids)
        })
        .collect::<anyhow::Result<_>>()?;
    let by_answer: Vec<Vec<usize>> =
        (0..4).map(|k| (0..train.len()).filter(|&i| train[i].answer as usize == k).collect()).collect();
    let present: Vec<usize> = (0..4).filter(|&k| !by_answer[k].is_empty()).collect();
    if present.len() < 2 {
        anyhow::bail!(
            "model.perception: the {} training frames show the red box in {answers_count:?} (none, left, ahead, \
             right); raise model.perception.frames",
            train.len()
        );
    }
    let initial = model.valid();
    let before = balanced_accuracy(&initial, held_out, &answers, pad)?;
    let dev = model.device();
    let mut model = model;
    let mut optim = AdamConfig::new().init();
    let mut rng = Stream(seed ^ 0x6261_7463);
    let anchor_rows = 8usize.min(train.len());
    let mut losses = Vec::with_capacity(cfg.steps);
    for _ in 0..cfg.steps {
        let mut prompts = Vec::with_capacity(cfg.batch_size);
        let mut replies = Vec::with_capacity(cfg.batch_size);
        for j in 0..cfg.batch_size {
            let k = present[j % present.len()];
            prompts.push(train[by_answer[k][rng.next(by_answer[k].len())]].question.clone());
            replies.push(answers[k].clone());
        }
        let qa = token_logprobs(&model, &prompts, &replies, pad)?.sum().neg().div_scalar(cfg.batch_size as f32);
        losses.push(qa.clone().into_scalar::<f32>() as f64);
        let mut loss = qa;
        if cfg.anchor > 0.0 && !data.anchor_replies.is_empty() {
            let rows: Vec<usize> = (0..anchor_rows).map(|_| rng.next(train.len())).collect();
            let prompts: Vec<Prompt> = rows.iter().map(|&i| train[i].rl.clone()).collect();
            let replies: Vec<Vec<u32>> =
                (0..anchor_rows).map(|j| data.anchor_replies[j % data.anchor_replies.len()].clone()).collect();
            let now = token_logprobs(&model, &prompts, &replies, pad)?;
            let was = token_logprobs(&initial, &prompts, &replies, pad)?;
            let was = Tensor::<2>::from_data(was.into_data(), &dev);
            loss = loss + (now - was).powi_scalar(2).sum().mul_scalar(cfg.anchor / anchor_rows as f32);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(cfg.lr, model, grads);
    }
    let trained = model.valid();
    let after = balanced_accuracy(&trained, held_out, &answers, pad)?;
    // How far the anchored replies moved, on held-out frames.
    let mut drift = (0f64, 0usize);
    for reply in &data.anchor_replies {
        let prompts: Vec<Prompt> = held_out.iter().take(32).map(|s| s.rl.clone()).collect();
        let replies = vec![reply.clone(); prompts.len()];
        let a = token_logprobs(&trained, &prompts, &replies, pad)?;
        let b = token_logprobs(&initial, &prompts, &replies, pad)?;
        let d = (a - b).abs().into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        drift.0 += d.iter().map(|&x| x as f64).sum::<f64>();
        drift.1 += prompts.len() * reply.len();
    }
    let tenth = (losses.len() / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let report = PerceptionReport {
        frames: samples.len(),
        answers: answers_count,
        held_out_balanced_accuracy_before: before,
        held_out_balanced_accuracy_after: after,
        loss_first: mean(&losses[..tenth]),
        loss_last: mean(&losses[losses.len() - tenth..]),
        anchor_drift: drift.0 / drift.1.max(1) as f64,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(red_at: Option<(u32, u32)>) -> image::RgbImage {
        let mut im = image::RgbImage::from_pixel(60, 40, image::Rgb([120, 110, 100]));
        if let Some((x0, x1)) = red_at {
            for x in x0..x1 {
                for y in 15..25 {
                    im.put_pixel(x, y, image::Rgb([200, 30, 20]));
                }
            }
        }
        im
    }

    #[test]
    fn bearing_is_the_third_of_the_red_centroid() {
        assert_eq!(red_bearing(&frame(None)), Bearing::NotInView);
        assert_eq!(red_bearing(&frame(Some((2, 8)))), Bearing::Left);
        assert_eq!(red_bearing(&frame(Some((26, 34)))), Bearing::Ahead);
        assert_eq!(red_bearing(&frame(Some((50, 59)))), Bearing::Right);
        // A box straddling two thirds counts where its centroid is (x 15..27: centroid 21).
        assert_eq!(red_bearing(&frame(Some((15, 27)))), Bearing::Ahead);
        // Dark red (shadowed) and orange-ish pixels are not "clearly red".
        let mut im = frame(None);
        for x in 0..10 {
            im.put_pixel(x, 5, image::Rgb([70, 10, 10]));
            im.put_pixel(x, 6, image::Rgb([200, 120, 20]));
        }
        assert_eq!(red_bearing(&im), Bearing::NotInView);
    }

    #[test]
    fn config_checks_name_the_field() {
        let ok = PerceptionConfig { steps: 10, frames: 100, batch_size: 8, lr: 1e-3, anchor: 1.0 };
        assert!(ok.validate().is_ok());
        let e = PerceptionConfig { lr: 0.0, ..ok.clone() }.validate().unwrap_err();
        assert!(e.contains("model.perception.lr"), "{e}");
        let e = PerceptionConfig { frames: 3, ..ok.clone() }.validate().unwrap_err();
        assert!(e.contains("model.perception.frames"), "{e}");
        let e = PerceptionConfig { anchor: -1.0, ..ok }.validate().unwrap_err();
        assert!(e.contains("model.perception.anchor"), "{e}");
    }
}

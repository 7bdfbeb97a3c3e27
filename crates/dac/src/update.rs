//! One iteration of the algorithm, in one place: advantages, then `ppo_epochs` shuffled passes
//! over the buffer in micro-batches, accumulating gradients and stepping Adam every
//! `grad_accum_steps` micro-batches, then one step of the LR schedule.

use burn::Tensor;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::config::{Algorithm, DacConfig};
use crate::error::DacError;
use crate::loss::{MicroBatch, compute_loss};
use crate::optim::Learner;
use crate::policy::{SampleConfig, ScoreConfig, TextPolicy};
use crate::schedule::cosine_lr;
use crate::storage::{AdvantageStats, RolloutStorage};

/// What one [`Dac::update`] did (losses are means over micro-batches).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStats {
    /// Iteration index of this update (0-based).
    pub iteration: usize,
    /// Learning rate used for this iteration's steps.
    pub lr: f64,
    /// Whether this was a value-only warm-up iteration.
    pub value_only: bool,
    pub policy_loss: f64,
    pub value_loss: f64,
    pub kl: f64,
    pub clip_fraction: f64,
    pub approx_kl: f64,
    pub guard_hits: usize,
    /// Micro-batches skipped because their loss was not finite.
    pub skipped_non_finite: usize,
    pub micro_batches: usize,
    pub optimizer_steps: usize,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f64,
    pub advantages: AdvantageStats,
}

/// How one update is shared by the processes of a data-parallel run (vldac-train's `dist`
/// implements it over MPI). Every process holds the whole buffer and walks the same global
/// shuffle; of each micro-batch it evaluates only [`rows`](Self::rows), with its loss weighted
/// by `rows / micro-batch size`, so the sums over processes of the weighted losses and their
/// gradients are the one-process micro-batch loss and gradient. The default methods are one
/// process doing everything ([`Alone`]).
pub trait GradSync {
    /// Number of processes.
    fn size(&self) -> usize {
        1
    }
    /// This process's rows of a micro-batch of `len` rows (a contiguous share).
    fn rows(&self, len: usize) -> std::ops::Range<usize> {
        0..len
    }
    /// Sums `xs` element-wise over the processes, in place (every process gets the sum).
    fn sum_f64(&mut self, _xs: &mut [f64]) -> Result<(), DacError> {
        Ok(())
    }
    /// Sums `xs` element-wise over the processes, in place (every process gets the sum).
    fn sum_f32(&mut self, _xs: &mut [f32]) -> Result<(), DacError> {
        Ok(())
    }
}

/// One process: no reduction.
pub struct Alone;

impl GradSync for Alone {}

/// Trainable parameters in visit order: `(numel, gradient here or None)`, flattened for a
/// reduction, then written back.
struct Flatten<'a> {
    grads: &'a GradientsParams,
    present: Vec<f32>,
    data: Vec<f32>,
    error: Option<String>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let numel: usize = param.val().dims().iter().product();
        match self.grads.get::<D>(param.id) {
            Some(g) => match g.into_data().convert::<f32>().try_into_vec::<f32>() {
                Ok(v) if v.len() == numel => {
                    self.present.push(1.0);
                    self.data.extend_from_slice(&v);
                }
                Ok(v) => {
                    self.error.get_or_insert(format!("gradient of {} has {} values, not {numel}", param.id, v.len()));
                }
                Err(e) => {
                    self.error.get_or_insert(format!("reading the gradient of {}: {e:?}", param.id));
                }
            },
            None => {
                self.present.push(0.0);
                self.data.resize(self.data.len() + numel, 0.0);
            }
        }
    }
}

struct Unflatten<'a> {
    grads: &'a mut GradientsParams,
    present: &'a [f32],
    data: &'a [f32],
    param: usize,
    offset: usize,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let val = param.val();
        let dims = val.dims();
        let numel: usize = dims.iter().product();
        let (p, at) = (self.param, self.offset);
        self.param += 1;
        self.offset += numel;
        // A parameter no process has a gradient for stays out of the step, as it would alone.
        if self.present[p] == 0.0 {
            self.grads.remove::<D>(param.id);
            return;
        }
        let device = match self.grads.get::<D>(param.id) {
            Some(g) => g.device(),
            None => val.device().inner(),
        };
        let t = Tensor::<D>::from_data(TensorData::new(self.data[at..at + numel].to_vec(), dims), &device);
        self.grads.register::<D>(param.id, t);
    }
}

/// Replaces `grads` (this process's gradients of `module`'s trainable parameters) by their sum
/// over the processes of `sync`: one host-side reduction of every trainable parameter, zeros
/// where a process has none.
pub fn all_reduce_grads<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    sync: &mut dyn GradSync,
) -> Result<(), DacError> {
    let mut flat = Flatten { grads, present: Vec::new(), data: Vec::new(), error: None };
    module.visit(&mut flat);
    if let Some(e) = flat.error {
        return Err(DacError::Collective(e));
    }
    let (mut present, mut data) = (flat.present, flat.data);
    let params = present.len();
    present.append(&mut data);
    sync.sum_f32(&mut present)?;
    let (present, data) = present.split_at(params);
    module.visit(&mut Unflatten { grads, present, data, param: 0, offset: 0 });
    Ok(())
}

/// The VL-DAC / RL4VLM / LOOP learner: holds the optimiser state, the iteration counter (for
/// warm-up and the schedule) and the shuffling RNG.
pub struct Dac<P: TextPolicy> {
    config: DacConfig,
    learner: Learner<P>,
    iteration: usize,
    seed: u64,
}

impl<P: TextPolicy> Dac<P> {
    /// Validates `config`; `seed` drives minibatch shuffling.
    pub fn new(config: DacConfig, seed: u64) -> Result<Self, DacError> {
        config.validate()?;
        let learner = Learner::new(&config.optim);
        Ok(Dac { config, learner, iteration: 0, seed })
    }

    pub fn config(&self) -> &DacConfig {
        &self.config
    }

    /// Updates done so far.
    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// Sets the iteration counter (resuming a run).
    pub fn set_iteration(&mut self, iteration: usize) {
        self.iteration = iteration;
    }

    /// The optimiser state (Adam moments per trainable parameter), for checkpoints.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, DacError> {
        self.learner.optimizer_bytes()
    }

    /// Restores optimiser state saved by [`optimizer_bytes`](Self::optimizer_bytes).
    pub fn load_optimizer_bytes(&mut self, bytes: Vec<u8>) -> Result<(), DacError> {
        self.learner.load_optimizer_bytes(bytes)
    }

    /// Learning rate of the next update.
    pub fn learning_rate(&self) -> f64 {
        cosine_lr(&self.config.optim, self.iteration)
    }

    /// How rollouts and updates score tokens (must be the same for both).
    pub fn score_config(&self) -> ScoreConfig {
        ScoreConfig {
            logit_temperature: self.config.algo.logit_temperature,
            value_stop_grad: self.config.algo.value_stop_grad,
        }
    }

    /// Sampling settings of the rollout config, with `seed`.
    pub fn sample_config(&self, seed: u64) -> SampleConfig {
        let r = &self.config.rollout;
        SampleConfig {
            temperature: r.temperature,
            top_k: r.top_k,
            top_p: r.top_p,
            max_new_tokens: r.max_new_tokens,
            seed,
        }
    }

    /// Whether the rollout must record reference log-probs.
    pub fn needs_reference(&self) -> bool {
        self.config.algo.kl_beta > 0.0
    }

    /// One iteration on a finished buffer (see [`RolloutStorage::finish`]). The caller then
    /// calls [`RolloutStorage::after_update`] and collects the next buffer.
    pub fn update(&mut self, policy: &mut P, storage: &mut RolloutStorage<P::Obs>) -> Result<UpdateStats, DacError> {
        self.update_with(policy, storage, &mut Alone)
    }

    /// [`update`](Self::update) as one of `sync.size()` data-parallel processes: each holds the
    /// same (global) buffer, evaluates its rows of every micro-batch, and steps on the gradients
    /// summed over processes, so all replicas take the one-process step (see [`GradSync`]).
    pub fn update_with(
        &mut self,
        policy: &mut P,
        storage: &mut RolloutStorage<P::Obs>,
        sync: &mut dyn GradSync,
    ) -> Result<UpdateStats, DacError> {
        let cfg = self.config.algo.clone();
        let advantages = storage.compute_advantages(&cfg)?;
        let has_critic = cfg.algorithm != Algorithm::Loop;
        let value_only = has_critic && self.iteration < cfg.value_warmup_iterations;
        let lr = self.learning_rate();
        let score = self.score_config();
        let mut stats = UpdateStats { iteration: self.iteration, lr, value_only, advantages, ..Default::default() };

        let mut order: Vec<usize> = (0..storage.len()).filter(|&k| storage.active()[k]).collect();
        // One shuffling stream per iteration, derived from (seed, iteration): a run resumed from a
        // checkpoint shuffles exactly as the uninterrupted run did, with no RNG state to save.
        let mut rng = ChaCha8Rng::seed_from_u64(vldac_core::seed::episode_seed(self.seed, 0, self.iteration as u64));
        let mut norms = Vec::new();
        let mut sums = [0.0f64; 5];
        for _epoch in 0..cfg.ppo_epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(cfg.mini_batch_size) {
                // This process's rows; alone, the whole micro-batch with weight 1.
                let mine = &chunk[sync.rows(chunk.len())];
                let weight = mine.len() as f64 / chunk.len() as f64;
                // [total, policy, value, kl, clipped, clip-counted, approx_kl·tokens, tokens, guard
                // hits], weighted so that their sums over processes are the micro-batch's values.
                let mut parts = [0.0f64; 9];
                let mut total = None;
                if !mine.is_empty() {
                    let recs = storage.records();
                    let obs: Vec<&P::Obs> = mine.iter().map(|&k| &recs[k].obs).collect();
                    let tokens: Vec<&[u32]> = mine.iter().map(|&k| recs[k].tokens.as_slice()).collect();
                    let scored = policy.evaluate(&obs, &tokens, &score)?;
                    let mb = MicroBatch::from_storage(storage, mine, &cfg)?;
                    let loss = compute_loss(&cfg, &mb, &scored, value_only)?;
                    let tokens = mb.mask.iter().filter(|&&m| m > 0.0).count() as f64;
                    let clip_counted = if cfg.algorithm == Algorithm::Rl4vlm { mb.batch as f64 } else { tokens };
                    parts = [
                        loss.total.clone().into_scalar::<f32>() as f64 * weight,
                        loss.policy_loss * weight,
                        loss.value_loss * weight,
                        loss.kl * weight,
                        (loss.clip_fraction * clip_counted).round(),
                        clip_counted,
                        loss.approx_kl * tokens,
                        tokens,
                        loss.guard_hits as f64,
                    ];
                    total = Some(if weight == 1.0 { loss.total } else { loss.total.mul_scalar(weight) });
                }
                if sync.size() > 1 {
                    sync.sum_f64(&mut parts)?;
                }
                // A micro-batch whose loss is not finite anywhere is skipped everywhere.
                if !parts[0].is_finite() {
                    stats.skipped_non_finite += 1;
                    continue;
                }
                match total {
                    Some(total) => {
                        let grads = GradientsParams::from_grads(total.backward(), &*policy);
                        self.learner.accumulate(policy, grads);
                    }
                    None => self.learner.accumulate_nothing(),
                }
                stats.micro_batches += 1;
                let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
                for (s, v) in sums.iter_mut().zip([
                    parts[1],
                    parts[2],
                    parts[3],
                    ratio(parts[4], parts[5]),
                    ratio(parts[6], parts[7]),
                ]) {
                    *s += v;
                }
                stats.guard_hits += parts[8] as usize;
                if self.learner.pending() == cfg.grad_accum_steps {
                    norms.extend(self.learner.step_with(policy, lr, sync)?);
                    stats.optimizer_steps += 1;
                }
            }
        }
        // A partial accumulation window is applied rather than carried into the next iteration.
        if let Some(n) = self.learner.step_with(policy, lr, sync)? {
            norms.push(n);
            stats.optimizer_steps += 1;
        }
        let m = stats.micro_batches.max(1) as f64;
        [stats.policy_loss, stats.value_loss, stats.kl, stats.clip_fraction, stats.approx_kl] = sums.map(|s| s / m);
        stats.grad_norm = if norms.is_empty() { 0.0 } else { norms.iter().sum::<f64>() / norms.len() as f64 };
        self.iteration += 1;
        Ok(stats)
    }
}

//! One iteration of the algorithm, in one place: advantages, then `ppo_epochs` shuffled passes
//! over the buffer in micro-batches, accumulating gradients and stepping Adam every
//! `grad_accum_steps` micro-batches, then one step of the LR schedule.

use burn::optim::GradientsParams;
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
                let recs = storage.records();
                let obs: Vec<&P::Obs> = chunk.iter().map(|&k| &recs[k].obs).collect();
                let tokens: Vec<&[u32]> = chunk.iter().map(|&k| recs[k].tokens.as_slice()).collect();
                let scored = policy.evaluate(&obs, &tokens, &score)?;
                let mb = MicroBatch::from_storage(storage, chunk, &cfg)?;
                let loss = compute_loss(&cfg, &mb, &scored, value_only)?;
                let total = loss.total.clone().into_scalar::<f32>();
                if !total.is_finite() {
                    stats.skipped_non_finite += 1;
                    continue;
                }
                let grads = GradientsParams::from_grads(loss.total.backward(), &*policy);
                self.learner.accumulate(policy, grads);
                stats.micro_batches += 1;
                for (s, v) in sums.iter_mut().zip([
                    loss.policy_loss,
                    loss.value_loss,
                    loss.kl,
                    loss.clip_fraction,
                    loss.approx_kl,
                ]) {
                    *s += v;
                }
                stats.guard_hits += loss.guard_hits;
                if self.learner.pending() == cfg.grad_accum_steps {
                    norms.extend(self.learner.step(policy, lr));
                    stats.optimizer_steps += 1;
                }
            }
        }
        // A partial accumulation window is applied rather than carried into the next iteration.
        if let Some(n) = self.learner.step(policy, lr) {
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

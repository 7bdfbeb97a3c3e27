//! Rollout storage for text actions: `N` environments × `T` steps, time-major.

use crate::config::{AlgoConfig, Algorithm};
use crate::error::DacError;
use crate::gae::{Trajectories, compute_gae, leave_one_out, normalize};

/// What the trainer records for one environment at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord<O> {
    /// The observation acted on (or a cheap handle to it).
    pub obs: O,
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Old per-token log-probs (one per token).
    pub log_probs: Vec<f32>,
    /// Reference per-token log-probs; empty when the KL term is off.
    pub ref_log_probs: Vec<f32>,
    /// RL4VLM's action-span start (see [`Generation::action_start`](crate::Generation::action_start)).
    pub action_start: Option<usize>,
    /// `V(obs)` at rollout time.
    pub value: f32,
    pub reward: f32,
    pub terminated: bool,
    pub truncated: bool,
    /// `V(s_final)` of the pre-reset observation when `truncated` (see [`VecStep::final_obs`]
    /// in vldac-core); ignored otherwise.
    ///
    /// [`VecStep::final_obs`]: vldac_core::VecStep::final_obs
    pub final_value: Option<f32>,
    /// Task key for LOOP's groups: episodes with equal keys are rollouts of the same task (for
    /// example the reset seed). Ignored by VL-DAC and RL4VLM.
    pub task: u64,
}

/// Advantage bookkeeping of the last [`RolloutStorage::compute_advantages`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdvantageStats {
    pub raw_mean: f32,
    pub raw_std: f32,
    pub return_mean: f32,
    /// Steps that take part in the loss (LOOP drops steps of incomplete or ungrouped episodes).
    pub active_steps: usize,
    /// LOOP: complete episodes used.
    pub episodes: usize,
}

/// `N × T` buffer. Insert one batch of `N` records per env step, then
/// [`finish`](Self::finish) with the bootstrap values and
/// [`compute_advantages`](Self::compute_advantages).
#[derive(Debug, Clone)]
pub struct RolloutStorage<O> {
    num_envs: usize,
    num_steps: usize,
    records: Vec<StepRecord<O>>,
    /// `[N]`: whether each environment's first stored step starts an episode (the official
    /// `masks[0]`, carried over by [`after_update`](Self::after_update)).
    starts_episode: Vec<bool>,
    next_values: Option<Vec<f32>>,
    pub(crate) advantages: Vec<f32>,
    pub(crate) returns: Vec<f32>,
    /// 1.0 where the step counts in the loss.
    pub(crate) active: Vec<bool>,
}

impl<O> RolloutStorage<O> {
    pub fn new(num_envs: usize, num_steps: usize) -> Result<Self, DacError> {
        if num_envs == 0 || num_steps == 0 {
            return Err(DacError::Storage(format!("num_envs ({num_envs}) and num_steps ({num_steps}) must be ≥ 1")));
        }
        Ok(RolloutStorage {
            num_envs,
            num_steps,
            records: Vec::with_capacity(num_envs * num_steps),
            starts_episode: vec![true; num_envs],
            next_values: None,
            advantages: Vec::new(),
            returns: Vec::new(),
            active: Vec::new(),
        })
    }

    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    pub fn num_steps(&self) -> usize {
        self.num_steps
    }

    /// Env steps stored so far (all environments).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.records.len() == self.num_envs * self.num_steps
    }

    /// Record `k = t·N + i` (step `t`, environment `i`).
    pub fn records(&self) -> &[StepRecord<O>] {
        &self.records
    }

    /// Advantages per record (after [`compute_advantages`](Self::compute_advantages)), normalised
    /// if the config says so.
    pub fn advantages(&self) -> &[f32] {
        &self.advantages
    }

    /// Value targets per record (unnormalised).
    pub fn returns(&self) -> &[f32] {
        &self.returns
    }

    /// Whether each record takes part in the loss.
    pub fn active(&self) -> &[bool] {
        &self.active
    }

    /// Appends one env step: `batch[i]` belongs to environment `i`.
    pub fn insert(&mut self, batch: Vec<StepRecord<O>>) -> Result<(), DacError> {
        if batch.len() != self.num_envs {
            return Err(DacError::Storage(format!("insert got {} records for {} envs", batch.len(), self.num_envs)));
        }
        if self.is_full() {
            return Err(DacError::Storage(format!("buffer is full ({} steps)", self.num_steps)));
        }
        let t = self.records.len() / self.num_envs;
        for (i, r) in batch.iter().enumerate() {
            if r.log_probs.len() != r.tokens.len() {
                return Err(DacError::Storage(format!(
                    "step {t} env {i}: {} log_probs for {} tokens",
                    r.log_probs.len(),
                    r.tokens.len()
                )));
            }
            if !r.ref_log_probs.is_empty() && r.ref_log_probs.len() != r.tokens.len() {
                return Err(DacError::Storage(format!(
                    "step {t} env {i}: {} ref_log_probs for {} tokens",
                    r.ref_log_probs.len(),
                    r.tokens.len()
                )));
            }
            if !r.reward.is_finite() || !r.value.is_finite() {
                return Err(DacError::Storage(format!("step {t} env {i}: non-finite reward or value")));
            }
        }
        self.records.extend(batch);
        self.next_values = None;
        Ok(())
    }

    /// Closes the buffer with `V` of each environment's current observation (the bootstrap at
    /// the buffer end; ignored where the last step ended an episode).
    pub fn finish(&mut self, next_values: Vec<f32>) -> Result<(), DacError> {
        if !self.is_full() {
            return Err(DacError::Storage(format!(
                "finish on a buffer with {} of {} records",
                self.records.len(),
                self.num_envs * self.num_steps
            )));
        }
        if next_values.len() != self.num_envs {
            return Err(DacError::Storage(format!("{} next_values for {} envs", next_values.len(), self.num_envs)));
        }
        self.next_values = Some(next_values);
        Ok(())
    }

    /// Fills advantages, returns and the active mask for `cfg.algorithm`.
    pub fn compute_advantages(&mut self, cfg: &AlgoConfig) -> Result<AdvantageStats, DacError> {
        let next_values = self
            .next_values
            .clone()
            .ok_or_else(|| DacError::Storage("compute_advantages before finish(next_values)".into()))?;
        let n = self.records.len();
        let mut stats = AdvantageStats::default();
        match cfg.algorithm {
            Algorithm::VlDac | Algorithm::Rl4vlm => {
                let rewards: Vec<f32> = self.records.iter().map(|r| r.reward).collect();
                let values: Vec<f32> = self.records.iter().map(|r| r.value).collect();
                let terminated: Vec<bool> = self.records.iter().map(|r| r.terminated).collect();
                let truncated: Vec<bool> = self.records.iter().map(|r| r.truncated).collect();
                let mut final_values = vec![0.0; n];
                for (k, r) in self.records.iter().enumerate() {
                    if r.truncated && !r.terminated {
                        match r.final_value {
                            Some(v) => final_values[k] = v,
                            None if cfg.truncation.needs_final_value() => {
                                return Err(DacError::Storage(format!(
                                    "step {} env {} is truncated but has no final_value (needed by truncation = bootstrap)",
                                    k / self.num_envs,
                                    k % self.num_envs
                                )));
                            }
                            None => {}
                        }
                    }
                }
                let traj = Trajectories {
                    num_envs: self.num_envs,
                    rewards: &rewards,
                    values: &values,
                    terminated: &terminated,
                    truncated: &truncated,
                    final_values: &final_values,
                    next_values: &next_values,
                };
                self.advantages = vec![0.0; n];
                self.returns = vec![0.0; n];
                compute_gae(&traj, cfg.gamma, cfg.gae_lambda, cfg.truncation, &mut self.advantages, &mut self.returns)
                    .map_err(DacError::Storage)?;
                self.active = vec![true; n];
            }
            Algorithm::Loop => {
                self.loop_advantages(cfg.gamma, &mut stats)?;
            }
        }
        let act: Vec<f32> = self.advantages.iter().zip(&self.active).filter(|(_, a)| **a).map(|(x, _)| *x).collect();
        stats.active_steps = act.len();
        if !act.is_empty() {
            let mean = act.iter().map(|&x| x as f64).sum::<f64>() / act.len() as f64;
            let var = act.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (act.len().max(2) - 1) as f64;
            stats.raw_mean = mean as f32;
            stats.raw_std = var.sqrt() as f32;
            stats.return_mean = self.returns.iter().map(|&x| x as f64).sum::<f64>() as f32 / n as f32;
        }
        if cfg.normalize_advantages {
            let mut act = act;
            normalize(&mut act, cfg.advantage_eps);
            let mut it = act.into_iter();
            for (x, a) in self.advantages.iter_mut().zip(&self.active) {
                if *a {
                    *x = it.next().unwrap_or(0.0);
                }
            }
        }
        Ok(stats)
    }

    /// LOOP: complete episodes grouped by task key; each episode's discounted return against the
    /// mean of the other episodes of its task, given to all its steps. Steps of episodes that
    /// started before the buffer, did not end in it, or have no partner are inactive.
    fn loop_advantages(&mut self, gamma: f32, stats: &mut AdvantageStats) -> Result<(), DacError> {
        let n = self.records.len();
        let envs = self.num_envs;
        self.advantages = vec![0.0; n];
        self.returns = vec![0.0; n];
        self.active = vec![false; n];
        // (task, return, record indices)
        let mut episodes: Vec<(u64, f32, Vec<usize>)> = Vec::new();
        for i in 0..envs {
            let mut start_ok = self.starts_episode[i];
            let mut current: Vec<usize> = Vec::new();
            for t in 0..self.num_steps {
                let k = t * envs + i;
                current.push(k);
                let r = &self.records[k];
                if r.terminated || r.truncated {
                    if start_ok {
                        let mut ret = 0.0f64;
                        for &j in current.iter().rev() {
                            ret = self.records[j].reward as f64 + gamma as f64 * ret;
                        }
                        let task = self.records[current[0]].task;
                        episodes.push((task, ret as f32, std::mem::take(&mut current)));
                    }
                    current.clear();
                    start_ok = true;
                }
            }
        }
        let mut tasks: Vec<u64> = episodes.iter().map(|e| e.0).collect();
        tasks.sort_unstable();
        tasks.dedup();
        for task in tasks {
            let members: Vec<usize> = (0..episodes.len()).filter(|&e| episodes[e].0 == task).collect();
            if members.len() < 2 {
                continue;
            }
            let rets: Vec<f32> = members.iter().map(|&e| episodes[e].1).collect();
            let adv = leave_one_out(&rets).map_err(DacError::Storage)?;
            for (&e, a) in members.iter().zip(adv) {
                for &k in &episodes[e].2 {
                    self.advantages[k] = a;
                    self.returns[k] = episodes[e].1;
                    self.active[k] = true;
                }
                stats.episodes += 1;
            }
        }
        Ok(())
    }

    /// Empties the buffer for the next iteration, remembering whether each environment's next
    /// step starts an episode (the official `masks[0] ← masks[-1]`).
    pub fn after_update(&mut self) {
        if self.is_full() {
            let last = (self.num_steps - 1) * self.num_envs;
            for i in 0..self.num_envs {
                let r = &self.records[last + i];
                self.starts_episode[i] = r.terminated || r.truncated;
            }
        }
        self.records.clear();
        self.next_values = None;
        self.advantages.clear();
        self.returns.clear();
        self.active.clear();
    }

    /// Marks every environment's next stored step as an episode start (after the trainer reset
    /// all environments, as LOOP's whole-episode collection does).
    pub fn mark_all_episode_starts(&mut self) {
        self.starts_episode.iter_mut().for_each(|s| *s = true);
    }

    /// Whether environment `i`'s first stored step starts an episode.
    pub fn starts_episode(&self) -> &[bool] {
        &self.starts_episode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DacConfig, TruncationMode};

    fn rec(truncated: bool, final_value: Option<f32>) -> StepRecord<()> {
        StepRecord {
            obs: (),
            tokens: vec![1, 2],
            log_probs: vec![-0.1, -0.2],
            ref_log_probs: vec![],
            action_start: None,
            value: 0.0,
            reward: 0.0,
            terminated: false,
            truncated,
            final_value,
            task: 0,
        }
    }

    #[test]
    fn bad_records_are_refused_with_their_place() {
        let mut s = RolloutStorage::new(2, 1).unwrap();
        let mut bad = rec(false, None);
        bad.log_probs.pop();
        let err = s.insert(vec![rec(false, None), bad]).unwrap_err().to_string();
        assert!(err.contains("step 0 env 1"), "{err}");
        assert!(s.insert(vec![rec(false, None)]).is_err(), "wrong env count");
        assert!(s.finish(vec![0.0, 0.0]).is_err(), "finish before full");

        s.insert(vec![rec(false, None), rec(true, None)]).unwrap();
        s.finish(vec![0.0, 0.0]).unwrap();
        let mut cfg = DacConfig::preset("vldac-paper").unwrap().algo;
        cfg.truncation = TruncationMode::Bootstrap;
        let err = s.compute_advantages(&cfg).unwrap_err().to_string();
        assert!(err.contains("step 0 env 1") && err.contains("final_value"), "{err}");
        cfg.truncation = TruncationMode::ZeroAdvantage;
        s.compute_advantages(&cfg).unwrap();
        assert!(s.insert(vec![rec(false, None), rec(false, None)]).is_err(), "full");
    }
}

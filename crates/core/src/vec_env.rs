//! Steps N environments in parallel on worker threads, with auto-reset.

use crate::env::{EnvError, Environment};
use crate::obs::{Info, Observation};
use crate::seed::episode_seed;
use crate::space::Action;

/// One batched step. Index `i` belongs to environment `i`.
#[derive(Debug, Clone)]
pub struct VecStep {
    /// The observation to act on next: the first observation of a new episode where one ended.
    pub obs: Vec<Observation>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// Info of the step (for an episode that ended: of its last step, with `episode` stats).
    pub infos: Vec<Info>,
    /// For an episode that ended on this step: its final observation, which a truncated episode
    /// bootstraps from. `None` elsewhere.
    pub final_obs: Vec<Option<Observation>>,
}

/// Why a batched call failed; names the environment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VecEnvError {
    #[error("environment {index}: {source}")]
    Env { index: usize, source: EnvError },
    #[error("got {got} actions for {expected} environments")]
    ActionCount { expected: usize, got: usize },
    #[error("cannot start {threads} worker threads: {reason}")]
    Threads { threads: usize, reason: String },
    #[error("step called before reset")]
    NotReset,
}

/// N environments, reset and stepped together.
///
/// Episode `k` of environment `i` is reset with seed `episode_seed(root_seed, i, k)`, so every
/// episode is reproducible on its own, whatever the thread count or the order episodes end in.
/// With [`with_seed_groups`](Self::with_seed_groups), `i` is replaced by `i / group`.
pub struct VecEnv<E> {
    envs: Vec<E>,
    episodes: Vec<u64>,
    root_seed: u64,
    /// Environments `i` and `j` share episode seeds when `i / group == j / group` (LOOP's K
    /// rollouts of the same task).
    group: usize,
    /// Global index of `envs[0]`: a data-parallel rank that steps environments `offset..` of a
    /// larger run seeds them as that run does.
    offset: usize,
    /// Seed of each environment's current episode.
    current: Vec<u64>,
    pool: rayon::ThreadPool,
    started: bool,
}

impl<E: Environment> VecEnv<E> {
    /// `threads == 0` uses one thread per environment, capped at the number of cores.
    pub fn new(envs: Vec<E>, root_seed: u64, threads: usize) -> Result<Self, VecEnvError> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = if threads == 0 { envs.len().clamp(1, cores) } else { threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vldac-env-{i}"))
            .build()
            .map_err(|e| VecEnvError::Threads { threads, reason: e.to_string() })?;
        let episodes = vec![0; envs.len()];
        let current = vec![0; envs.len()];
        Ok(VecEnv { envs, episodes, root_seed, group: 1, offset: 0, current, pool, started: false })
    }

    /// Makes consecutive groups of `size` environments play the same episodes (same reset seeds),
    /// as LOOP's leave-one-out baseline needs. `size` 1 (the default) gives every env its own.
    pub fn with_seed_groups(mut self, size: usize) -> Self {
        self.group = size.max(1);
        self
    }

    /// Makes `envs[i]` environment `offset + i` of a larger run (its episode seeds, seed groups
    /// and error messages use the global index), for one data-parallel rank's share.
    pub fn with_index_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Global index of the first environment (see [`with_index_offset`](Self::with_index_offset)).
    pub fn index_offset(&self) -> usize {
        self.offset
    }

    /// The reset seed of each environment's current episode (a task key: equal seeds, same task).
    pub fn current_seeds(&self) -> &[u64] {
        &self.current
    }

    pub fn len(&self) -> usize {
        self.envs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    pub fn envs_mut(&mut self) -> &mut [E] {
        &mut self.envs
    }

    /// How many episodes each environment has started (the state needed to resume seeding).
    pub fn episode_counters(&self) -> &[u64] {
        &self.episodes
    }

    /// Restores counters saved from [`episode_counters`](Self::episode_counters); the next reset of
    /// each environment continues its seed sequence.
    pub fn set_episode_counters(&mut self, counters: &[u64]) {
        for (mine, theirs) in self.episodes.iter_mut().zip(counters) {
            *mine = *theirs;
        }
    }

    /// Resets every environment into a fresh episode.
    pub fn reset(&mut self) -> Result<Vec<(Observation, Info)>, VecEnvError> {
        let (root, group, offset) = (self.root_seed, self.group, self.offset);
        let envs = &mut self.envs;
        let episodes = &mut self.episodes;
        let current = &mut self.current;
        let results: Vec<Result<(Observation, Info), EnvError>> = self.pool.install(|| {
            use rayon::prelude::*;
            envs.par_iter_mut()
                .zip(episodes.par_iter_mut())
                .zip(current.par_iter_mut())
                .enumerate()
                .map(|(i, ((env, ep), cur))| {
                    *cur = episode_seed(root, (offset + i) / group, *ep);
                    let out = env.reset(Some(*cur));
                    *ep += 1;
                    out
                })
                .collect()
        });
        self.started = true;
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.map_err(|source| VecEnvError::Env { index: offset + i, source }))
            .collect()
    }

    /// Steps every environment with its action; an environment whose episode ends is reset at
    /// once (its final observation is kept in [`VecStep::final_obs`]).
    pub fn step(&mut self, actions: &[Action]) -> Result<VecStep, VecEnvError> {
        if !self.started {
            return Err(VecEnvError::NotReset);
        }
        if actions.len() != self.envs.len() {
            return Err(VecEnvError::ActionCount { expected: self.envs.len(), got: actions.len() });
        }
        let (root, group, offset) = (self.root_seed, self.group, self.offset);
        let envs = &mut self.envs;
        let episodes = &mut self.episodes;
        let current = &mut self.current;
        type One = Result<(Observation, f64, bool, bool, Info, Option<Observation>), EnvError>;
        let results: Vec<One> = self.pool.install(|| {
            use rayon::prelude::*;
            envs.par_iter_mut()
                .zip(episodes.par_iter_mut())
                .zip(current.par_iter_mut())
                .zip(actions.par_iter())
                .enumerate()
                .map(|(i, (((env, ep), cur), action))| {
                    let step = env.step(action)?;
                    if step.done() {
                        *cur = episode_seed(root, (offset + i) / group, *ep);
                        let (obs, _reset_info) = env.reset(Some(*cur))?;
                        *ep += 1;
                        Ok((obs, step.reward, step.terminated, step.truncated, step.info, Some(step.obs)))
                    } else {
                        Ok((step.obs, step.reward, step.terminated, step.truncated, step.info, None))
                    }
                })
                .collect()
        });
        let n = results.len();
        let mut out = VecStep {
            obs: Vec::with_capacity(n),
            rewards: Vec::with_capacity(n),
            terminated: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            infos: Vec::with_capacity(n),
            final_obs: Vec::with_capacity(n),
        };
        for (i, r) in results.into_iter().enumerate() {
            let (obs, reward, term, trunc, info, fin) =
                r.map_err(|source| VecEnvError::Env { index: self.offset + i, source })?;
            out.obs.push(obs);
            out.rewards.push(reward);
            out.terminated.push(term);
            out.truncated.push(trunc);
            out.infos.push(info);
            out.final_obs.push(fin);
        }
        Ok(out)
    }

    /// Closes every environment.
    pub fn close(&mut self) {
        for env in &mut self.envs {
            env.close();
        }
    }
}

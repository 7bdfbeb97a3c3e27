//! Returns and advantages: GAE(γ, λ) with termination ≠ truncation, buffer normalisation, and
//! LOOP's leave-one-out baseline. Plain slices, no tensors: this runs on the whole buffer once
//! per iteration.

use crate::config::TruncationMode;

/// A `T × N` buffer in time-major order: entry `t·N + i` is step `t` of environment `i`.
#[derive(Debug, Clone, Copy)]
pub struct Trajectories<'a> {
    pub num_envs: usize,
    pub rewards: &'a [f32],
    /// `V(s_t)` as predicted at rollout time.
    pub values: &'a [f32],
    pub terminated: &'a [bool],
    pub truncated: &'a [bool],
    /// `V(s_final)` of the pre-reset observation, read only at [`StepEnd::Bootstrap`] steps
    /// (`truncated && !terminated` under [`TruncationMode::Bootstrap`]).
    pub final_values: &'a [f32],
    /// `[N]`: `V` of each environment's observation after the last stored step.
    pub next_values: &'a [f32],
}

impl Trajectories<'_> {
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    fn check(&self) -> Result<(), String> {
        let n = self.rewards.len();
        if self.num_envs == 0 || !n.is_multiple_of(self.num_envs) {
            return Err(format!("{n} steps is not a multiple of num_envs {}", self.num_envs));
        }
        for (name, len) in [
            ("values", self.values.len()),
            ("terminated", self.terminated.len()),
            ("truncated", self.truncated.len()),
            ("final_values", self.final_values.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, rewards has {n}"));
            }
        }
        if self.next_values.len() != self.num_envs {
            return Err(format!("next_values has {} entries for {} envs", self.next_values.len(), self.num_envs));
        }
        Ok(())
    }
}

/// How one step enters GAE, from its two flags and the [`TruncationMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// The episode goes on: `δ = r + γ V_{t+1} − V`, `A_t = δ + γλ A_{t+1}`.
    Continue,
    /// Cut like a termination: `A = r − V`.
    Terminal,
    /// Cut with a bootstrap from the final observation: `A = r + γ V(s_final) − V`.
    Bootstrap,
    /// Cut with `A = 0`, `R = V` (the official `bad_masks = 0`).
    Zero,
}

impl StepEnd {
    /// The rule for a step with these flags (see the table on [`TruncationMode`]). An unresolved
    /// [`TruncationMode::Official`] is an error at a truncated step: the official families differ
    /// there (a termination alone is `Terminal` in all of them).
    pub fn of(mode: TruncationMode, terminated: bool, truncated: bool) -> Result<StepEnd, String> {
        Ok(match (terminated, truncated) {
            (false, false) => StepEnd::Continue,
            (true, false) => StepEnd::Terminal,
            (_, true) => match mode {
                TruncationMode::Bootstrap if terminated => StepEnd::Terminal,
                TruncationMode::Bootstrap => StepEnd::Bootstrap,
                TruncationMode::ZeroAdvantage if terminated => StepEnd::Terminal,
                TruncationMode::ZeroAdvantage => StepEnd::Zero,
                TruncationMode::ZeroAdvantageTruncationWins => StepEnd::Zero,
                TruncationMode::Terminate => StepEnd::Terminal,
                TruncationMode::Official => {
                    return Err("truncation = \"official\" is not resolved for an environment family \
                                (AlgoConfig::resolve_episode_end; vldac-train does it from env.id)"
                        .into());
                }
            },
        })
    }
}

/// GAE over a `T × N` buffer; writes `advantages` and `returns = advantages + values`.
///
/// Per environment, backwards in time, each step by its [`StepEnd`]:
/// - `Terminal`: `δ = r − V`, nothing flows back across the boundary;
/// - `Bootstrap`: `δ = r + γ V(s_final) − V`, nothing flows back;
/// - `Zero`: `A = 0`, `R = V` (the official code's `bad_masks = 0`);
/// - `Continue`: `δ = r + γ V_{t+1} − V`, `A_t = δ + γλ A_{t+1}`, with `V_T` = `next_values`.
pub fn compute_gae(
    traj: &Trajectories<'_>,
    gamma: f32,
    lambda: f32,
    mode: TruncationMode,
    advantages: &mut [f32],
    returns: &mut [f32],
) -> Result<(), String> {
    traj.check()?;
    let n = traj.len();
    if advantages.len() != n || returns.len() != n {
        return Err(format!("output slices must have {n} entries"));
    }
    let envs = traj.num_envs;
    let steps = n / envs;
    let (gamma, lambda) = (gamma as f64, lambda as f64);
    for i in 0..envs {
        let mut next_value = traj.next_values[i] as f64;
        let mut next_adv = 0.0f64;
        for t in (0..steps).rev() {
            let k = t * envs + i;
            let v = traj.values[k] as f64;
            let r = traj.rewards[k] as f64;
            let end = StepEnd::of(mode, traj.terminated[k], traj.truncated[k])
                .map_err(|e| format!("step {t} env {i}: {e}"))?;
            let adv = match end {
                StepEnd::Terminal => r - v,
                StepEnd::Bootstrap => r + gamma * traj.final_values[k] as f64 - v,
                StepEnd::Zero => 0.0,
                StepEnd::Continue => r + gamma * next_value - v + gamma * lambda * next_adv,
            };
            advantages[k] = adv as f32;
            returns[k] = (adv + v) as f32;
            next_adv = adv;
            next_value = v;
        }
    }
    Ok(())
}

/// Discounted Monte-Carlo returns `R_t = r_t + γ R_{t+1}` with the same boundary rules as
/// [`compute_gae`] (`λ = 1` GAE gives `R − V` of exactly these).
pub fn discounted_returns(traj: &Trajectories<'_>, gamma: f32, mode: TruncationMode) -> Result<Vec<f32>, String> {
    traj.check()?;
    let envs = traj.num_envs;
    let steps = traj.len() / envs;
    let mut out = vec![0.0; traj.len()];
    let gamma = gamma as f64;
    for i in 0..envs {
        let mut next = traj.next_values[i] as f64;
        for t in (0..steps).rev() {
            let k = t * envs + i;
            let r = traj.rewards[k] as f64;
            let end = StepEnd::of(mode, traj.terminated[k], traj.truncated[k])
                .map_err(|e| format!("step {t} env {i}: {e}"))?;
            let ret = match end {
                StepEnd::Terminal => r,
                StepEnd::Bootstrap => r + gamma * traj.final_values[k] as f64,
                StepEnd::Zero => traj.values[k] as f64,
                StepEnd::Continue => r + gamma * next,
            };
            out[k] = ret as f32;
            next = ret;
        }
    }
    Ok(out)
}

/// Normalises in place to mean 0 and (unbiased) std 1: `(A − mean)/(std + eps)`, as the official
/// code. Fewer than two entries have no std: they become 0.
pub fn normalize(values: &mut [f32], eps: f32) {
    let n = values.len();
    if n == 0 {
        return;
    }
    let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = if n > 1 { values.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    let denom = var.sqrt() + eps as f64;
    for x in values.iter_mut() {
        *x = ((*x as f64 - mean) / denom) as f32;
    }
}

/// Leave-one-out advantages of one task's K episode returns:
/// `A_k = R_k − mean_{j≠k} R_j = K/(K−1)·(R_k − R̄)`. Needs `K ≥ 2`.
pub fn leave_one_out(returns: &[f32]) -> Result<Vec<f32>, String> {
    let k = returns.len();
    if k < 2 {
        return Err(format!("leave-one-out needs at least 2 rollouts of a task, got {k}"));
    }
    let sum: f64 = returns.iter().map(|&r| r as f64).sum();
    Ok(returns.iter().map(|&r| (r as f64 - (sum - r as f64) / (k - 1) as f64) as f32).collect())
}

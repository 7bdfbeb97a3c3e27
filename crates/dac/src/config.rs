//! Configuration: the algorithm switch, loss options, optimiser, rollout shape, and named presets.
//!
//! Every struct rejects unknown keys, so a typo in a TOML file is an error naming the key.
//! A file may start from a preset and override single fields:
//!
//! ```toml
//! preset = "vldac-paper"
//! [algo]
//! gamma = 1.0
//! ratio_guard = inf   # optional fields switch off with inf
//! ```

use serde::{Deserialize, Serialize};

use crate::error::DacError;

/// Which update rule [`Dac::update`](crate::Dac::update) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// VL-DAC: token-level clipped PPO with one step-level GAE advantage per step, k3 KL to the
    /// frozen reference, step-level value loss on a stop-gradient value head, value warm-up.
    VlDac,
    /// RL4VLM: step-level PPO on `λ·log π(thought) + log π(action)`, critic trained through the
    /// backbone (no stop-gradient), no KL.
    Rl4vlm,
    /// LOOP: K rollouts per task, leave-one-out episode advantage on every token, token-mean PPO,
    /// no critic, no KL.
    Loop,
}

/// What GAE does at the end of an episode, i.e. which of gymnasium's two flags (`terminated`,
/// `truncated`) cut the advantage how. In every mode nothing flows back across an episode end.
///
/// | step flags | `bootstrap` | `zero-advantage` | `zero-advantage-truncation-wins` | `terminate` |
/// |---|---|---|---|---|
/// | terminated only | `A = r − V` | `A = r − V` | `A = r − V` | `A = r − V` |
/// | truncated only | `A = r + γ V(s_final) − V` | `A = 0`, `R = V` | `A = 0`, `R = V` | `A = r − V` |
/// | both | `A = r − V` | `A = r − V` | `A = 0`, `R = V` | `A = r − V` |
///
/// `official` stands for the column the official VL-DAC code applies to the run's environment
/// family ([`EnvFamily`], [`TruncationMode::official_for`]); resolve it with
/// [`AlgoConfig::resolve_episode_end`] (vldac-train does this from `env.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruncationMode {
    /// Gymnasium semantics (our default): a termination wins when both flags are set; a
    /// truncation bootstraps from the value of the final (pre-reset) observation,
    /// `δ_t = r_t + γ V(s_final) − V_t`.
    Bootstrap,
    /// A truncation that is not also a termination gets `A = 0`, `R = V`; a termination wins.
    /// This is the official storage code (`use_proper_time_limits`) fed by a wrapper that sets
    /// `info["TimeLimit.truncated"] = truncated and not terminated` (stable-baselines3's
    /// `DummyVecEnv`, used by the official legacy `main.py` without `--modular`).
    ZeroAdvantage,
    /// Every truncated step gets `A = 0`, `R = V`, even when it is also terminated (the goal reached
    /// on the time-limit step): the official MiniWorld wrapper, which sets
    /// `info["TimeLimit.truncated"]` whenever `truncated` (so `masks = bad_masks = 0`).
    ZeroAdvantageTruncationWins,
    /// Every episode end is a termination, `A = r − V`, no bootstrap: the official Gym-Cards,
    /// ALFWorld and WebShop wrappers, which never set `info["TimeLimit.truncated"]` (`masks = 0`,
    /// `bad_masks = 1`).
    Terminate,
    /// What the official code does for the run's environment family; must be resolved
    /// ([`AlgoConfig::resolve_episode_end`]) before a truncated step reaches GAE.
    Official,
}

/// The environment families the official VL-DAC code has a wrapper for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvFamily {
    /// `a2c_ppo_acktr/environments/miniworld_env.py`
    MiniWorld,
    /// `a2c_ppo_acktr/environments/gymcards_env.py`
    GymCards,
    /// `a2c_ppo_acktr/environments/alfworld_env.py`
    AlfWorld,
    /// `a2c_ppo_acktr/environments/webshop_env.py`
    WebShop,
}

impl EnvFamily {
    pub const ALL: [EnvFamily; 4] =
        [EnvFamily::MiniWorld, EnvFamily::GymCards, EnvFamily::AlfWorld, EnvFamily::WebShop];

    /// The family of an environment id as registered in this workspace (`MiniWorld-OneRoom-v0`,
    /// `gym_cards/NumberLine-v0`, `ALFWorld-TW-v0`, `WebShop-v0`, `WebShop-Text-v0`); `None` for
    /// environments the official code has no wrapper for.
    pub fn from_env_id(id: &str) -> Option<EnvFamily> {
        let lower = id.to_ascii_lowercase();
        if lower.starts_with("miniworld-") {
            Some(EnvFamily::MiniWorld)
        } else if lower.starts_with("gym_cards/") {
            Some(EnvFamily::GymCards)
        } else if lower.starts_with("alfworld") {
            Some(EnvFamily::AlfWorld)
        } else if lower.starts_with("webshop") {
            Some(EnvFamily::WebShop)
        } else {
            None
        }
    }
}

impl TruncationMode {
    /// The episode-end rule of the official code's wrapper for `family` (see the crate README for
    /// the files and lines).
    pub fn official_for(family: EnvFamily) -> TruncationMode {
        match family {
            EnvFamily::MiniWorld => TruncationMode::ZeroAdvantageTruncationWins,
            EnvFamily::GymCards | EnvFamily::AlfWorld | EnvFamily::WebShop => TruncationMode::Terminate,
        }
    }

    /// Whether this mode reads [`StepRecord::final_value`](crate::StepRecord::final_value).
    pub fn needs_final_value(self) -> bool {
        self == TruncationMode::Bootstrap
    }

    /// The official storage code's `(masks, bad_masks)` after a step with these flags, under
    /// this mode (`1.0` = the episode goes on / no time-limit cut). [`Bootstrap`](Self::Bootstrap)
    /// and an unresolved [`Official`](Self::Official) have no such pair: `None`.
    pub fn official_masks(self, terminated: bool, truncated: bool) -> Option<(f32, f32)> {
        let done = terminated || truncated;
        let mask = if done { 0.0 } else { 1.0 };
        let time_limit = match self {
            TruncationMode::ZeroAdvantage => truncated && !terminated,
            TruncationMode::ZeroAdvantageTruncationWins => truncated,
            TruncationMode::Terminate => false,
            TruncationMode::Bootstrap | TruncationMode::Official => return None,
        };
        Some((mask, if time_limit { 0.0 } else { 1.0 }))
    }
}

/// Which generated tokens count in the token-level losses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenSelection {
    /// Drop the first generated token (the official code never gathers its log-prob).
    #[serde(default)]
    pub skip_first: bool,
    /// Token ids that never count (the official code zeroes id 0, which is "!" in Qwen2).
    #[serde(default)]
    pub exclude_ids: Vec<u32>,
}

impl TokenSelection {
    /// Whether token `j` (0-based within the generated sequence) with id `id` counts.
    pub fn counts(&self, j: usize, id: u32) -> bool {
        !(self.exclude_ids.contains(&id) || self.skip_first && j == 0)
    }
}

/// Loss and advantage options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgoConfig {
    pub algorithm: Algorithm,
    /// Discount γ.
    pub gamma: f32,
    /// GAE λ (VL-DAC and RL4VLM).
    pub gae_lambda: f32,
    pub truncation: TruncationMode,
    /// Normalise advantages over the buffer, `(A − mean)/(std + eps)` with the unbiased std.
    pub normalize_advantages: bool,
    pub advantage_eps: f32,
    /// PPO clip ε for the ratio.
    pub clip_eps: f32,
    /// "Ratio guard" of the official code: if any counted token ratio of a step exceeds this, that
    /// step uses the clipped surrogate only (`−clip(r)·A`). `None` disables it.
    pub ratio_guard: Option<f32>,
    /// Value loss coefficient α.
    pub value_coef: f32,
    /// Multiplier inside the value loss: 0.5 for the paper's ½(V−R)², 1.0 for the official code.
    pub value_loss_scale: f32,
    /// PPO2-style clipped value loss with this ε (the official code reuses the policy ε).
    pub value_clip: Option<f32>,
    /// Feed the value head with the detached hidden state (VL-DAC: true; RL4VLM: false).
    pub value_stop_grad: bool,
    /// KL coefficient β of the per-token k3 estimator against the frozen reference.
    pub kl_beta: f32,
    /// Value-only iterations at the start ("policy freeze").
    pub value_warmup_iterations: usize,
    pub token_selection: TokenSelection,
    /// RL4VLM's thought weight λ (`thought_prob_coef`).
    pub thought_coef: f32,
    /// Temperature dividing the logits when scoring (1.0: untempered, VL-DAC; RL4VLM used 0.2).
    pub logit_temperature: f32,
    pub ppo_epochs: usize,
    /// Steps per forward/backward micro-batch.
    pub mini_batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum_steps: usize,
    /// LOOP: rollouts per task (K ≥ 2).
    pub loop_group_size: usize,
}

impl AlgoConfig {
    /// Replaces `truncation = "official"` by the official rule for `family`
    /// ([`TruncationMode::official_for`]); other modes are left as they are.
    pub fn resolve_episode_end(&mut self, family: EnvFamily) {
        if self.truncation == TruncationMode::Official {
            self.truncation = TruncationMode::official_for(family);
        }
    }

    /// [`resolve_episode_end`](Self::resolve_episode_end) for an environment id
    /// ([`EnvFamily::from_env_id`]). An id of no official family is an error only when the mode
    /// is `official`.
    pub fn resolve_episode_end_for_env(&mut self, env_id: &str) -> Result<(), DacError> {
        if self.truncation != TruncationMode::Official {
            return Ok(());
        }
        match EnvFamily::from_env_id(env_id) {
            Some(family) => {
                self.resolve_episode_end(family);
                Ok(())
            }
            None => Err(DacError::Config(format!(
                "algo.truncation = \"official\": the official VL-DAC code has no wrapper for {env_id:?} (it has \
                 MiniWorld, Gym-Cards, ALFWorld, WebShop); set algo.truncation to \"bootstrap\", \"zero-advantage\", \
                 \"zero-advantage-truncation-wins\" or \"terminate\""
            ))),
        }
    }
}

/// Which Adam variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient (torch.optim.Adam).
    Adam,
    /// AdamW with decoupled weight decay.
    AdamW,
}

/// Optimiser and learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr_init: f64,
    pub lr_end: f64,
    /// Cosine horizon in iterations (the scheduler steps once per [`Dac::update`](crate::Dac::update)).
    pub lr_max_steps: usize,
    /// `false`: stay at `lr_end` after the horizon. `true`: PyTorch's `CosineAnnealingLR`, which is
    /// periodic and climbs back to `lr_init` between `T_max` and `2·T_max` (the official code).
    pub lr_restart: bool,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clip over all trainable parameters. `None` disables it.
    pub max_grad_norm: Option<f32>,
}

/// Rollout shape and sampling, for the trainer that fills the storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    pub num_envs: usize,
    /// Env steps per environment per iteration.
    pub num_steps: usize,
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub max_new_tokens: usize,
    /// Total env steps of a run.
    pub total_env_steps: usize,
}

/// Everything an experiment sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DacConfig {
    pub algo: AlgoConfig,
    pub optim: OptimConfig,
    pub rollout: RolloutConfig,
}

/// Names of the built-in presets, with a line each.
pub const PRESETS: &[(&str, &str)] = &[
    ("vldac-paper", "VL-DAC, paper Table 6 (MiniWorld column)"),
    (
        "vldac-official-miniworld",
        "VL-DAC, official configs/miniworld_qwen2vl.yaml and code defaults; episode ends as the official wrapper of the env family",
    ),
    (
        "vldac-official",
        "VL-DAC, official YAML for GymCards/ALFWorld/WebShop (γ 0.99, accumulation 2, 4 epochs); episode ends as the official wrapper of the env family",
    ),
    ("rl4vlm", "RL4VLM, Gym-Cards scripts of the RL4VLM repository (λ 0.5)"),
    (
        "rl4vlm-dac-tricks",
        "RL4VLM λ 0.5 with VL-DAC's stabilisers (KL, warm-up, stop-grad), as in the paper's comparison",
    ),
    ("loop", "LOOP as adapted in the VL-DAC paper, Table 8 (no critic, no KL)"),
];

impl DacConfig {
    /// A named preset (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, DacError> {
        let paper_algo = AlgoConfig {
            algorithm: Algorithm::VlDac,
            gamma: 0.99,
            gae_lambda: 0.95,
            truncation: TruncationMode::Bootstrap,
            normalize_advantages: true,
            advantage_eps: 1e-8,
            clip_eps: 0.1,
            ratio_guard: None,
            value_coef: 0.15,
            value_loss_scale: 0.5,
            value_clip: None,
            value_stop_grad: true,
            kl_beta: 0.05,
            value_warmup_iterations: 2,
            token_selection: TokenSelection::default(),
            thought_coef: 1.0,
            logit_temperature: 1.0,
            ppo_epochs: 2,
            mini_batch_size: 1,
            grad_accum_steps: 128,
            loop_group_size: 4,
        };
        let paper_optim = OptimConfig {
            kind: OptimizerKind::Adam,
            lr_init: 5e-5,
            lr_end: 1e-7,
            lr_max_steps: 200,
            lr_restart: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        };
        let paper_rollout = RolloutConfig {
            num_envs: 1,
            num_steps: 256,
            temperature: 0.2,
            top_k: None,
            top_p: None,
            max_new_tokens: 256,
            total_env_steps: 51_200,
        };
        let official_algo = AlgoConfig {
            gamma: 0.9,
            truncation: TruncationMode::Official,
            ratio_guard: Some(10.0),
            value_coef: 0.5,
            value_loss_scale: 1.0,
            value_clip: Some(0.1),
            kl_beta: 0.04,
            token_selection: TokenSelection { skip_first: true, exclude_ids: vec![0] },
            grad_accum_steps: 16,
            ..paper_algo.clone()
        };
        let official_optim = OptimConfig {
            lr_init: 1e-6,
            lr_end: 1e-8,
            lr_max_steps: 100,
            lr_restart: true,
            max_grad_norm: Some(0.01),
            ..paper_optim.clone()
        };
        let official_rollout = RolloutConfig {
            top_k: Some(1),
            top_p: Some(0.001),
            max_new_tokens: 1024,
            total_env_steps: 10_000_000,
            ..paper_rollout.clone()
        };
        let cfg = match name {
            "vldac-paper" => DacConfig { algo: paper_algo, optim: paper_optim, rollout: paper_rollout },
            "vldac-official-miniworld" => {
                DacConfig { algo: official_algo, optim: official_optim, rollout: official_rollout }
            }
            "vldac-official" => DacConfig {
                algo: AlgoConfig { gamma: 0.99, grad_accum_steps: 2, ppo_epochs: 4, ..official_algo },
                optim: official_optim,
                rollout: RolloutConfig { total_env_steps: 5_000_000, ..official_rollout },
            },
            "rl4vlm" | "rl4vlm-dac-tricks" => {
                let plain = name == "rl4vlm";
                DacConfig {
                    algo: AlgoConfig {
                        algorithm: Algorithm::Rl4vlm,
                        gamma: 0.9,
                        gae_lambda: 0.95,
                        truncation: TruncationMode::ZeroAdvantage,
                        advantage_eps: 1e-5,
                        ratio_guard: Some(10.0),
                        value_coef: 0.5,
                        value_loss_scale: 0.5,
                        value_clip: Some(0.1),
                        value_stop_grad: !plain,
                        kl_beta: if plain { 0.0 } else { 0.05 },
                        value_warmup_iterations: if plain { 0 } else { 2 },
                        token_selection: TokenSelection { skip_first: true, exclude_ids: vec![0] },
                        thought_coef: 0.5,
                        logit_temperature: 0.2,
                        ppo_epochs: 4,
                        grad_accum_steps: 128,
                        ..paper_algo
                    },
                    optim: OptimConfig {
                        lr_init: 1e-5,
                        lr_end: 1e-9,
                        lr_max_steps: 25,
                        lr_restart: true,
                        max_grad_norm: Some(0.01),
                        ..paper_optim
                    },
                    rollout: RolloutConfig { num_steps: 512, total_env_steps: 15_000, ..paper_rollout },
                }
            }
            "loop" => DacConfig {
                algo: AlgoConfig {
                    algorithm: Algorithm::Loop,
                    normalize_advantages: false,
                    value_coef: 0.0,
                    kl_beta: 0.0,
                    value_warmup_iterations: 0,
                    ..paper_algo
                },
                optim: paper_optim,
                rollout: RolloutConfig { num_envs: 4, num_steps: 64, ..paper_rollout },
            },
            other => {
                let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                return Err(DacError::Config(format!("unknown preset {other:?}; known: {}", known.join(", "))));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML. With a top-level `preset = "name"`, the other keys override that preset
    /// field by field; without it, every field must be given.
    pub fn from_toml_str(text: &str) -> Result<Self, DacError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| DacError::Config(format!("TOML: {e}")))?;
        let table = value.as_table_mut().ok_or_else(|| DacError::Config("top level must be a table".into()))?;
        let merged = match table.remove("preset") {
            Some(toml::Value::String(name)) => {
                let base = toml::Value::try_from(Self::preset(&name)?)
                    .map_err(|e| DacError::Config(format!("serialising preset {name}: {e}")))?;
                merge(base, value)
            }
            Some(other) => return Err(DacError::Config(format!("`preset` must be a string, got {other}"))),
            None => value,
        };
        let cfg: DacConfig = merged.try_into().map_err(|e| DacError::Config(format!("{e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file (see [`from_toml_str`](Self::from_toml_str)); errors name the file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, DacError> {
        let text = std::fs::read_to_string(path).map_err(|e| DacError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| DacError::Config(format!("{}: {e}", path.display())))
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise: {e}"))
    }

    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), DacError> {
        let a = &self.algo;
        let o = &self.optim;
        let bad = |field: &str, why: &str| Err(DacError::Config(format!("{field}: {why}")));
        if !(0.0..=1.0).contains(&a.gamma) {
            return bad("algo.gamma", "must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&a.gae_lambda) {
            return bad("algo.gae_lambda", "must be in [0, 1]");
        }
        if !(a.clip_eps > 0.0 && a.clip_eps < 1.0) {
            return bad("algo.clip_eps", "must be in (0, 1)");
        }
        if a.ratio_guard.is_some_and(|g| g.is_nan() || g <= 1.0) {
            return bad("algo.ratio_guard", "must be > 1");
        }
        if a.value_clip.is_some_and(|c| c.is_nan() || c <= 0.0) {
            return bad("algo.value_clip", "must be > 0");
        }
        for (field, v) in [
            ("algo.value_coef", a.value_coef),
            ("algo.value_loss_scale", a.value_loss_scale),
            ("algo.kl_beta", a.kl_beta),
            ("algo.advantage_eps", a.advantage_eps),
        ] {
            if v.is_nan() || v < 0.0 {
                return bad(field, "must be ≥ 0");
            }
        }
        if !(0.0..=1.0).contains(&a.thought_coef) {
            return bad("algo.thought_coef", "must be in [0, 1]");
        }
        if a.logit_temperature.is_nan() || a.logit_temperature <= 0.0 {
            return bad("algo.logit_temperature", "must be > 0");
        }
        if a.ppo_epochs == 0 {
            return bad("algo.ppo_epochs", "must be ≥ 1");
        }
        if a.mini_batch_size == 0 {
            return bad("algo.mini_batch_size", "must be ≥ 1");
        }
        if a.grad_accum_steps == 0 {
            return bad("algo.grad_accum_steps", "must be ≥ 1");
        }
        if a.algorithm == Algorithm::Loop && a.loop_group_size < 2 {
            return bad("algo.loop_group_size", "leave-one-out needs K ≥ 2");
        }
        if !(o.lr_init > 0.0 && o.lr_end >= 0.0 && o.lr_end <= o.lr_init) {
            return bad("optim.lr_init/lr_end", "need 0 ≤ lr_end ≤ lr_init and lr_init > 0");
        }
        if o.lr_max_steps == 0 {
            return bad("optim.lr_max_steps", "must be ≥ 1");
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return bad("optim.beta1/beta2", "must be in [0, 1)");
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            return bad("optim.eps", "must be > 0");
        }
        if o.weight_decay.is_nan() || o.weight_decay < 0.0 {
            return bad("optim.weight_decay", "must be ≥ 0");
        }
        if o.max_grad_norm.is_some_and(|m| m.is_nan() || m <= 0.0) {
            return bad("optim.max_grad_norm", "must be > 0");
        }
        let r = &self.rollout;
        if r.num_envs == 0 || r.num_steps == 0 {
            return bad("rollout.num_envs/num_steps", "must be ≥ 1");
        }
        if a.algorithm == Algorithm::Loop && !r.num_envs.is_multiple_of(a.loop_group_size) {
            return bad("rollout.num_envs", "LOOP needs a multiple of algo.loop_group_size (K envs per task)");
        }
        Ok(())
    }
}

/// Overlays `over` on `base`, recursing into tables.
fn merge(base: toml::Value, over: toml::Value) -> toml::Value {
    match (base, over) {
        (toml::Value::Table(mut b), toml::Value::Table(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(bv) => merge(bv, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            toml::Value::Table(b)
        }
        (_, o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_validates_and_round_trips() {
        for (name, _) in PRESETS {
            let cfg = DacConfig::preset(name).unwrap();
            let text = cfg.to_toml_string();
            assert_eq!(DacConfig::from_toml_str(&text).unwrap(), cfg, "{name}");
        }
    }

    #[test]
    fn preset_with_overrides() {
        let cfg = DacConfig::from_toml_str("preset = \"vldac-paper\"\n[algo]\ngamma = 1.0\n").unwrap();
        assert_eq!(cfg.algo.gamma, 1.0);
        assert_eq!(cfg.algo.kl_beta, 0.05);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = DacConfig::from_toml_str("preset = \"vldac-paper\"\n[algo]\ngama = 1.0\n").unwrap_err();
        assert!(err.to_string().contains("gama"), "{err}");
        let err = DacConfig::from_toml_str("preset = \"nope\"").unwrap_err();
        assert!(err.to_string().contains("vldac-paper"), "{err}");
    }

    #[test]
    fn optional_fields_switch_off_with_inf() {
        let cfg = DacConfig::from_toml_str(
            "preset = \"vldac-official-miniworld\"\n[algo]\nratio_guard = inf\nvalue_clip = inf\n[optim]\nmax_grad_norm = inf\n",
        )
        .unwrap();
        assert_eq!(cfg.algo.ratio_guard, Some(f32::INFINITY));
        assert_eq!(cfg.optim.max_grad_norm, Some(f32::INFINITY));
    }

    #[test]
    fn bad_range_is_named() {
        let err = DacConfig::from_toml_str("preset = \"loop\"\n[algo]\nloop_group_size = 1\n").unwrap_err();
        assert!(err.to_string().contains("loop_group_size"), "{err}");
    }
}

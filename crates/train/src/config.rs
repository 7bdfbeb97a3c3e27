//! The training config: `[run]`, `[env]`, `[model]`, plus the algorithm's `preset`, `[algo]`,
//! `[optim]` and `[rollout]` (vldac-dac's `DacConfig`). Unknown keys are errors naming the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vldac_core::{InvalidActionPolicy, PromptVersion};
use vldac_dac::DacConfig;
use vldac_vlm::{DeviceChoice, LoraConfig, Precision};

use crate::overrides;

/// The config `cargo xtask train` runs with no arguments.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

fn default_true() -> bool {
    true
}
fn default_keep() -> usize {
    3
}
fn default_one() -> usize {
    1
}
fn default_nonfinite() -> usize {
    5
}
fn default_replica_check() -> usize {
    10
}
fn default_out() -> PathBuf {
    PathBuf::from("runs")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run name; the run directory is `out_dir/name`.
    pub name: String,
    /// Root seed: model init, environments, sampling and shuffling all derive from it.
    pub seed: u64,
    /// PPO iterations (each collects `rollout.num_envs × rollout.num_steps` env steps).
    pub iterations: usize,
    #[serde(default = "default_out")]
    pub out_dir: PathBuf,
    #[serde(default = "default_one")]
    pub checkpoint_every: usize,
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Stop (with a checkpoint) after this many iterations in a row whose update was skipped for
    /// a non-finite loss.
    #[serde(default = "default_nonfinite")]
    pub max_nonfinite_in_a_row: usize,
    /// Environment worker threads (0: one per env, capped at the core count).
    #[serde(default)]
    pub env_threads: usize,
    /// Greedy evaluation episodes (per env) before training and after the last iteration; 0 = off.
    #[serde(default)]
    pub eval_episodes: usize,
    #[serde(default = "default_true")]
    pub progress: bool,
    /// Where the model runs: `auto` (the first CUDA GPU when the binary has `cuda` and one is
    /// present, else `cpu`), `cpu`, `cuda[:N]`, `tch-cpu`, `tch-cuda[:N]` (`vldac train --device`).
    #[serde(default)]
    pub device: DeviceChoice,
    /// Data-parallel runs (`mpirun -np K`): compare a checksum of the trainable parameters
    /// across ranks every this many iterations (a mismatch stops the run); 0 = never.
    #[serde(default = "default_replica_check")]
    pub replica_check_every: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    #[default]
    Official,
    Compact,
    Minimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Environment id (`vldac env list`).
    pub id: String,
    /// Time limit (truncation); defaults to the environment's own.
    #[serde(default)]
    pub max_episode_steps: Option<usize>,
    /// Frames shown per prompt (VL-DAC's `max_image_obs_len`); defaults to the environment's.
    #[serde(default)]
    pub image_history: Option<usize>,
    #[serde(default)]
    pub prompt_version: PromptVersion,
    /// `official`: the environment's VL-DAC prompt text; `compact`: the action list, output format,
    /// task and env text (core's generic prompt); `minimal`: task and env text only (with a
    /// constrained reply the format needs no explanation), for tiny CPU models whose random
    /// attention would spread over hundreds of prompt tokens.
    #[serde(default)]
    pub prompt_style: PromptStyle,
    #[serde(default)]
    pub invalid_action: InvalidActionPolicy,
    /// Start fresh episodes at every iteration (episodes cut at the buffer end are bootstrapped
    /// from V). Makes checkpoints exact: a resumed run continues identically.
    #[serde(default = "default_true")]
    pub reset_each_iteration: bool,
}

/// Where the model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A small random model with the Qwen2-VL architecture and a byte-level tokenizer, built in
    /// code (no download).
    Tiny,
    /// A local HF Qwen2-VL directory (`config.json`, `tokenizer.json`, `model*.safetensors`),
    /// given by `path`.
    Dir,
}

/// The resolved model source.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    Tiny { hidden_size: usize, num_layers: usize },
    Dir { path: PathBuf },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn tiny_hidden() -> usize {
    64
}
fn tiny_layers() -> usize {
    2
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub source: SourceKind,
    /// Checkpoint directory (`source = "dir"`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Tiny model width and depth (`source = "tiny"`).
    #[serde(default = "tiny_hidden")]
    pub hidden_size: usize,
    #[serde(default = "tiny_layers")]
    pub num_layers: usize,
    /// Cap on image pixels after resizing (controls the number of image tokens).
    pub max_pixels: usize,
    pub lora: LoraConfig,
    /// Hidden widths of the value head (`[3072, 2048]` in the official code).
    pub value_head: Vec<usize>,
    /// Constrain replies to `{"action": "<label>"}` of the env's discrete actions.
    #[serde(default)]
    pub constrained: bool,
    /// With `constrained`: free thought tokens (letters and space) before the action, as in
    /// `{"thoughts": "...", "action": "<label>"}`; RL4VLM's λ weighs their log-probability.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub thought_tokens: usize,
    /// Precision of the frozen base weights: `f32`, `bf16` or `f16` (default: f32 on CPUs, bf16
    /// on GPUs). LoRA adapters and the value head are always f32 (`vldac train --dtype`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Precision>,
    /// Tiny model only: perception pretraining before RL (crate::perception), e.g.
    /// `perception = { steps = 300 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perception: Option<crate::perception::PerceptionConfig>,
}

impl ModelConfig {
    pub fn source(&self) -> Result<ModelSource, String> {
        match (self.source, &self.path) {
            (SourceKind::Tiny, _) => {
                Ok(ModelSource::Tiny { hidden_size: self.hidden_size, num_layers: self.num_layers })
            }
            (SourceKind::Dir, Some(path)) => Ok(ModelSource::Dir { path: path.clone() }),
            (SourceKind::Dir, None) => Err("model.path is required when model.source = \"dir\"".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub run: RunConfig,
    pub env: EnvConfig,
    pub model: ModelConfig,
    pub dac: DacConfig,
}

impl TrainConfig {
    /// Parses TOML text (from `origin`, for messages) with `--set` overrides.
    pub fn from_toml(text: &str, origin: &str, sets: &[String]) -> Result<Self, String> {
        let mut table: toml::Table = overrides::load(text, origin, sets)?;
        let mut take = |key: &str| table.remove(key).ok_or_else(|| format!("{origin}: missing section [{key}]"));
        let run: RunConfig = take("run")?.try_into().map_err(|e| format!("{origin}: [run]: {e}"))?;
        let env: EnvConfig = take("env")?.try_into().map_err(|e| format!("{origin}: [env]: {e}"))?;
        let model: ModelConfig = take("model")?.try_into().map_err(|e| format!("{origin}: [model]: {e}"))?;
        let rest = toml::to_string(&table).map_err(|e| format!("{origin}: {e}"))?;
        let mut dac = DacConfig::from_toml_str(&rest).map_err(|e| format!("{origin}: {e}"))?;
        // `algo.truncation = "official"` (the official presets): the episode-end rule of the
        // official VL-DAC wrapper for this environment's family (vldac-dac's README).
        dac.algo.resolve_episode_end_for_env(&env.id).map_err(|e| format!("{origin}: {e}"))?;
        let cfg = TrainConfig { run, env, model, dac };
        cfg.validate().map_err(|e| format!("{origin}: {e}"))?;
        Ok(cfg)
    }

    /// Reads a config file (errors name the file).
    pub fn from_file(path: &Path, sets: &[String]) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string(), sets)
    }

    /// The embedded default.
    pub fn default_config(sets: &[String]) -> Result<Self, String> {
        Self::from_toml(DEFAULT_CONFIG, "<embedded configs/default.toml>", sets)
    }

    fn validate(&self) -> Result<(), String> {
        if self.run.iterations == 0 {
            return Err("run.iterations must be > 0".into());
        }
        if self.model.max_pixels < 56 * 56 {
            return Err(format!("model.max_pixels must be >= 3136 (56x56), got {}", self.model.max_pixels));
        }
        self.model.source()?;
        // A tiny model keeps head_dim 16 (its mrope split) with one KV head per two query heads.
        if self.model.hidden_size == 0 || !self.model.hidden_size.is_multiple_of(32) {
            return Err(format!("model.hidden_size must be a positive multiple of 32, got {}", self.model.hidden_size));
        }
        if self.model.thought_tokens > 0 && !self.model.constrained {
            return Err(
                "model.thought_tokens needs model.constrained = true (free replies have their own thoughts)".into()
            );
        }
        if let Some(p) = &self.model.perception {
            p.validate()?;
            if self.model.source != SourceKind::Tiny {
                return Err("model.perception pretrains the tiny model: it needs model.source = \"tiny\"".into());
            }
            if !self.model.constrained {
                return Err("model.perception needs model.constrained = true (its anchor holds the action replies' \
                     probabilities)"
                    .into());
            }
        }
        if self.run.name.is_empty() || self.run.name.contains(['/', '\\']) {
            return Err(format!("run.name {:?} must be a plain file name", self.run.name));
        }
        Ok(())
    }

    /// The config as TOML (written next to the run's metrics).
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            run: &'a RunConfig,
            env: &'a EnvConfig,
            model: &'a ModelConfig,
            algo: &'a vldac_dac::AlgoConfig,
            optim: &'a vldac_dac::OptimConfig,
            rollout: &'a vldac_dac::RolloutConfig,
        }
        toml::to_string(&Out {
            run: &self.run,
            env: &self.env,
            model: &self.model,
            algo: &self.dac.algo,
            optim: &self.dac.optim,
            rollout: &self.dac.rollout,
        })
        .unwrap_or_default()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run.out_dir.join(&self.run.name)
    }
}

#[cfg(test)]
mod episode_end_tests {
    use super::TrainConfig;
    use vldac_dac::TruncationMode;

    #[test]
    fn official_presets_take_the_episode_end_rule_of_the_env_family() {
        for (env, want) in [
            ("MiniWorld-OneRoom-v0", TruncationMode::ZeroAdvantageTruncationWins),
            ("gym_cards/NumberLine-v0", TruncationMode::Terminate),
            ("ALFWorld-TW-v0", TruncationMode::Terminate),
            ("WebShop-v0", TruncationMode::Terminate),
        ] {
            for preset in ["vldac-official-miniworld", "vldac-official"] {
                let sets = vec![format!("preset={preset}"), format!("env.id={env}")];
                let cfg = TrainConfig::default_config(&sets).unwrap();
                assert_eq!(cfg.dac.algo.truncation, want, "{preset} on {env}");
            }
        }
        let paper = TrainConfig::default_config(&[]).unwrap();
        assert_eq!(paper.dac.algo.truncation, TruncationMode::Bootstrap, "the default is untouched");
        let err = TrainConfig::default_config(&["preset=vldac-official".into(), "env.id=BabyAI-GoToLocal-v0".into()])
            .unwrap_err();
        assert!(err.contains("algo.truncation"), "{err}");
        let explicit =
            ["preset=vldac-official".into(), "env.id=BabyAI-GoToLocal-v0".into(), "algo.truncation=bootstrap".into()];
        assert!(TrainConfig::default_config(&explicit).is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(sets: &[&str]) -> Result<TrainConfig, String> {
        TrainConfig::default_config(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn model_fields_are_checked_by_name() {
        assert_eq!(with(&["model.thought_tokens=4"]).map(|c| c.model.thought_tokens), Ok(4));
        let err = with(&["model.thought_tokens=4", "model.constrained=false"]).unwrap_err();
        assert!(err.contains("model.thought_tokens") && err.contains("model.constrained"), "{err}");
        assert_eq!(with(&["model.hidden_size=128"]).map(|c| c.model.hidden_size), Ok(128));
        let err = with(&["model.hidden_size=48"]).unwrap_err();
        assert!(err.contains("model.hidden_size") && err.contains("multiple of 32"), "{err}");
    }

    #[test]
    fn perception_needs_the_tiny_model_and_constrained_replies() {
        let c = with(&["model.constrained=true", "model.perception.steps=5"]).expect("valid");
        assert_eq!(c.model.perception.as_ref().map(|p| (p.steps, p.frames, p.anchor)), Some((5, 3000, 1.0)));
        // It survives the run's saved config.
        assert!(c.to_toml().contains("[model.perception]"), "{}", c.to_toml());
        let err = with(&["model.constrained=false", "model.perception.steps=5"]).unwrap_err();
        assert!(err.contains("model.perception") && err.contains("model.constrained"), "{err}");
        let err = with(&["model.constrained=true", "model.perception.steps=5", "model.source=dir", "model.path=/x"])
            .unwrap_err();
        assert!(err.contains("model.perception") && err.contains("tiny"), "{err}");
        let err = with(&["model.constrained=true", "model.perception.steps=0"]).unwrap_err();
        assert!(err.contains("model.perception.steps"), "{err}");
        let err = with(&["model.constrained=true", "model.perception.stpes=5"]).unwrap_err();
        assert!(err.contains("stpes"), "{err}");
    }
}

//! The training loop: batched rollouts in N environments, the VL-DAC (or RL4VLM / LOOP) update,
//! metrics, and checkpoints that a resumed run continues from exactly.
//!
//! One iteration:
//! 1. (with `env.reset_each_iteration`) reset every environment into a fresh episode;
//! 2. for `t < rollout.num_steps`: build each env's prompt (VL-DAC text + image history), generate
//!    replies for all envs in one batch (`act`: tokens, old log-probs, `V(s)`), score them under the
//!    frozen reference when β > 0, parse each reply into an action (invalid → the configured
//!    policy, counted), step all envs in parallel, and store the step; a truncated episode's final
//!    observation is valued for bootstrapping;
//! 3. close the buffer with `V` of the current observations and run `Dac::update`;
//! 4. write metrics (JSONL + TensorBoard) and, every `checkpoint_every` iterations, a checkpoint.
//!
//! Data-parallel (`mpirun -np K`, see [`crate::dist`]): `rollout.num_envs` stays the global
//! count; rank `r` builds and steps environments [`dist::share`]`(n, K, r)` with their global
//! indices (so their episode seeds and sampling streams are the one-process run's). After every
//! env step the ranks all-gather their step records, so each holds the global buffer; advantages
//! and their normalisation are computed on it identically everywhere, the update walks one global
//! shuffle with each rank evaluating its rows of every micro-batch, and the gradients are summed
//! across ranks before each optimiser step (`Dac::update_with`). Rank 0 alone writes.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use vldac_core::seed::episode_seed;
use vldac_core::wrappers::EpisodeRecord;
use vldac_core::{
    ActionSpace, Environment, EpisodeStats, ImageHistory, InvalidActionCounter, Observation, TimeLimit, VecEnv,
    decode_action,
};
use vldac_dac::{Dac, RolloutStorage, StepRecord, TextPolicy, UpdateStats, ValueHeadConfig};
use vldac_vlm::device::launcher_local_rank;
use vldac_vlm::{
    ChatMessage, ImageProcessor, Placement, Prompt, Qwen2Vl, Qwen2VlConfig, Qwen2VlTokenizer, apply_lora_seeded,
};

use crate::checkpoint::{Checkpoints, read_file};
use crate::config::{ModelSource, TrainConfig};
use crate::dist::{self, Collective, Single, Wire, WireReader};
use crate::grammar::ActionGrammar;
use crate::metrics::{MetricsWriter, Scalars};
use crate::perception::{self, PerceptionConfig};
use crate::policy::{PolicyObs, VlmPolicy};

/// Builds an environment by id (the binary passes its registry).
pub type EnvFactory = dyn Fn(&str) -> Result<Box<dyn Environment>>;

type Env = EpisodeStats<ImageHistory<TimeLimit<Box<dyn Environment>>>>;

/// What a checkpoint holds besides the model and the optimiser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    /// Iterations completed.
    iteration: u64,
    episode_counters: Vec<u64>,
    nonfinite_streak: usize,
    invalid: InvalidActionCounter,
    env_steps: u64,
}

/// Turns observations into model prompts.
struct Prompter {
    tokenizer: Qwen2VlTokenizer,
    processor: ImageProcessor,
    merge_size: usize,
    suffix: Vec<u32>,
    style: crate::config::PromptStyle,
}

impl Prompter {
    fn build(&self, env: &dyn Environment, obs: &Observation, version: vldac_core::PromptVersion) -> Result<PolicyObs> {
        let text = match self.style {
            crate::config::PromptStyle::Official => env.prompt_text(obs, version),
            crate::config::PromptStyle::Compact => vldac_core::prompt::generic(env.spec(), obs),
            crate::config::PromptStyle::Minimal => {
                format!("{}\n{}", obs.task, obs.text.as_deref().unwrap_or_default()).trim().to_string()
            }
        };
        let images: Vec<RgbImage> = obs.frames.iter().map(|f| f.to_image()).collect();
        let pixels = self.processor.preprocess(&images).map_err(|e| anyhow::anyhow!("image preprocessing: {e}"))?;
        let messages = [ChatMessage::user_with_images(images.len(), text)];
        let mut ids = self
            .tokenizer
            .encode_chat(&messages, &pixels.grids, self.merge_size, true)
            .map_err(|e| anyhow::anyhow!("prompt encoding: {e}"))?;
        ids.extend_from_slice(&self.suffix);
        Ok(PolicyObs { prompt: Prompt { ids, pixels: (!images.is_empty()).then_some(pixels) } })
    }
}

/// Summary of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub iterations: u64,
    /// Per iteration: mean success of the episodes that ended in it (NaN if none ended).
    pub success: Vec<f64>,
    pub returns: Vec<f64>,
    pub wall_s: f64,
}

pub struct Trainer {
    cfg: TrainConfig,
    placement: Placement,
    policy: VlmPolicy,
    dac: Dac<VlmPolicy>,
    venv: VecEnv<Env>,
    prompter: Prompter,
    space: ActionSpace,
    storage: RolloutStorage<PolicyObs>,
    state: TrainState,
    run_dir: PathBuf,
    checkpoints: Checkpoints,
    /// The run's processes ([`Single`] alone).
    comm: Rc<dyn Collective>,
    /// This rank's environments among the global `rollout.num_envs`.
    local: Range<usize>,
    /// What perception pretraining did (`None` without it, or when resumed).
    perception: Option<perception::PerceptionReport>,
}

/// Runs [`perception::pretrain`] on frames of `env`, anchoring every action reply the policy
/// can give (with a thought span: a fixed span of letters before each label).
fn pretrain_perception(
    model: Qwen2Vl,
    p: &PerceptionConfig,
    env: &mut dyn Environment,
    cfg: &TrainConfig,
    prompter: &Prompter,
    space: &ActionSpace,
) -> Result<(Qwen2Vl, perception::PerceptionReport)> {
    let ActionSpace::Discrete { labels, .. } = space else {
        bail!("model.perception needs a discrete action space; {} has free text", cfg.env.id);
    };
    let letters: Vec<char> = crate::grammar::THOUGHT_ALPHABET.chars().collect();
    let mut anchor_replies = Vec::with_capacity(labels.len());
    for (k, label) in labels.iter().enumerate() {
        let text = match cfg.model.thought_tokens {
            0 => format!("{label}\""),
            n => {
                let thought: String = (0..n).map(|i| letters[(k * 7 + i * 3) % letters.len()]).collect();
                format!("{thought}{}{label}\"", crate::grammar::THOUGHT_SEPARATOR)
            }
        };
        anchor_replies.push(prompter.tokenizer.encode(&text).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let version = cfg.env.prompt_version;
    let rl_prompt =
        |env: &dyn Environment, obs: &Observation| -> Result<Prompt> { Ok(prompter.build(env, obs, version)?.prompt) };
    let data = perception::PerceptionData {
        tokenizer: &prompter.tokenizer,
        processor: &prompter.processor,
        merge_size: prompter.merge_size,
        rl_prompt: &rl_prompt,
        anchor_replies,
    };
    perception::pretrain(model, p, env, model_seed(cfg.run.seed) ^ 0x7065_7263, &data)
}

fn model_seed(root: u64) -> u64 {
    episode_seed(root, usize::MAX, 0)
}

impl Trainer {
    /// Builds everything from a config; with `resume`, continues from the run directory's newest
    /// checkpoint.
    pub fn new(cfg: TrainConfig, make_env: &EnvFactory, resume: bool) -> Result<Self> {
        Self::new_in(cfg, make_env, resume, Rc::new(Single))
    }

    /// [`new`](Self::new) as one rank of the data-parallel run `comm` (every rank calls it with
    /// the same config).
    pub fn new_in(cfg: TrainConfig, make_env: &EnvFactory, resume: bool, comm: Rc<dyn Collective>) -> Result<Self> {
        // The device comes first: a device this binary cannot use fails before anything is built
        // or written. Rollouts run on `placement.device`, updates on its autodiff twin.
        let placement = vldac_vlm::device::resolve(cfg.run.device, cfg.model.dtype, launcher_local_rank())
            .map_err(|e| anyhow::anyhow!("run.device / model.dtype: {e}"))?;
        // A fresh run refuses a directory with checkpoints before building (or pretraining) anything.
        if !resume && comm.rank() == 0 && Checkpoints::new(cfg.run_dir().join("checkpoints"), 1).latest()?.is_some() {
            bail!(
                "{} already has checkpoints: pass --resume to continue it, or choose another run.name",
                cfg.run_dir().display()
            );
        }
        let dev = placement.device.clone().autodiff();
        dev.seed(model_seed(cfg.run.seed));
        let dtype = placement.dtype();
        let n = cfg.dac.rollout.num_envs;
        if n < comm.size() {
            bail!("rollout.num_envs = {n} is fewer than the {} ranks: every rank needs an environment", comm.size());
        }
        let local = dist::share(n, comm.size(), comm.rank());
        let mut envs: Vec<Env> = Vec::with_capacity(local.len());
        for _ in local.clone() {
            let base = make_env(&cfg.env.id)?;
            let limit = cfg.env.max_episode_steps.or(base.spec().max_episode_steps).unwrap_or(128);
            let history = cfg.env.image_history.unwrap_or(base.spec().max_image_obs_len);
            envs.push(EpisodeStats::new(ImageHistory::new(TimeLimit::new(base, limit), history)));
        }
        let space = envs[0].spec().action_space.clone();
        let group = if cfg.dac.algo.algorithm == vldac_dac::Algorithm::Loop { cfg.dac.algo.loop_group_size } else { 1 };
        let venv = VecEnv::new(envs, cfg.run.seed, cfg.run.env_threads)?
            .with_seed_groups(group)
            .with_index_offset(local.start);

        let (model, tokenizer, processor) = match &cfg.model.source().map_err(anyhow::Error::msg)? {
            ModelSource::Tiny { hidden_size, num_layers } => {
                // Heads grow with the width so head_dim stays the preset's 16 (its mrope split).
                let mut c = Qwen2VlConfig::tiny();
                c.text.hidden_size = *hidden_size;
                c.text.num_attention_heads = hidden_size / 16;
                c.text.num_key_value_heads = hidden_size / 32;
                c.text.intermediate_size = hidden_size * 2;
                c.text.num_hidden_layers = *num_layers;
                c.vision.hidden_size = *hidden_size;
                let model = Qwen2Vl::random_as(&c, model_seed(cfg.run.seed), &dev, dtype)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (model, Qwen2VlTokenizer::byte_level(), ImageProcessor::default())
            }
            ModelSource::Dir { path } => {
                let model = Qwen2Vl::from_dir_as(path, &dev, dtype)
                    .map_err(|e| anyhow::anyhow!("model {}: {e}", path.display()))?;
                let tok = Qwen2VlTokenizer::from_file(&path.join("tokenizer.json"))
                    .map_err(|e| anyhow::anyhow!("tokenizer {}: {e}", path.display()))?;
                let pp = path.join("preprocessor_config.json");
                let proc = if pp.exists() {
                    ImageProcessor::from_file(&pp).map_err(|e| anyhow::anyhow!("{}: {e}", pp.display()))?
                } else {
                    ImageProcessor::default()
                };
                (model, tok, proc)
            }
        };
        let processor = ImageProcessor { max_pixels: cfg.model.max_pixels, min_pixels: 56 * 56, ..processor };
        let hidden = model.config.text.hidden_size;
        let grammar = match (&space, cfg.model.constrained) {
            (ActionSpace::Discrete { labels, .. }, true) => Some(
                ActionGrammar::new(labels, |t| tokenizer.encode(t))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .with_thought(cfg.model.thought_tokens, |t| tokenizer.encode(t))
                    .map_err(|e| anyhow::anyhow!("model.thought_tokens: {e}"))?,
            ),
            (ActionSpace::Text, true) => {
                bail!("model.constrained needs a discrete action space; {} has free text", cfg.env.id)
            }
            _ => None,
        };
        let suffix = match &grammar {
            Some(g) => tokenizer.encode(g.reply_prefix()).map_err(|e| anyhow::anyhow!("{e}"))?,
            None => Vec::new(),
        };
        let prompter =
            Prompter { tokenizer: tokenizer.clone(), processor, merge_size: 2, suffix, style: cfg.env.prompt_style };
        let mut perception_report = None;
        let model = match (&cfg.model.perception, resume) {
            // A resumed run's checkpoint holds the pretrained weights.
            (Some(p), false) => {
                let base = make_env(&cfg.env.id)?;
                // The walks end where the training episodes do.
                let limit = cfg.env.max_episode_steps.or(base.spec().max_episode_steps).unwrap_or(128);
                let history = cfg.env.image_history.unwrap_or(base.spec().max_image_obs_len);
                let mut env = ImageHistory::new(TimeLimit::new(base, limit), history);
                let (model, report) = pretrain_perception(model, p, &mut env, &cfg, &prompter, &space)?;
                tracing::info!(
                    "perception pretraining: held-out balanced accuracy {:.3} -> {:.3}, anchor drift {:.4}, {:.0} s",
                    report.held_out_balanced_accuracy_before,
                    report.held_out_balanced_accuracy_after,
                    report.anchor_drift,
                    report.seconds
                );
                if comm.rank() == 0 {
                    let dir = cfg.run_dir();
                    let file = dir.join("perception.json");
                    let json = serde_json::to_vec_pretty(&report)?;
                    std::fs::create_dir_all(&dir)
                        .and_then(|_| std::fs::write(&file, json))
                        .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
                    // The adapter's base model: the pretrained weights, loadable as `model.source = "dir"`.
                    let base = dir.join("base");
                    model
                        .save_hf(&base, vldac_vlm::SaveDtype::F32)
                        .map_err(|e| anyhow::anyhow!("saving the pretrained model to {}: {e}", base.display()))?;
                    tokenizer
                        .inner
                        .save(base.join("tokenizer.json"), false)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", base.join("tokenizer.json").display()))?;
                }
                perception_report = Some(report);
                model
            }
            _ => model,
        };
        // Adapters and the value head are drawn on the host from the run's seed: the same
        // initial policy on every device.
        let model = apply_lora_seeded(model, &cfg.model.lora, model_seed(cfg.run.seed) ^ 0x4C6F_5241)
            .map_err(|e| anyhow::anyhow!("model.lora: {e}"))?;
        let value_head = ValueHeadConfig::new(hidden)
            .with_hidden(cfg.model.value_head.clone())
            .init_seeded(&dev, model_seed(cfg.run.seed) ^ 0x5661_6C75);
        let mut stop_tokens = vec![tokenizer.special.im_end, tokenizer.special.endoftext];
        for &t in &model.config.eos_token_ids {
            if !stop_tokens.contains(&t) {
                stop_tokens.push(t);
            }
        }
        let policy = VlmPolicy {
            pad_id: tokenizer.special.endoftext,
            model,
            value_head,
            grammar,
            stop_tokens,
            tokenizer: crate::policy::ReplyTokenizer(tokenizer.clone()),
            row_offset: local.start,
        };
        let dac = Dac::new(cfg.dac.clone(), cfg.run.seed)?;
        let storage = RolloutStorage::new(n, cfg.dac.rollout.num_steps)?;
        let run_dir = cfg.run_dir();
        let checkpoints = Checkpoints::new(run_dir.join("checkpoints"), cfg.run.keep_checkpoints);
        let state = TrainState {
            iteration: 0,
            episode_counters: vec![0; n],
            nonfinite_streak: 0,
            invalid: InvalidActionCounter::default(),
            env_steps: 0,
        };
        let mut me = Trainer {
            cfg,
            placement,
            policy,
            dac,
            venv,
            prompter,
            space,
            storage,
            state,
            run_dir,
            checkpoints,
            comm,
            local,
            perception: perception_report,
        };
        if resume {
            me.restore()?;
        }
        Ok(me)
    }

    fn restore(&mut self) -> Result<()> {
        // Rank 0 reads the checkpoint (only it writes them) and sends it to the others.
        let (mut state_bytes, mut bytes, mut optim) = (Vec::new(), Vec::new(), Vec::new());
        let mut found = self.checkpoints.root().display().to_string().into_bytes();
        if self.comm.rank() == 0 {
            let Some((_, dir)) = self.checkpoints.latest()? else {
                bail!("--resume: no checkpoint in {}", self.checkpoints.root().display());
            };
            state_bytes = read_file(&dir, "state.json").map_err(anyhow::Error::msg)?;
            bytes = read_file(&dir, "policy.bpk").map_err(anyhow::Error::msg)?;
            optim = read_file(&dir, "optimizer.bpk").map_err(anyhow::Error::msg)?;
            found = dir.display().to_string().into_bytes();
        }
        for buf in [&mut found, &mut state_bytes, &mut bytes, &mut optim] {
            self.comm.broadcast_bytes(0, buf)?;
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&found).into_owned());
        let state: TrainState =
            serde_json::from_slice(&state_bytes).with_context(|| format!("{}/state.json", dir.display()))?;
        let it = state.iteration;
        if state.episode_counters.len() != self.cfg.dac.rollout.num_envs {
            bail!(
                "{}/state.json has {} environments, the config rollout.num_envs = {}",
                dir.display(),
                state.episode_counters.len(),
                self.cfg.dac.rollout.num_envs
            );
        }
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| anyhow::anyhow!("{}/policy.bpk: {e}", dir.display()))?;
        self.policy = self.policy.clone().load_record(record);
        self.dac.load_optimizer_bytes(optim)?;
        self.dac.set_iteration(state.iteration as usize);
        self.venv.set_episode_counters(&state.episode_counters[self.local.clone()]);
        tracing::info!("resumed {} at iteration {it}", self.run_dir.display());
        self.state = state;
        Ok(())
    }

    /// Writes a checkpoint (rank 0; the others only contribute their episode counters).
    fn save_checkpoint(&mut self) -> Result<Option<PathBuf>> {
        self.state.episode_counters =
            self.gather(self.venv.episode_counters().to_vec(), |w, &c| w.u64(c), |r| r.u64())?;
        if self.comm.rank() != 0 {
            return Ok(None);
        }
        let policy = self
            .policy
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("serialising the policy: {e}"))?
            .to_vec();
        let files = vec![
            ("policy.bpk", policy),
            ("optimizer.bpk", self.dac.optimizer_bytes()?),
            ("state.json", serde_json::to_vec_pretty(&self.state)?),
            ("config.toml", self.cfg.to_toml().into_bytes()),
        ];
        Ok(Some(self.checkpoints.save(self.state.iteration, &files)?))
    }

    /// What perception pretraining did, when this run did it.
    pub fn perception_report(&self) -> Option<&perception::PerceptionReport> {
        self.perception.as_ref()
    }

    /// The run's processes.
    pub fn collective(&self) -> &dyn Collective {
        &*self.comm
    }

    /// Concatenates every rank's `mine` in rank order (rank order is environment order); alone,
    /// a copy.
    fn gather<T>(
        &self,
        mine: Vec<T>,
        put: impl Fn(&mut Wire, &T),
        get: impl Fn(&mut WireReader) -> Result<T>,
    ) -> Result<Vec<T>> {
        if self.comm.size() == 1 {
            return Ok(mine);
        }
        let mut w = Wire::default();
        w.u64(mine.len() as u64);
        for x in &mine {
            put(&mut w, x);
        }
        let mut out = Vec::new();
        for (rank, buf) in self.comm.all_gather_bytes(&w.buf)?.iter().enumerate() {
            let mut r = WireReader::new(buf, format!("data from rank {rank}"));
            let len = r.u64()?;
            for _ in 0..len {
                out.push(get(&mut r)?);
            }
        }
        Ok(out)
    }

    /// Compares a checksum of the trainable parameters across ranks; a mismatch is an error.
    fn check_replicas(&self, it: u64) -> Result<()> {
        let mine = crate::dist::param_checksum(&self.policy);
        let all = self.gather(vec![mine], |w, &c| w.u64(c), |r| r.u64())?;
        if let Some((rank, c)) = all.iter().enumerate().find(|(_, c)| **c != all[0]) {
            bail!(
                "replicas diverged after iteration {it}: rank {rank} has parameter checksum {c:#018x}, rank 0 {:#018x}",
                all[0]
            );
        }
        Ok(())
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The device and precision the run uses.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn policy(&self) -> &VlmPolicy {
        &self.policy
    }

    /// This rank's environments (all of them alone).
    pub fn local_envs(&self) -> Range<usize> {
        self.local.clone()
    }

    fn prompts(&self, obs: &[Observation]) -> Result<Vec<PolicyObs>> {
        let version = self.cfg.env.prompt_version;
        obs.iter().zip(self.venv.envs()).map(|(o, env)| self.prompter.build(env, o, version)).collect()
    }

    /// Runs the remaining iterations. `on_iteration` sees each iteration's metrics.
    pub fn train(&mut self, mut on_iteration: impl FnMut(u64, &Scalars)) -> Result<RunSummary> {
        let start = Instant::now();
        let lead = self.comm.rank() == 0;
        let mut metrics = None;
        if lead {
            std::fs::create_dir_all(&self.run_dir).with_context(|| format!("creating {}", self.run_dir.display()))?;
            std::fs::write(self.run_dir.join("config.toml"), self.cfg.to_toml())?;
            metrics = Some(
                MetricsWriter::open(&self.run_dir, Some(self.state.iteration))
                    .with_context(|| format!("opening metrics in {}", self.run_dir.display()))?,
            );
        }
        let mut summary =
            RunSummary { run_dir: self.run_dir.clone(), iterations: 0, success: vec![], returns: vec![], wall_s: 0.0 };
        let mut obs: Vec<Observation> = Vec::new();
        while (self.state.iteration as usize) < self.cfg.run.iterations {
            let it = self.state.iteration;
            let t0 = Instant::now();
            if self.cfg.env.reset_each_iteration || obs.is_empty() {
                obs = self.venv.reset()?.into_iter().map(|(o, _)| o).collect();
                self.storage.mark_all_episode_starts();
            }
            let (scalars, next_obs) = self.iteration(it, obs)?;
            obs = next_obs;
            let mut scalars = scalars;
            scalars.insert("time/iteration_s".into(), t0.elapsed().as_secs_f64());
            if let Some(m) = metrics.as_mut() {
                m.write(it, &scalars)?;
            }
            summary.success.push(scalars.get("episode/success").copied().unwrap_or(f64::NAN));
            summary.returns.push(scalars.get("episode/return").copied().unwrap_or(f64::NAN));
            on_iteration(it, &scalars);
            self.state.iteration += 1;
            let every = self.cfg.run.replica_check_every;
            if self.comm.size() > 1 && every > 0 && self.state.iteration.is_multiple_of(every as u64) {
                self.check_replicas(it)?;
            }
            let nonfinite = scalars.get("update/all_skipped").copied().unwrap_or(0.0) > 0.0;
            self.state.nonfinite_streak = if nonfinite { self.state.nonfinite_streak + 1 } else { 0 };
            let last = self.state.iteration as usize == self.cfg.run.iterations;
            if last || (self.state.iteration as usize).is_multiple_of(self.cfg.run.checkpoint_every.max(1)) || nonfinite
            {
                self.save_checkpoint()?;
            }
            if self.state.nonfinite_streak >= self.cfg.run.max_nonfinite_in_a_row {
                bail!(
                    "stopping: the loss was NaN/inf in every micro-batch for {} iterations in a row (last: {}); \
                     a checkpoint was written to {}",
                    self.state.nonfinite_streak,
                    it,
                    self.checkpoints.root().display()
                );
            }
        }
        summary.iterations = self.state.iteration;
        summary.wall_s = start.elapsed().as_secs_f64();
        if !lead {
            return Ok(summary);
        }
        // The trained LoRA adapters in PEFT's format (loadable by HF peft and `vldac eval run --adapter`).
        let base = match &self.cfg.model.source {
            crate::config::SourceKind::Dir => {
                self.cfg.model.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            }
            crate::config::SourceKind::Tiny => "vldac-tiny-random".to_string(),
        };
        let base =
            if self.cfg.model.perception.is_some() { self.run_dir.join("base").display().to_string() } else { base };
        let adapter_dir = self.run_dir.join("adapter");
        vldac_vlm::save_peft_adapter(&self.policy.model, &self.cfg.model.lora, &adapter_dir, &base)
            .map_err(|e| anyhow::anyhow!("writing the PEFT adapter to {}: {e}", adapter_dir.display()))?;
        Ok(summary)
    }

    /// Collects one buffer and updates. Returns the metrics and the observations to act on next
    /// (of this rank's environments).
    fn iteration(&mut self, it: u64, mut obs: Vec<Observation>) -> Result<(Scalars, Vec<Observation>)> {
        let n = self.cfg.dac.rollout.num_envs;
        let local = self.venv.len();
        let steps = self.cfg.dac.rollout.num_steps;
        let score = self.dac.score_config();
        let mut episodes: Vec<EpisodeRecord> = Vec::new();
        let mut invalid = InvalidActionCounter::default();
        let mut tokens_generated = 0usize;
        let t_roll = Instant::now();
        // Rollouts run on the inner (non-autodiff) device: no graph is recorded for inference.
        let infer = self.policy.valid();
        for t in 0..steps {
            let step_seed = episode_seed(self.cfg.run.seed, t, it);
            let prompts = self.prompts(&obs)?;
            let refs: Vec<&PolicyObs> = prompts.iter().collect();
            let gens = infer.act(&refs, &self.dac.sample_config(step_seed), &score)?;
            let token_refs: Vec<&[u32]> = gens.iter().map(|g| g.tokens.as_slice()).collect();
            let empty_reply = token_refs.iter().any(|t| t.is_empty());
            let ref_lp = if self.dac.needs_reference() && !empty_reply {
                infer.reference_log_probs(&refs, &token_refs, &score)?
            } else {
                gens.iter()
                    .map(|g| if self.dac.needs_reference() { vec![0.0; g.tokens.len()] } else { vec![] })
                    .collect()
            };
            // Replies are decoded in global environment order with one stream (an invalid reply
            // may draw a random action), so every rank decodes all of them and keeps its own.
            let my_texts: Vec<String> = gens.iter().map(|g| g.text.clone()).collect();
            let texts = self.gather(my_texts, |w, x| w.bytes(x.as_bytes()), |r| Ok(String::from_utf8(r.bytes()?)?))?;
            let mut rng = ChaCha8Rng::seed_from_u64(step_seed);
            let mut actions = Vec::with_capacity(n);
            let mut penalties = Vec::with_capacity(n);
            for text in &texts {
                let d = decode_action(text, &self.space, &self.cfg.env.invalid_action, &mut rng);
                invalid.record(&d);
                penalties.push(if d.is_valid() { 0.0 } else { self.cfg.env.invalid_action.reward_offset() });
                actions.push(d.action);
            }
            tokens_generated += gens.iter().map(|g| g.tokens.len()).sum::<usize>();
            let seeds = self.venv.current_seeds().to_vec();
            let vstep = self.venv.step(&actions[self.local.clone()])?;
            // Bootstrap values of truncated episodes, from their final (pre-reset) observation
            // (read only by `algo.truncation = "bootstrap"`; the official episode-end rules never do).
            let mut final_values = vec![None; local];
            let bootstrap = self.cfg.dac.algo.truncation.needs_final_value();
            let trunc: Vec<usize> =
                (0..local).filter(|&i| bootstrap && vstep.truncated[i] && !vstep.terminated[i]).collect();
            if !trunc.is_empty() {
                let mut fin = Vec::with_capacity(trunc.len());
                for &i in &trunc {
                    let o = vstep.final_obs[i].as_ref().context("a truncated episode without its final observation")?;
                    fin.push(self.prompter.build(&self.venv.envs()[i], o, self.cfg.env.prompt_version)?);
                }
                let fin_refs: Vec<&PolicyObs> = fin.iter().collect();
                for (k, v) in infer.values(&fin_refs)?.into_iter().enumerate() {
                    final_values[trunc[k]] = Some(v);
                }
            }
            let mut records = Vec::with_capacity(local);
            let mut my_episodes = Vec::new();
            for (i, (g, lp_ref)) in gens.into_iter().zip(ref_lp).enumerate() {
                if let Some(rec) = EpisodeRecord::from_info(&vstep.infos[i]) {
                    my_episodes.push(rec);
                }
                records.push(StepRecord {
                    obs: prompts[i].clone(),
                    tokens: g.tokens,
                    log_probs: g.log_probs,
                    ref_log_probs: lp_ref,
                    action_start: g.action_start,
                    value: g.value,
                    reward: (vstep.rewards[i] + penalties[self.local.start + i]) as f32,
                    terminated: vstep.terminated[i],
                    truncated: vstep.truncated[i],
                    final_value: final_values[i],
                    task: seeds[i],
                });
            }
            // Every rank stores the global step (its own records and the others'), in env order.
            episodes.extend(self.gather(my_episodes, put_episode, get_episode)?);
            self.storage.insert(self.gather(records, put_record, get_record)?)?;
            self.state.env_steps += n as u64;
            obs = vstep.obs;
        }
        let rollout_s = t_roll.elapsed().as_secs_f64();
        let prompts = self.prompts(&obs)?;
        let refs: Vec<&PolicyObs> = prompts.iter().collect();
        let next_values = self.gather(infer.values(&refs)?, |w, &v| w.f64(v as f64), |r| Ok(r.f64()? as f32))?;
        self.storage.finish(next_values)?;
        drop(infer);
        let values: Vec<f64> = self.storage.records().iter().map(|r| r.value as f64).collect();
        let t_upd = Instant::now();
        let stats = if self.comm.size() == 1 {
            self.dac.update(&mut self.policy, &mut self.storage)?
        } else {
            self.dac.update_with(&mut self.policy, &mut self.storage, &mut dist::RankSync(&*self.comm))?
        };
        let update_s = t_upd.elapsed().as_secs_f64();
        self.storage.after_update();
        self.state.invalid.total += invalid.total;
        self.state.invalid.invalid += invalid.invalid;
        if self.comm.size() > 1 {
            let mut t = [tokens_generated as f64];
            self.comm.all_reduce_sum_f64(&mut t)?;
            tokens_generated = t[0] as usize;
        }
        Ok((self.scalars(&episodes, &invalid, &stats, &values, rollout_s, update_s, tokens_generated), obs))
    }

    #[allow(clippy::too_many_arguments)]
    fn scalars(
        &self,
        episodes: &[EpisodeRecord],
        invalid: &InvalidActionCounter,
        stats: &UpdateStats,
        values: &[f64],
        rollout_s: f64,
        update_s: f64,
        tokens: usize,
    ) -> Scalars {
        let mean = |xs: &[f64]| if xs.is_empty() { f64::NAN } else { xs.iter().sum::<f64>() / xs.len() as f64 };
        let rets: Vec<f64> = episodes.iter().map(|e| e.r).collect();
        let lens: Vec<f64> = episodes.iter().map(|e| e.l as f64).collect();
        let succ: Vec<f64> = episodes.iter().map(|e| f64::from(u8::from(e.success))).collect();
        let vmean = mean(values);
        let vstd = (values.iter().map(|v| (v - vmean).powi(2)).sum::<f64>() / values.len().max(1) as f64).sqrt();
        let env_steps = (self.cfg.dac.rollout.num_envs * self.cfg.dac.rollout.num_steps) as f64;
        let mut s = Scalars::new();
        for (k, v) in [
            ("episode/return", mean(&rets)),
            ("episode/success", mean(&succ)),
            ("episode/length", mean(&lens)),
            ("episode/count", episodes.len() as f64),
            ("rollout/invalid_action_rate", invalid.rate()),
            ("rollout/env_steps_per_s", env_steps / rollout_s.max(1e-9)),
            ("rollout/tokens_per_s", tokens as f64 / rollout_s.max(1e-9)),
            ("rollout/env_steps_total", self.state.env_steps as f64),
            ("loss/policy", stats.policy_loss),
            ("loss/value", stats.value_loss),
            ("loss/kl", stats.kl),
            ("update/clip_fraction", stats.clip_fraction),
            ("update/approx_kl", stats.approx_kl),
            ("update/grad_norm", stats.grad_norm),
            ("update/lr", stats.lr),
            ("update/value_only", f64::from(u8::from(stats.value_only))),
            ("update/skipped_non_finite", stats.skipped_non_finite as f64),
            ("update/all_skipped", f64::from(u8::from(stats.micro_batches == 0 && stats.skipped_non_finite > 0))),
            ("update/seconds", update_s),
            ("value/mean", vmean),
            ("value/std", vstd),
            ("advantage/raw_mean", stats.advantages.raw_mean as f64),
            ("advantage/raw_std", stats.advantages.raw_std as f64),
        ] {
            s.insert(k.to_string(), v);
        }
        s
    }
}

fn put_episode(w: &mut Wire, e: &EpisodeRecord) {
    w.f64(e.r);
    w.u64(e.l as u64);
    w.u64(u64::from(e.success) | u64::from(e.truncated) << 1);
}

fn get_episode(r: &mut WireReader) -> Result<EpisodeRecord> {
    let (ret, l, flags) = (r.f64()?, r.u64()? as usize, r.u64()?);
    Ok(EpisodeRecord { r: ret, l, success: flags & 1 != 0, truncated: flags & 2 != 0 })
}

fn put_opt(w: &mut Wire, x: Option<u64>) {
    w.u64(u64::from(x.is_some()));
    w.u64(x.unwrap_or(0));
}

fn get_opt(r: &mut WireReader) -> Result<Option<u64>> {
    let (some, x) = (r.u64()?, r.u64()?);
    Ok((some != 0).then_some(x))
}

/// A step record on the wire (its prompt ids and pixels included: every rank holds the global
/// buffer to evaluate any row of the global shuffle).
fn put_record(w: &mut Wire, rec: &StepRecord<PolicyObs>) {
    let p = &rec.obs.prompt;
    w.u32s(&p.ids);
    put_opt(w, p.pixels.as_ref().map(|_| 0));
    if let Some(px) = &p.pixels {
        w.f32s(&px.data);
        w.u64(px.patch_dim as u64);
        w.u64(px.grids.len() as u64);
        for g in &px.grids {
            g.iter().for_each(|&x| w.u64(x as u64));
        }
    }
    w.u32s(&rec.tokens);
    w.f32s(&rec.log_probs);
    w.f32s(&rec.ref_log_probs);
    put_opt(w, rec.action_start.map(|x| x as u64));
    w.f32s(&[rec.value, rec.reward]);
    w.u64(u64::from(rec.terminated) | u64::from(rec.truncated) << 1);
    put_opt(w, rec.final_value.map(|v| v.to_bits() as u64));
    w.u64(rec.task);
}

fn get_record(r: &mut WireReader) -> Result<StepRecord<PolicyObs>> {
    let ids = r.u32s()?;
    let pixels = match get_opt(r)? {
        None => None,
        Some(_) => {
            let data = r.f32s()?;
            let patch_dim = r.u64()? as usize;
            let n = r.u64()? as usize;
            let mut grids = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                grids.push([r.u64()? as usize, r.u64()? as usize, r.u64()? as usize]);
            }
            Some(vldac_vlm::PixelValues { data, patch_dim, grids })
        }
    };
    let tokens = r.u32s()?;
    let log_probs = r.f32s()?;
    let ref_log_probs = r.f32s()?;
    let action_start = get_opt(r)?.map(|x| x as usize);
    let vr = r.f32s()?;
    let [value, reward] = vr[..] else { bail!("a step record with {} value/reward entries", vr.len()) };
    let flags = r.u64()?;
    let final_value = get_opt(r)?.map(|b| f32::from_bits(b as u32));
    let task = r.u64()?;
    Ok(StepRecord {
        obs: PolicyObs { prompt: Prompt { ids, pixels } },
        tokens,
        log_probs,
        ref_log_probs,
        action_start,
        value,
        reward,
        terminated: flags & 1 != 0,
        truncated: flags & 2 != 0,
        final_value,
        task,
    })
}

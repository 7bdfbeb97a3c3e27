//! # vldac-dac
//!
//! VL-DAC (Vision-Language Decoupled Actor-Critic, arXiv 2508.04280) for any policy that emits
//! text actions, with the RL4VLM and LOOP baselines in the same loop:
//!
//! * [`TextPolicy`]: the model contract (generate with old log-probs and value; score given tokens
//!   with gradients; reference log-probs with adapters off; values);
//! * [`RolloutStorage`]: `N` environments × `T` steps of text actions, termination ≠ truncation;
//! * [`gae`]: GAE(γ, λ), normalisation, leave-one-out;
//! * [`loss`]: token-level clipped PPO with a step-level advantage, k3 KL, value loss;
//! * [`Dac`]: one iteration of updates (epochs, micro-batches, accumulation, global-norm clip,
//!   cosine schedule, warm-up);
//! * [`DacConfig`]: serde configs and named presets (paper Table 6 vs the official YAML);
//! * [`ValueHead`]: the step-level critic MLP with a stop-gradient input;
//! * [`toy`]: a corridor task and a tiny LoRA-shaped policy (tests, benches, example).
//!
//! A trainer's loop:
//! ```text
//! let mut dac = Dac::new(DacConfig::preset("vldac-paper")?, seed)?;
//! loop {
//!     for t in 0..T { policy.act(..) → env.step(..) → storage.insert(records) }
//!     storage.finish(policy.values(current_obs)?)?;
//!     let stats = dac.update(&mut policy, &mut storage)?;
//!     storage.after_update();
//! }
//! ```

pub mod config;
pub mod error;
pub mod gae;
pub mod loss;
pub mod optim;
pub mod policy;
pub mod schedule;
pub mod storage;
pub mod toy;
pub mod update;
pub mod value_head;

pub use config::{
    AlgoConfig, Algorithm, DacConfig, EnvFamily, OptimConfig, OptimizerKind, PRESETS, RolloutConfig, TokenSelection,
    TruncationMode,
};
pub use error::{DacError, PolicyError};
pub use policy::{Generation, SampleConfig, ScoreConfig, Scored, TextPolicy};
pub use storage::{AdvantageStats, RolloutStorage, StepRecord};
pub use update::{Dac, UpdateStats};
pub use value_head::{ValueHead, ValueHeadConfig};

//! # vldac-core
//!
//! The contracts every vldac crate shares, and nothing that knows about tensors:
//!
//! * [`Environment`]: gymnasium semantics (`reset(seed)`, `step` → obs, reward, `terminated`,
//!   `truncated`, info), implemented by the MiniWorld, Gym-Cards and text-environment crates;
//! * [`Observation`] / [`Frame`] / [`Prompt`]: what a VLM prompt is built from, and
//!   [`prompt`]: VL-DAC's prompt texts per environment and version;
//! * [`ActionSpace`] and [`parse`]: a real parser for model replies (no `eval`), with the
//!   invalid-action policy and counter ([`decode_action`]);
//! * [`wrappers`]: time limit, image history and episode statistics;
//! * [`VecEnv`]: N environments on worker threads with reproducible per-episode seeds and
//!   auto-reset that keeps the final observation for bootstrapping.
//!
//! With the `burn-rl` feature, [`burn_rl::BurnRlEnv`] adapts any environment to burn's own RL trait.

pub mod env;
pub mod obs;
pub mod parse;
pub mod prompt;
pub mod rng;
pub mod seed;
pub mod space;
pub mod vec_env;
pub mod wrappers;

#[cfg(feature = "burn-rl")]
pub mod burn_rl;

pub use env::{EnvError, EnvSpec, Environment, Step, build_prompt};
pub use obs::{Frame, Info, Observation, Prompt};
pub use parse::{ParseError, Response, Value, parse_response};
pub use prompt::PromptVersion;
pub use space::{Action, ActionNaming, ActionSpace, Decoded, InvalidActionCounter, InvalidActionPolicy, decode_action};
pub use vec_env::{VecEnv, VecEnvError, VecStep};
pub use wrappers::{EpisodeRecord, EpisodeStats, ImageHistory, TimeLimit};

//! # vldac-babyai
//!
//! Native BabyAI and BabyAI-Text, as BALROG evaluates them:
//!
//! * a MiniGrid engine subset ([`world`], [`grid`]): grid, walls/doors/keys/balls/boxes, the
//!   seven actions, the 7×7 egocentric view with MiniGrid's occlusion sweep, step counting,
//!   reward `1 - 0.9 * step_count / max_steps`, gymnasium termination/truncation, and numpy's
//!   PCG64 generator ([`rng`]) so a seed builds the peer's level;
//! * BabyAI's room grid, Baby Language ([`instr`]: GoTo, Pickup, Open, PutNext, before/after/and,
//!   surfaces and the verifier) and levels ([`levels`]), including BabyAI-Text's
//!   `MixedTrainLocal` with BALROG's per-task filter;
//! * BALROG's text observation and prompt ([`text`]), and MiniGrid-style frames ([`render`]).
//!
//! [`make`] builds any registered id as a [`vldac_core::Environment`].

pub mod env;
pub mod grid;
pub mod instr;
pub mod levels;
pub mod registry;
pub mod render;
pub mod replay;
pub mod rng;
pub mod text;
pub mod world;

pub use env::{BabyAi, LevelChoice, Outcome};
pub use levels::{Level, MixedTask};
pub use registry::{ids, is_babyai_id, make, render};
pub use replay::replay;
pub use text::{BALROG_ACTIONS, BALROG_DEFAULT_ACTION, balrog_context, balrog_instruction_prompt};
pub use world::Action;

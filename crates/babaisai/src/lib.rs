//! # vldac-babaisai
//!
//! Baba Is AI (Cloos et al., 2024; `nacloos/baba-is-ai`) as BALROG evaluates it, in Rust:
//!
//! * [`engine`]: the rules engine — stacked tiles, rules read from `noun is property|noun`
//!   word lines (horizontal and vertical), you/move objects, push chains, pull, stop, win,
//!   defeat, open/shut and `noun is noun` transformations, with the peer's reward
//!   `1 - 0.9 * steps / max_steps` on a win;
//! * [`levels`] + [`tasks`]: the generators of BALROG's 40 tasks, drawing from NumPy's legacy
//!   generator ([`vldac_core::rng::RandomState`]) in the peer's order, so a seed gives the
//!   peer's level;
//! * [`text`]: BALROG's text observation and [`balrog_instruction_prompt`];
//! * [`render`]: a procedural RGB frame;
//! * [`BabaIsAi`]: a task as a [`vldac_core::Environment`], with BALROG's labelled actions
//!   `idle, up, right, down, left`.
//!
//! Ids are `BabaIsAI-<peer name>-v0` (`BabaIsAI-two_room-break_stop-make_win-v0`); [`make`]
//! also accepts the peer's `env/<name>` as BALROG's config lists them ([`BALROG_TASKS`]).

pub mod engine;
pub mod env;
pub mod levels;
pub mod render;
pub mod replay;
pub mod tasks;
pub mod text;

pub use env::{BabaIsAi, Config};
pub use replay::{ReplayError, replay};
pub use tasks::{BALROG_TASKS, TASKS, Task, id_for_balrog_task, ids};
pub use text::balrog_instruction_prompt;

use vldac_core::EnvError;

/// Whether `id` names a Baba Is AI task (ours or the peer's `env/...` name).
pub fn is_babaisai_id(id: &str) -> bool {
    tasks::find(id).is_some()
}

/// Builds a task with the default [`Config`] (100 steps, 32-pixel tiles, BALROG's reset when
/// no object is "you").
pub fn make(id: &str) -> Result<Box<dyn vldac_core::Environment>, EnvError> {
    Ok(Box::new(BabaIsAi::from_id(id, Config::default())?))
}

//! `BabyAi`: a level + the engine + the verifier behind `vldac_core::Environment`, with
//! BALROG's BabyAI-Text observation (descriptions as text, POV frame, mission as task).

use serde_json::json;
use vldac_core::prompt::PromptVersion;
use vldac_core::{Action as CoreAction, ActionSpace, EnvError, EnvSpec, Environment, Frame, Info, Observation, Step};

use crate::grid::Obj;
use crate::instr::{Instr, Status};
use crate::levels::{Level, MixedTask};
use crate::render::TileRenderer;
use crate::rng::NpRandom;
use crate::text::{self, BALROG_ACTIONS};
use crate::world::{Action, World};

/// Pixels per cell of the observation frame (BALROG renders `get_pov_render(tile_size=16)`).
pub const FRAME_TILE: u32 = 16;

/// What one engine step produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub status: Status,
}

/// Which level an episode uses.
#[derive(Debug, Clone, PartialEq)]
pub enum LevelChoice {
    Fixed(Level),
    /// One of the five MixedTrainLocal (or, with `test`, MixedTestLocal) tasks per episode,
    /// drawn from a separate stream.
    MixedTrainLocal {
        num_dists: usize,
        test: bool,
    },
}

/// A BabyAI environment.
pub struct BabyAi {
    spec: EnvSpec,
    choice: LevelChoice,
    level: Level,
    world: World,
    instr: Instr,
    mission: String,
    /// Picks the task per episode for the mixed id (kept apart from the level's generator).
    task_rng: NpRandom,
    renderer: TileRenderer,
    tile_size: u32,
    started: bool,
    done: bool,
}

fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish() & 0xffff_ffff
}

impl BabyAi {
    pub fn new(id: impl Into<String>, choice: LevelChoice) -> BabyAi {
        let level = match &choice {
            LevelChoice::Fixed(l) => l.clone(),
            LevelChoice::MixedTrainLocal { num_dists, .. } => {
                Level::MixedTrainLocal { task: MixedTask::GoTo, num_dists: *num_dists }
            }
        };
        let (rs, nr, nc) = level.layout();
        let seed = entropy_seed();
        BabyAi {
            spec: EnvSpec {
                id: id.into(),
                action_space: ActionSpace::labelled(BALROG_ACTIONS),
                // The env truncates itself at `info["max_steps"]`; this is that limit when known
                // in advance (every MixedTrainLocal task; 128 for the mixed ids).
                max_episode_steps: match &choice {
                    LevelChoice::Fixed(l) => l.known_max_steps(),
                    LevelChoice::MixedTrainLocal { .. } => Some(128),
                },
                max_image_obs_len: 1,
            },
            choice,
            world: World::new(rs, nr, nc, NpRandom::new(seed)),
            level,
            instr: Instr::goto(crate::instr::ObjDesc::new(None, None, None)),
            mission: String::new(),
            task_rng: NpRandom::new(seed ^ 0x9e37_79b9),
            renderer: TileRenderer::new(),
            tile_size: FRAME_TILE,
            started: false,
            done: false,
        }
    }

    /// Pixels per cell of the frame (default 16, BALROG's).
    pub fn with_tile_size(mut self, tile_size: u32) -> Self {
        self.tile_size = tile_size.clamp(1, 256);
        self
    }

    /// Generates a new episode (gymnasium `reset`): `Some(seed)` reseeds the level's numpy
    /// generator, `None` continues it.
    pub fn reset_episode(&mut self, seed: Option<u64>) {
        let rng = match seed {
            Some(s) => {
                self.task_rng = NpRandom::new(s ^ 0x9e37_79b9);
                NpRandom::new(s)
            }
            None => self.world.rng.clone(),
        };
        if let LevelChoice::MixedTrainLocal { num_dists, test } = self.choice {
            let task = MixedTask::ALL[self.task_rng.integers(0, 5) as usize];
            self.level = if test {
                Level::MixedTestLocal { task, num_dists }
            } else {
                Level::MixedTrainLocal { task, num_dists }
            };
        }
        let (rs, nr, nc) = self.level.layout();
        self.world = World::new(rs, nr, nc, rng);
        let (instr, mission) = self.level.generate(&mut self.world);
        self.instr = instr;
        self.mission = mission;
        self.world.carrying = None;
        self.world.step_count = 0;
        self.instr.reset_verifier(&self.world);
        let (rs, nr, nc) = (rs as usize, nr as usize, nc as usize);
        self.world.max_steps = self.level.fixed_max_steps().unwrap_or(self.instr.num_navs() * rs * rs * nr * nc);
        self.started = true;
        self.done = false;
    }

    /// One MiniGrid step with any of the seven actions (RoomGridLevel semantics).
    pub fn step_action(&mut self, action: Action) -> Outcome {
        let (mut reward, mut terminated, truncated) = self.world.apply(action);
        if action == Action::Drop {
            self.instr.update_objs_poss(&self.world);
        }
        let status = self.instr.verify(&self.world, action);
        match status {
            Status::Success => {
                terminated = true;
                reward = self.world.success_reward();
            }
            Status::Failure => {
                terminated = true;
                reward = 0.0;
            }
            Status::Continue => {}
        }
        self.done = terminated || truncated;
        Outcome { reward, terminated, truncated, status }
    }

    pub fn mission(&self) -> &str {
        &self.mission
    }

    pub fn level(&self) -> &Level {
        &self.level
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn instr(&self) -> &Instr {
        &self.instr
    }

    pub fn carrying(&self) -> Option<Obj> {
        self.world.carrying
    }

    /// BabyAI-Text's descriptions of the current view.
    pub fn descriptions(&self) -> Vec<String> {
        text::descriptions(&self.world.view(), self.world.carrying)
    }

    /// The egocentric view frame (`get_pov_render(tile_size)`).
    pub fn render_pov(&mut self) -> Frame {
        let (w, h, px) = self.renderer.render_view(&self.world.view(), self.tile_size);
        Frame::new(w, h, px).unwrap_or_else(|_| Frame::filled(w, h, [0, 0, 0]))
    }

    /// The whole level seen from above, the agent's field of view highlighted.
    pub fn render_full(&mut self) -> Frame {
        let w = &self.world;
        let (f, r) = {
            let (fx, fy) = crate::grid::DIR_TO_VEC[w.agent_dir as usize];
            ((fx, fy), (-fy, fx))
        };
        let view = w.view();
        let (sz, hs) = (crate::grid::VIEW as i32, crate::grid::VIEW as i32 / 2);
        let tl = (w.agent_pos.0 + f.0 * (sz - 1) - r.0 * hs, w.agent_pos.1 + f.1 * (sz - 1) - r.1 * hs);
        let mut lit = vec![false; (w.width() * w.height()) as usize];
        for vy in 0..sz {
            for vx in 0..sz {
                if !view.visible[vx as usize][vy as usize] {
                    continue;
                }
                let (x, y) = (tl.0 - f.0 * vy + r.0 * vx, tl.1 - f.1 * vy + r.1 * vx);
                if w.grid.in_bounds(x, y) {
                    lit[(x + y * w.width()) as usize] = true;
                }
            }
        }
        let width = w.width();
        let (fw, fh, px) = self
            .renderer
            .render(&w.grid, self.tile_size, Some((w.agent_pos, w.agent_dir)), |x, y| lit[(x + y * width) as usize]);
        Frame::new(fw, fh, px).unwrap_or_else(|_| Frame::filled(fw, fh, [0, 0, 0]))
    }

    fn observation(&mut self, descriptions: &[String]) -> Observation {
        Observation::image(self.render_pov())
            .with_task(self.mission.clone())
            .with_text(text::balrog_context(descriptions))
    }

    fn info(&self, descriptions: Vec<String>) -> Info {
        let mut info = Info::new();
        info.insert("mission".into(), json!(self.mission));
        info.insert("descriptions".into(), json!(descriptions));
        info.insert("step_count".into(), json!(self.world.step_count));
        info.insert("max_steps".into(), json!(self.world.max_steps));
        if let Level::MixedTrainLocal { task, .. } | Level::MixedTestLocal { task, .. } = self.level {
            info.insert("task".into(), json!(task.name()));
        }
        info
    }

    fn parse_action(&self, action: &CoreAction) -> Result<Action, EnvError> {
        let invalid = |reason: String| EnvError::InvalidAction { env: self.spec.id.clone(), reason };
        let index = match action {
            CoreAction::Discrete(i) => *i,
            CoreAction::Text(t) => BALROG_ACTIONS
                .iter()
                .position(|a| a.eq_ignore_ascii_case(t.trim()))
                .ok_or_else(|| invalid(format!("{t:?} is not one of {BALROG_ACTIONS:?}")))?,
        };
        if index >= BALROG_ACTIONS.len() {
            return Err(invalid(format!("action {index} is out of range 0..{}", BALROG_ACTIONS.len())));
        }
        Action::from_index(index).ok_or_else(|| invalid(format!("action {index}")))
    }
}

impl Environment for BabyAi {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        self.reset_episode(seed);
        let d = self.descriptions();
        Ok((self.observation(&d), self.info(d)))
    }

    fn step(&mut self, action: &CoreAction) -> Result<Step, EnvError> {
        if !self.started || self.done {
            return Err(EnvError::NeedsReset { env: self.spec.id.clone() });
        }
        let a = self.parse_action(action)?;
        let out = self.step_action(a);
        let d = self.descriptions();
        let obs = self.observation(&d);
        let mut info = self.info(d);
        info.insert("success".into(), json!(out.status == Status::Success));
        Ok(Step { obs, reward: out.reward, terminated: out.terminated, truncated: out.truncated, info })
    }

    /// BALROG's instruction prompt followed by the current observation, as BALROG's naive
    /// agent shows them on the first turn.
    fn prompt_text(&self, obs: &Observation, _version: PromptVersion) -> String {
        format!(
            "{}\n\nCurrent Observation:\n{}",
            text::balrog_instruction_prompt(&obs.task),
            obs.text.as_deref().unwrap_or("")
        )
    }
}

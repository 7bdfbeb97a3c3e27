//! `MiniWorld`: one environment implementing the core [`Environment`] contract.

use serde_json::json;
use vldac_core::prompt::{self, PromptVersion};
use vldac_core::{Action, ActionSpace, EnvError, EnvSpec, Environment, Frame, Info, Observation, Step};

use crate::envs::{self, Kind, SignOptions, Task};
use crate::render::{RenderOptions, Renderer, Scene};
use crate::rng::NpRandom;
use crate::world::World;

/// Construction options (the peer's constructor keywords).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MiniWorldConfig {
    pub obs_width: u32,
    pub obs_height: u32,
    pub domain_rand: bool,
    /// Overrides the internal step limit (the peer's `env.unwrapped.max_episode_steps = N`).
    pub max_episode_steps: Option<f64>,
    pub render: RenderOptions,
    pub sign: SignOptions,
}

impl Default for MiniWorldConfig {
    fn default() -> Self {
        MiniWorldConfig {
            obs_width: 80,
            obs_height: 60,
            domain_rand: false,
            max_episode_steps: None,
            render: RenderOptions::default(),
            sign: SignOptions::default(),
        }
    }
}

/// Outcome of one physics step (no rendering).
#[derive(Debug, Clone, PartialEq)]
pub struct SimStep {
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub info: Info,
}

/// A MiniWorld environment.
#[derive(Debug, Clone)]
pub struct MiniWorld {
    kind: Kind,
    spec: EnvSpec,
    cfg: MiniWorldConfig,
    pub world: World,
    task: Task,
    rng: NpRandom,
    scene: Scene,
    renderer: Renderer,
    done: bool,
}

fn cfg_err(kind: Kind, reason: impl Into<String>) -> EnvError {
    EnvError::Config { env: kind.id().to_string(), reason: reason.into() }
}

impl MiniWorld {
    /// Builds an env by id (e.g. `MiniWorld-OneRoom-v0`) and resets it with seed 0.
    pub fn make(id: &str) -> Result<Self, EnvError> {
        Self::with_config(id, MiniWorldConfig::default())
    }

    pub fn with_config(id: &str, cfg: MiniWorldConfig) -> Result<Self, EnvError> {
        let kind =
            Kind::from_id(id).ok_or_else(|| EnvError::UnknownId { id: id.to_string(), known: ids().join(", ") })?;
        if cfg.obs_width == 0 || cfg.obs_height == 0 || cfg.obs_width > 8192 || cfg.obs_height > 8192 {
            return Err(cfg_err(
                kind,
                format!("observation size {}x{} must be in 1..=8192", cfg.obs_width, cfg.obs_height),
            ));
        }
        if cfg.sign.color_index > 2 || cfg.sign.goal > 1 {
            return Err(cfg_err(kind, "Sign: color_index must be 0, 1 or 2 and goal 0 or 1"));
        }
        if let Some(m) = cfg.max_episode_steps
            && (m.is_nan() || m <= 0.0)
        {
            return Err(cfg_err(kind, format!("max_episode_steps must be positive, got {m}")));
        }
        let spec = EnvSpec {
            id: kind.id().to_string(),
            action_space: ActionSpace::numbered(kind.action_labels()),
            max_episode_steps: if kind.is_vldac() { Some(128) } else { None },
            max_image_obs_len: 4,
        };
        let world = World::new(kind.params(), false, kind.max_episode_steps());
        let mut env = MiniWorld {
            kind,
            spec,
            cfg,
            world,
            task: Task::default(),
            rng: NpRandom::new(0),
            scene: Scene::default(),
            renderer: Renderer::default(),
            done: true,
        };
        env.reset_world(Some(0))?;
        Ok(env)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn config(&self) -> &MiniWorldConfig {
        &self.cfg
    }

    /// The peer's `reset` without rendering: build the world, randomise, static data.
    pub fn reset_world(&mut self, seed: Option<u64>) -> Result<(), EnvError> {
        if let Some(s) = seed {
            self.rng = NpRandom::new(s);
        }
        let dr = self.cfg.domain_rand && self.kind.allows_domain_rand();
        let max_steps = self.cfg.max_episode_steps.unwrap_or(self.kind.max_episode_steps());
        let mut world = World::new(self.kind.params(), dr, max_steps);
        let task = envs::gen_world(self.kind, &mut world, &mut self.rng, self.cfg.sign)
            .map_err(|e| cfg_err(self.kind, e.to_string()))?;
        world.randomize(&mut self.rng);
        if !world.static_built {
            world.gen_static_data(&mut self.rng);
        }
        self.world = world;
        self.task = task;
        self.scene = Scene::build(&self.world);
        self.done = false;
        Ok(())
    }

    /// Rebuilds the static scene after poses were changed by hand (static entities moved).
    pub fn refresh_scene(&mut self) {
        self.scene = Scene::build(&self.world);
    }

    /// Sets the agent pose (y stays 0). Errors if it is outside every room or inside a wall.
    pub fn set_agent(&mut self, x: f64, z: f64, dir: f64) -> Result<(), EnvError> {
        if !(x.is_finite() && z.is_finite() && dir.is_finite()) {
            return Err(cfg_err(self.kind, "agent pose must be finite numbers"));
        }
        self.world
            .check_free(crate::world::Me::Agent, [x, 0.0, z], self.world.agent.radius)
            .map_err(|e| cfg_err(self.kind, format!("agent: {e}")))?;
        self.world.agent.pos = [x, 0.0, z];
        self.world.agent.dir = dir;
        Ok(())
    }

    /// Sets the pose of entity `index` (agent excluded, creation order), keeping its height.
    pub fn set_entity(&mut self, index: usize, x: f64, z: f64, dir: f64) -> Result<(), EnvError> {
        let n = self.world.entities.len();
        if index >= n {
            return Err(cfg_err(self.kind, format!("entity index {index} out of range: the env has {n} entities")));
        }
        if !(x.is_finite() && z.is_finite() && dir.is_finite()) {
            return Err(cfg_err(self.kind, format!("entity {index}: pose must be finite numbers")));
        }
        let e = &mut self.world.entities[index];
        e.pos = [x, e.pos[1], z];
        e.dir = dir;
        if e.is_static {
            self.refresh_scene();
        }
        Ok(())
    }

    /// One step of the dynamics without rendering (the peer's `step` minus `render_obs`). Like
    /// the peer, it keeps stepping after the episode ended.
    pub fn sim_step(&mut self, action: usize) -> Result<SimStep, EnvError> {
        let n = self.spec.action_space.len().unwrap_or(0);
        if action >= n {
            return Err(EnvError::InvalidAction {
                env: self.spec.id.clone(),
                reason: format!("action {action} is out of range: the space has {n} actions (0..{n})"),
            });
        }
        let (reward, terminated, truncated) = self.world.base_step(action, &mut self.rng);
        let mut info = Info::new();
        let (reward, terminated) = envs::post_step(
            self.kind,
            &mut self.world,
            &mut self.task,
            &mut self.rng,
            action,
            reward,
            terminated,
            &mut info,
        )
        .map_err(|e| EnvError::Backend { env: self.spec.id.clone(), reason: e.to_string() })?;
        if terminated || truncated {
            self.done = true;
        }
        Ok(SimStep { reward, terminated, truncated, info })
    }

    /// The renderer (tests switch its kernels).
    #[cfg(test)]
    pub(crate) fn renderer_mut(&mut self) -> &mut Renderer {
        &mut self.renderer
    }

    /// The agent's view at the configured size.
    pub fn render_obs(&mut self) -> Frame {
        let (w, h) = (self.cfg.obs_width, self.cfg.obs_height);
        self.render_view(w, h)
    }

    /// The agent's view at any size.
    pub fn render_view(&mut self, width: u32, height: u32) -> Frame {
        self.renderer.render_obs(&self.world, &self.scene, width, height, self.cfg.render)
    }

    /// The top-down map at any size.
    pub fn render_top(&mut self, width: u32, height: u32) -> Frame {
        self.renderer.render_top(&self.world, &self.scene, width, height, self.cfg.render)
    }

    fn observation(&mut self) -> Observation {
        let frame = self.render_obs();
        Observation::image(frame).with_task(prompt::miniworld_task(self.kind.id(), PromptVersion::V3))
    }
}

impl Environment for MiniWorld {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        self.reset_world(seed)?;
        let mut info = Info::new();
        if self.kind == Kind::Sign {
            info.insert("goal".into(), json!(self.task.sign_goal));
        }
        Ok((self.observation(), info))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        if self.done {
            return Err(EnvError::NeedsReset { env: self.spec.id.clone() });
        }
        self.spec
            .action_space
            .check(action)
            .map_err(|reason| EnvError::InvalidAction { env: self.spec.id.clone(), reason })?;
        let a = action.as_discrete().unwrap_or(usize::MAX);
        let s = self.sim_step(a)?;
        Ok(Step {
            obs: self.observation(),
            reward: s.reward,
            terminated: s.terminated,
            truncated: s.truncated,
            info: s.info,
        })
    }

    fn prompt_text(&self, obs: &Observation, version: PromptVersion) -> String {
        prompt::miniworld(prompt::miniworld_task(self.kind.id(), version), obs.frames.len().max(1), version)
    }
}

/// Every registered id.
pub fn ids() -> Vec<&'static str> {
    Kind::ALL.iter().map(|k| k.id()).collect()
}

//! [`BabaIsAi`]: one task as a [`vldac_core::Environment`] with BALROG's text observation.

use serde_json::{Value, json};
use vldac_core::rng::RandomState;
use vldac_core::{Action, ActionSpace, EnvError, EnvSpec, Environment, Info, Observation, PromptVersion, Step};

use crate::engine::{Act, World};
use crate::levels;
use crate::render;
use crate::tasks::{self, Task};
use crate::text;

/// Settings of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Steps before the peer ends the episode (its `max_steps`, 100); also scales the win reward.
    pub max_steps: usize,
    /// Pixels per cell of the frame; 0 disables rendering (text-only, faster).
    pub tile_size: u32,
    /// BALROG's behaviour when a step leaves no "you" object: reset the level in place, draw the
    /// next level from the same generator, and say so in the text. Off: play on (nothing can
    /// move any more) until the step limit.
    pub reset_when_you_lost: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_steps: 100, tile_size: render::TILE_PIXELS, reset_when_you_lost: true }
    }
}

/// A Baba Is AI task.
///
/// `reset(Some(s))` is the peer's `np.random.seed(s); env.reset()` (what BALROG's evaluator
/// does), so the level matches the Python peer for the same seed; `reset(None)` continues the
/// generator, as a second `env.reset()` in Python does. A fresh environment starts from seed 0.
pub struct BabaIsAi {
    spec: EnvSpec,
    task: &'static Task,
    cfg: Config,
    rng: RandomState,
    world: Option<World>,
    target_plan: String,
    done: bool,
    renderer: render::Renderer,
}

impl BabaIsAi {
    pub fn new(task: &'static Task, cfg: Config) -> Self {
        let spec = EnvSpec {
            id: task.id(),
            action_space: ActionSpace::labelled(Act::LABELS),
            max_episode_steps: Some(cfg.max_steps),
            max_image_obs_len: 1,
        };
        let renderer = render::Renderer::new(cfg.tile_size);
        BabaIsAi {
            spec,
            task,
            cfg,
            rng: RandomState::new(0),
            world: None,
            target_plan: String::new(),
            done: false,
            renderer,
        }
    }

    /// The environment for an id (ours or the peer's `env/...` name).
    pub fn from_id(id: &str, cfg: Config) -> Result<Self, EnvError> {
        if cfg.max_steps == 0 {
            return Err(EnvError::Config { env: id.to_string(), reason: "max_steps must be at least 1".into() });
        }
        let task = tasks::find(id)
            .ok_or_else(|| EnvError::UnknownId { id: id.to_string(), known: tasks::ids().join(", ") })?;
        Ok(BabaIsAi::new(task, cfg))
    }

    pub fn task(&self) -> &'static Task {
        self.task
    }

    /// The level in play (`None` before the first reset).
    pub fn world(&self) -> Option<&World> {
        self.world.as_ref()
    }

    /// The peer's plan for the current level, e.g. `break[wall is stop], goto[key]`.
    pub fn target_plan(&self) -> &str {
        &self.target_plan
    }

    fn new_level(&mut self) -> Result<(), EnvError> {
        let level = levels::generate(self.task.layout, &mut self.rng)
            .map_err(|e| EnvError::Backend { env: self.spec.id.clone(), reason: e.to_string() })?;
        self.world = Some(World::new(level.grid, self.cfg.max_steps, &mut self.rng));
        self.target_plan = level.target_plan;
        Ok(())
    }

    /// BALROG's answer to a state without a "you" object: new levels from the same generator
    /// until one has a visible "you" object. The text shows the rules of the lost state and the
    /// objects of the new level (BALROG prints its observation dict there).
    fn you_lost(&mut self, rules: &str, info: &mut Info) -> Result<String, EnvError> {
        const MAX_LEVELS: usize = 1_000;
        for _ in 0..MAX_LEVELS {
            self.new_level()?;
            if let Some(objects) = self.world.as_ref().and_then(text::objects_text) {
                info.insert("you_lost_reset".into(), json!(true));
                return Ok(format!("{}{}", text::YOU_LOST_PREFIX, text::observation_text(rules, &objects)));
            }
        }
        Err(EnvError::Backend {
            env: self.spec.id.clone(),
            reason: format!("{MAX_LEVELS} generated levels in a row had no visible \"you\" object"),
        })
    }

    fn observation(&mut self, text: String) -> Observation {
        let mut obs = Observation { text: Some(text), ..Default::default() };
        if let (Some(w), true) = (&self.world, self.cfg.tile_size > 0) {
            obs.frames.push(self.renderer.render(&w.grid));
        }
        obs
    }

    /// BALROG's text for the current state, or `None` when no object is "you".
    pub fn text(&self) -> Option<String> {
        let w = self.world.as_ref()?;
        let objects = text::objects_text(w)?;
        Some(text::observation_text(&text::ruleset_text(w), &objects))
    }

    fn info(&self) -> Info {
        let mut info = Info::new();
        info.insert("target_plan".into(), Value::String(self.target_plan.clone()));
        info
    }

    fn parse_action(&self, action: &Action) -> Result<Act, EnvError> {
        let invalid = |reason: String| EnvError::InvalidAction { env: self.spec.id.clone(), reason };
        match action {
            Action::Discrete(i) => Act::from_index(*i)
                .ok_or_else(|| invalid(format!("action {i} is out of range: the space has 5 actions (0..5)"))),
            Action::Text(t) => Act::LABELS
                .iter()
                .position(|l| l.eq_ignore_ascii_case(t.trim()))
                .and_then(Act::from_index)
                .ok_or_else(|| invalid(format!("unknown action {t:?}; expected one of {:?}", Act::LABELS))),
        }
    }
}

impl Environment for BabaIsAi {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        if let Some(s) = seed {
            self.rng = RandomState::new(s);
        }
        self.new_level()?;
        self.done = false;
        let mut info = self.info();
        let text = match self.text() {
            Some(t) => t,
            // A generated rule block can cover baba; BALROG's wrapper then resets again.
            None => {
                let rules = self.world.as_ref().map(text::ruleset_text).unwrap_or_default();
                if self.cfg.reset_when_you_lost {
                    self.you_lost(&rules, &mut info)?
                } else {
                    text::observation_text(&rules, "")
                }
            }
        };
        info.extend(self.info());
        Ok((self.observation(text), info))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let act = self.parse_action(action)?;
        let Some(world) = self.world.as_mut().filter(|_| !self.done) else {
            return Err(EnvError::NeedsReset { env: self.spec.id.clone() });
        };
        let out = world.step(act);
        let terminated = out.win || out.lose;
        // The peer ends the episode at its step limit with `done`; that is a truncation.
        let truncated = out.timeout && !terminated;
        let rules = text::ruleset_text(world);
        let mut info = Info::new();
        let text = match text::objects_text(world) {
            Some(objects) => text::observation_text(&rules, &objects),
            None if self.cfg.reset_when_you_lost && !(terminated || truncated) => self.you_lost(&rules, &mut info)?,
            None => format!("{}{}", text::YOU_LOST_PREFIX, text::observation_text(&rules, "")),
        };
        self.done = terminated || truncated;
        info.extend(self.info());
        if self.done {
            info.insert("progression".into(), json!(if out.reward > 0.0 { 1.0 } else { 0.0 }));
        }
        Ok(Step { obs: self.observation(text), reward: out.reward, terminated, truncated, info })
    }

    fn prompt_text(&self, obs: &Observation, version: PromptVersion) -> String {
        let _ = version;
        format!(
            "{}\n\nCurrent Observation:\n{}\n\nYou always have to output one of the above actions at a time and no \
             other text. You always have to output an action until the episode terminates.",
            text::balrog_instruction_prompt(),
            obs.text.as_deref().unwrap_or("")
        )
    }
}

//! The native WebShop as a [`vldac_core::Environment`].

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use vldac_core::{Action, ActionSpace, EnvError, EnvSpec, Environment, Info, Observation, PromptVersion, Step, prompt};

use super::data::{Catalogue, Goal};
use super::engine::{PageKind, Session};
use super::fuzz::FuzzVersion;
use super::render::{RenderConfig, render_page};
use super::search::SearchIndex;

pub const ENV_ID: &str = "WebShop-v0";

/// Which goals an episode draws from (indices into the shuffled goal list).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalSplit {
    /// WebShop's split over goal indices: test 0..500, eval 500..1500, train 1500.. .
    Train,
    Eval,
    Test,
    /// Every goal.
    All,
    /// An explicit index range.
    Range {
        start: usize,
        end: usize,
    },
}

impl GoalSplit {
    fn range(&self, n: usize) -> Range<usize> {
        let r = match self {
            GoalSplit::Test => 0..500,
            GoalSplit::Eval => 500..1500,
            GoalSplit::Train => 1500..n,
            GoalSplit::All => 0..n,
            GoalSplit::Range { start, end } => *start..*end,
        };
        r.start.min(n)..r.end.min(n)
    }
}

/// Files and settings of a native WebShop.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WebShopConfig {
    /// Products in `items_shuffle*.json` schema.
    pub products: PathBuf,
    /// Attributes in `items_ins_v2*.json` schema.
    pub attributes: PathBuf,
    /// Human instructions in `items_human_ins.json` schema (the goals).
    pub human_instructions: PathBuf,
    #[serde(default)]
    pub num_products: Option<usize>,
    /// Seed of the price / `price_upper` draws and the goal shuffle.
    #[serde(default)]
    pub catalogue_seed: u64,
    pub split: GoalSplit,
    /// Show the "Attributes" sub-page button (`show_attrs`).
    #[serde(default)]
    pub show_attrs: bool,
    #[serde(default)]
    pub render: RenderConfig,
    /// VL-DAC's `max_episode_steps` for WebShop.
    #[serde(default = "default_steps")]
    pub max_episode_steps: usize,
    /// The thefuzz release of the reward's fuzzy matching: `"0.19.0"` (default; the official
    /// pin) or `"0.22.1"` (rapidfuzz-based, by name only).
    #[serde(default)]
    pub fuzz: FuzzVersion,
}

fn default_steps() -> usize {
    50
}

impl WebShopConfig {
    /// The synthetic catalogue shipped with this crate (`fixtures/webshop`), all goals.
    pub fn bundled() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("webshop");
        WebShopConfig {
            products: dir.join("items_shuffle.json"),
            attributes: dir.join("items_ins.json"),
            human_instructions: dir.join("items_human_ins.json"),
            num_products: None,
            catalogue_seed: 0,
            split: GoalSplit::All,
            show_attrs: false,
            render: RenderConfig::default(),
            max_episode_steps: default_steps(),
            fuzz: FuzzVersion::default(),
        }
    }
}

/// A catalogue with its search index, shareable between environments.
#[derive(Debug)]
pub struct Shop {
    pub catalogue: Catalogue,
    pub index: SearchIndex,
}

impl Shop {
    pub fn new(catalogue: Catalogue) -> Self {
        let index = SearchIndex::build(&catalogue.products);
        Shop { catalogue, index }
    }

    pub fn load(cfg: &WebShopConfig) -> Result<Self, EnvError> {
        let cat = Catalogue::load(
            &cfg.products,
            &cfg.attributes,
            Some(&cfg.human_instructions),
            cfg.num_products,
            cfg.catalogue_seed,
        )
        .map_err(|e| EnvError::Config { env: ENV_ID.into(), reason: e.to_string() })?;
        Ok(Shop::new(cat))
    }
}

/// The native WebShop environment: text action space, page text + rendered page image.
pub struct WebShopEnv {
    shop: Arc<Shop>,
    cfg: WebShopConfig,
    spec: EnvSpec,
    rng: ChaCha8Rng,
    session: Option<Session>,
    goals: Range<usize>,
}

impl WebShopEnv {
    pub fn new(cfg: WebShopConfig) -> Result<Self, EnvError> {
        let shop = Arc::new(Shop::load(&cfg)?);
        Self::with_shop(shop, cfg)
    }

    /// Shares a loaded catalogue (vectorised training builds it once).
    pub fn with_shop(shop: Arc<Shop>, cfg: WebShopConfig) -> Result<Self, EnvError> {
        let goals = cfg.split.range(shop.catalogue.goals.len());
        if goals.is_empty() {
            return Err(EnvError::Config {
                env: ENV_ID.into(),
                reason: format!(
                    "split {:?} selects no goals: the catalogue has {} goals",
                    cfg.split,
                    shop.catalogue.goals.len()
                ),
            });
        }
        let spec = EnvSpec {
            id: ENV_ID.into(),
            action_space: ActionSpace::Text,
            max_episode_steps: Some(cfg.max_episode_steps),
            max_image_obs_len: 2,
        };
        Ok(WebShopEnv { shop, cfg, spec, rng: ChaCha8Rng::seed_from_u64(0), session: None, goals })
    }

    pub fn shop(&self) -> &Arc<Shop> {
        &self.shop
    }

    /// The current session (None before the first reset).
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Starts an episode with an explicit goal (replays, evaluation of one goal).
    pub fn reset_with_goal(&mut self, goal: Goal) -> (Observation, Info) {
        let mut session = Session::new(goal, self.cfg.show_attrs);
        session.fuzz = self.cfg.fuzz;
        let obs = self.observe(&session);
        let info = self.info(&session);
        self.session = Some(session);
        (obs, info)
    }

    fn observe(&self, s: &Session) -> Observation {
        let cat = &self.shop.catalogue;
        let elements = s.elements(cat);
        let frame = render_page(&elements, &self.cfg.render);
        Observation {
            frames: vec![frame],
            task: s.goal.instruction_text.clone(),
            text: Some(elements.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(" [SEP] ")),
            admissible: s.available_actions(cat),
        }
    }

    fn info(&self, s: &Session) -> Info {
        let mut info = Info::new();
        info.insert("goal_asin".into(), json!(s.goal.asin));
        info.insert("session".into(), s.summary());
        info
    }
}

impl Environment for WebShopEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        if let Some(seed) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(seed);
        }
        let idx = self.rng.random_range(self.goals.clone());
        let goal = self.shop.catalogue.goals[idx].clone();
        let (obs, mut info) = self.reset_with_goal(goal);
        info.insert("goal_index".into(), json!(idx));
        Ok((obs, info))
    }

    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        let text = match action {
            Action::Text(t) => t.clone(),
            Action::Discrete(i) => {
                return Err(EnvError::InvalidAction {
                    env: ENV_ID.into(),
                    reason: format!("discrete action {i} given to a text action space"),
                });
            }
        };
        let shop = self.shop.clone();
        let session = match self.session.as_mut() {
            Some(s) if s.page != PageKind::Done => s,
            _ => return Err(EnvError::NeedsReset { env: ENV_ID.into() }),
        };
        let out = session.step(&shop.catalogue, &shop.index, &text);
        if let Some(e) = &out.reward_error {
            // The official env raises on such a goal; the session stays on the item page.
            return Err(EnvError::Config { env: ENV_ID.into(), reason: e.to_string() });
        }
        let session = session.clone();
        let obs = self.observe(&session);
        let mut info = self.info(&session);
        info.insert("valid_action".into(), json!(out.valid));
        if let Some(ri) = &out.reward_info {
            info.insert("reward_info".into(), json!(ri));
            info.insert("success".into(), json!(out.reward >= 1.0));
        }
        Ok(Step { obs, reward: out.reward, terminated: out.done, truncated: false, info })
    }

    fn prompt_text(&self, obs: &Observation, version: PromptVersion) -> String {
        let _ = version;
        prompt::webshop(&obs.task, obs.text.as_deref().unwrap_or(""), &obs.admissible)
    }
}

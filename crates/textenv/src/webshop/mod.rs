//! A native WebShop (princeton-nlp/WebShop): the same pages, action grammar and reward, over
//! product files in WebShop's JSON schema.

pub mod data;
pub mod engine;
pub mod env;
pub mod fuzz;
pub mod pyunicode;
pub mod render;
pub mod reward;
pub mod search;
pub mod seqmatch;

pub use data::{Catalogue, DataError, Goal, Product};
pub use engine::{PageKind, Session, parse_action};
pub use env::{ENV_ID, GoalSplit, Shop, WebShopConfig, WebShopEnv};
pub use fuzz::FuzzVersion;
pub use render::RenderConfig;
pub use reward::{RewardError, RewardInfo, get_reward, get_reward_with, normalize_color};
pub use search::SearchIndex;

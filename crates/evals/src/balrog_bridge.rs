//! BALROG's Crafter and NetHack through their Python packages (`crafter`, `balrog-nle`), served by
//! `crates/textenv/python/balrog_bridge.py` over the textenv JSON-lines bridge.
//!
//! The server returns what BALROG's wrappers give its agents (long- and short-term text, the
//! frame), BALROG's progression (Crafter: unlocked achievements / 22; NetHack: the best value of
//! the reached `Dlvl:k` / `Xp:k` in BALROG's table of human play), the instruction prompt and the
//! action list; this side is a [`BalrogEnv`]. A crashed, hung or garbled server is an
//! [`EvalError::Env`] naming the environment (an evaluation episode is not silently truncated).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use vldac_core::Frame;
use vldac_textenv::{Bridge, BridgeConfig, BridgeError};

use crate::EvalError;
use crate::balrog::{BalrogEnv, BalrogObs};

/// The server script shipped with vldac-textenv.
pub fn bridge_script() -> PathBuf {
    vldac_textenv::bridge_env::workspace_root().join("crates").join("textenv").join("python").join("balrog_bridge.py")
}

/// The venv python `cargo xtask setup balrog` creates.
pub fn default_python() -> PathBuf {
    vldac_textenv::bridge_env::workspace_root().join("target").join("venvs").join("balrog").join("bin").join("python")
}

/// Where `cargo xtask setup balrog` puts BALROG's NetHack progression table.
pub fn default_nle_achievements() -> PathBuf {
    vldac_textenv::bridge_env::workspace_root().join("target").join("balrog").join("nle_achievements.json")
}

/// NetHack's text layout (BALROG picks it by agent kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NleObsMode {
    /// Message, language observation, cursor and the ASCII map (BALROG's text agents).
    Hybrid,
    /// Message, language observation, cursor; statistics and inventory (BALROG's VLM agents,
    /// which also get an image).
    Language,
}

/// Which bridged environment, with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgedKind {
    /// BALROG's defaults: 2000 steps, 256 px frames, closest object of each kind, compass offsets.
    Crafter { max_steps: usize, size: u32 },
    /// NetHackChallenge-v0, no-progress timeout 150. Without `achievements` the progression is
    /// unknown (logged as null); `vldac eval run` requires the table.
    Nle { obs_mode: NleObsMode, achievements: Option<PathBuf>, max_steps: usize },
}

impl BridgedKind {
    pub fn crafter() -> Self {
        BridgedKind::Crafter { max_steps: 2000, size: 256 }
    }

    pub fn nle(obs_mode: NleObsMode, achievements: Option<PathBuf>) -> Self {
        BridgedKind::Nle { obs_mode, achievements, max_steps: 100_000 }
    }

    /// The BALROG environment name (`crafter`, `nle`).
    pub fn name(&self) -> &'static str {
        match self {
            BridgedKind::Crafter { .. } => "crafter",
            BridgedKind::Nle { .. } => "nle",
        }
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![bridge_script().display().to_string()];
        match self {
            BridgedKind::Crafter { max_steps, size } => {
                a.extend(["crafter".into(), "--max-steps".into(), max_steps.to_string()]);
                a.extend(["--size".into(), size.to_string()]);
            }
            BridgedKind::Nle { obs_mode, achievements, max_steps } => {
                let mode = match obs_mode {
                    NleObsMode::Hybrid => "hybrid",
                    NleObsMode::Language => "language",
                };
                a.extend(["nle".into(), "--obs-mode".into(), mode.into(), "--max-steps".into(), max_steps.to_string()]);
                if let Some(p) = achievements {
                    a.extend(["--achievements".into(), p.display().to_string()]);
                }
            }
        }
        a
    }
}

/// A Crafter or NetHack episode source over the bridge.
pub struct BridgedEnv {
    bridge: Bridge,
    name: &'static str,
    actions: Vec<String>,
    default_action: String,
    instruction: String,
    max_steps: usize,
    /// Ask for frames (off for text-only agents: saves encoding a 256x256 image per step).
    pub frames: bool,
    progression: f64,
    stats: Value,
    hello: Value,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

impl BridgedEnv {
    /// Starts the server with `python` (a venv with `crafter` / `balrog-nle`) and reads its
    /// action list and prompt.
    pub fn start(python: &Path, kind: &BridgedKind) -> Result<Self, EvalError> {
        let name = kind.name();
        if !python.exists() {
            return Err(EvalError::Env(format!(
                "{name}: Python interpreter {} not found; run `cargo xtask setup balrog`",
                python.display()
            )));
        }
        let mut cfg = BridgeConfig::new(python, kind.args());
        cfg.startup_timeout = Duration::from_secs(120);
        cfg.reset_timeout = Duration::from_secs(60);
        cfg.step_timeout = Duration::from_secs(60);
        let mut bridge = Bridge::new(cfg);
        let hello = bridge.ensure_started().map_err(|e| bridge_err(name, "start", e))?.clone();
        let actions = strings(&hello, "actions");
        let default_action = hello.get("default_action").and_then(Value::as_str).unwrap_or("").to_string();
        let instruction = hello.get("instruction_prompt").and_then(Value::as_str).unwrap_or("").to_string();
        if actions.is_empty() || !actions.contains(&default_action) || instruction.is_empty() {
            return Err(EvalError::Env(format!(
                "{name} bridge: hello lacks actions, a listed default_action or the instruction prompt: {hello}"
            )));
        }
        let max_steps = hello.get("max_steps").and_then(Value::as_u64).unwrap_or(0) as usize;
        Ok(BridgedEnv {
            bridge,
            name,
            actions,
            default_action,
            instruction,
            max_steps,
            frames: true,
            progression: 0.0,
            stats: Value::Null,
            hello,
        })
    }

    /// The server's `hello` (versions, whether the NetHack progression table is loaded, ...).
    pub fn hello(&self) -> &Value {
        &self.hello
    }

    /// Caps episodes at fewer steps than the environment's default (smoke tests, budgets).
    pub fn set_max_steps(&mut self, n: usize) {
        self.max_steps = n;
    }

    /// The server process (tests kill it to check crash reporting).
    pub fn bridge(&mut self) -> &mut Bridge {
        &mut self.bridge
    }

    fn read(&mut self, reply: &Value) -> Result<BalrogObs, EvalError> {
        let text = |k: &str| reply.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let image = match reply.get("frame") {
            Some(f) if !f.is_null() => {
                Some(decode_frame(f).map_err(|e| EvalError::Env(format!("{}: {e}", self.name)))?)
            }
            _ => None,
        };
        self.progression = reply.get("progression").and_then(Value::as_f64).unwrap_or(0.0);
        self.stats = reply.get("stats").cloned().unwrap_or(Value::Null);
        Ok(BalrogObs {
            long_term_context: text("long_term_context"),
            short_term_context: text("short_term_context"),
            image,
        })
    }
}

fn bridge_err(name: &str, op: &str, e: BridgeError) -> EvalError {
    EvalError::Env(format!("{name} bridge failed during {op}: {e}"))
}

/// `{"width", "height", "rgb_b64"}` → frame.
pub fn decode_frame(f: &Value) -> Result<Frame, String> {
    let dim = |k: &str| f.get(k).and_then(Value::as_u64).ok_or_else(|| format!("frame has no integer {k:?}"));
    let (w, h) = (dim("width")?, dim("height")?);
    let b64 = f.get("rgb_b64").and_then(Value::as_str).ok_or("frame has no \"rgb_b64\" string")?;
    let pixels =
        base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("frame is not base64: {e}"))?;
    Frame::new(w as u32, h as u32, pixels).map_err(|e| format!("frame: {e}"))
}

impl BalrogEnv for BridgedEnv {
    fn instruction_prompt(&self) -> String {
        self.instruction.clone()
    }
    fn language_action_space(&self) -> Vec<String> {
        self.actions.clone()
    }
    fn default_action(&self) -> String {
        self.default_action.clone()
    }
    fn reset(&mut self, seed: u64) -> Result<BalrogObs, EvalError> {
        let mut f = Map::new();
        f.insert("seed".into(), json!(seed));
        f.insert("frames".into(), json!(self.frames));
        let timeout = self.bridge.config().reset_timeout;
        let reply = self.bridge.request("reset", f, timeout).map_err(|e| bridge_err(self.name, "reset", e))?;
        self.read(&reply)
    }
    fn step(&mut self, action: &str) -> Result<(BalrogObs, f64, bool, bool), EvalError> {
        let mut f = Map::new();
        f.insert("action".into(), json!(action));
        let timeout = self.bridge.config().step_timeout;
        let reply = self
            .bridge
            .request("step", f, timeout)
            .map_err(|e| bridge_err(self.name, &format!("step {action:?}"), e))?;
        let obs = self.read(&reply)?;
        let flag = |k: &str| reply.get(k).and_then(Value::as_bool).unwrap_or(false);
        let reward = reply.get("reward").and_then(Value::as_f64).unwrap_or(0.0);
        Ok((obs, reward, flag("terminated"), flag("truncated")))
    }
    fn progression(&self) -> f64 {
        self.progression
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn stats(&self) -> Value {
        self.stats.clone()
    }
}

impl Drop for BridgedEnv {
    fn drop(&mut self) {
        self.bridge.close();
    }
}

//! `vldac env replay`: play a seed and an action list, one JSON object per step.
//!
//! ```json
//! {"env": "BabaIsAI-goto_win-v0", "seed": 3, "actions": ["up", "left", 2]}
//! ```
//! Actions are BALROG's strings or numbers 0–4. Output: the reset (`"step": 0`) and then one
//! line per action until the episode ends: `{"step", "action", "reward", "terminated",
//! "truncated", "text"}`.

use serde_json::{Value, json};
use vldac_core::{Action, Environment};

use crate::env::{BabaIsAi, Config};

/// A scenario that cannot be replayed; the message names the field or step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scenario: {0}")]
pub struct ReplayError(pub String);

/// Replays `scenario` on environment `env` (the scenario's own `env` field, if any, must agree).
pub fn replay(env: &str, scenario: &Value) -> Result<Vec<Value>, ReplayError> {
    if let Some(e) = scenario.get("env").and_then(Value::as_str)
        && e != env
    {
        return Err(ReplayError(format!("field `env` is {e:?} but the command names {env:?}")));
    }
    let seed = match scenario.get("seed") {
        None => 0,
        Some(v) => v.as_u64().ok_or_else(|| ReplayError("field `seed` must be a non-negative integer".into()))?,
    };
    let actions = scenario
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplayError("missing field `actions` (a list of action names or numbers)".into()))?;
    let mut e =
        BabaIsAi::from_id(env, Config { tile_size: 0, ..Config::default() }).map_err(|e| ReplayError(e.to_string()))?;
    let (obs, _) = e.reset(Some(seed)).map_err(|e| ReplayError(e.to_string()))?;
    let mut lines = vec![json!({"step": 0, "text": obs.text, "target_plan": e.target_plan()})];
    for (i, a) in actions.iter().enumerate() {
        let action = match a {
            Value::String(s) => Action::Text(s.clone()),
            Value::Number(n) => Action::Discrete(
                n.as_u64().ok_or_else(|| ReplayError(format!("actions[{i}] must be a number 0-4 or a name")))? as usize,
            ),
            _ => return Err(ReplayError(format!("actions[{i}] must be a number 0-4 or a name"))),
        };
        let s = e.step(&action).map_err(|err| ReplayError(format!("actions[{i}]: {err}")))?;
        lines.push(json!({
            "step": i + 1, "action": a, "reward": s.reward, "terminated": s.terminated,
            "truncated": s.truncated, "text": s.obs.text,
        }));
        if s.done() {
            break;
        }
    }
    Ok(lines)
}

//! Scenario replay for `vldac env replay`: `{"env": id, "seed": s, "actions": [...]}` where an
//! action is an index (0..6, MiniGrid's order incl. "done") or one of BALROG's action strings.

use serde_json::{Value, json};

use crate::registry;
use crate::text::BALROG_ACTIONS;
use crate::world::Action;

/// One JSON object per step (the reset first).
pub fn replay(id: &str, scenario: &Value) -> Result<Vec<Value>, String> {
    let seed = scenario.get("seed").and_then(Value::as_u64).ok_or("scenario: missing integer field \"seed\"")?;
    let actions =
        scenario.get("actions").and_then(Value::as_array).ok_or("scenario: missing array field \"actions\"")?;
    let mut env = registry::make(id).map_err(|e| e.to_string())?;
    env.reset_episode(Some(seed));
    let state = |env: &crate::BabyAi| {
        let w = env.world();
        json!({"pos": [w.agent_pos.0, w.agent_pos.1], "dir": w.agent_dir, "text": crate::text::balrog_context(&env.descriptions())})
    };
    let mut out = vec![json!({"mission": env.mission(), "max_steps": env.world().max_steps, "state": state(&env)})];
    for (k, a) in actions.iter().enumerate() {
        let action = match a {
            Value::Number(n) => n.as_u64().and_then(|i| Action::from_index(i as usize)),
            Value::String(s) => BALROG_ACTIONS.iter().position(|b| b == s).and_then(Action::from_index),
            _ => None,
        }
        .ok_or_else(|| format!("scenario: actions[{k}] = {a} is not 0..6 nor one of {BALROG_ACTIONS:?}"))?;
        let o = env.step_action(action);
        out.push(json!({"step": k + 1, "action": action as usize, "reward": o.reward, "terminated": o.terminated,
                        "truncated": o.truncated, "state": state(&env)}));
        if o.terminated || o.truncated {
            break;
        }
    }
    Ok(out)
}

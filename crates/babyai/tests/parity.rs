//! Parity with the Python peers, episode by episode, from `fixtures/episodes.jsonl`
//! (written by `fixtures/gen_fixtures.py` from MiniGrid 3.2.0 and BALROG's BabyAI-Text fork):
//! mission, step limit, full grid, pose, view encoding, BALROG text and POV frame at reset and
//! after every step, plus reward / terminated / truncated.

use serde_json::Value;
use vldac_babyai::env::{BabyAi, LevelChoice};
use vldac_babyai::{Action, Level, MixedTask, registry};

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

fn episodes() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/episodes.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    text.lines().map(|l| serde_json::from_str(l).expect("fixture line is JSON")).collect()
}

fn make(ep: &Value) -> BabyAi {
    let id = ep["env"].as_str().unwrap();
    let num_dists = ep["kwargs"]["num_dists"].as_u64().unwrap_or(0) as usize;
    if let Some(task) = id.strip_prefix("BabyAI-MixedTrainLocal-v0/") {
        let task = MixedTask::from_name(task).unwrap();
        return BabyAi::new(id, LevelChoice::Fixed(Level::MixedTrainLocal { task, num_dists }));
    }
    if let Some(task) = id.strip_prefix("BabyAI-MixedTestLocal-v0/") {
        let task = MixedTask::from_name(task).unwrap();
        return BabyAi::new(id, LevelChoice::Fixed(Level::MixedTestLocal { task, num_dists }));
    }
    registry::make(id).unwrap()
}

fn grid_rows(env: &BabyAi) -> Vec<String> {
    let g = &env.world().grid;
    (0..g.height)
        .map(|y| {
            (0..g.width)
                .map(|x| {
                    let e = g.get(x, y).map_or([1, 0, 0], |o| o.encode());
                    format!("{}{}{}", e[0], e[1], e[2])
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Differences between the engine state and a recorded snapshot.
fn compare(env: &mut BabyAi, snap: &Value, at: &str, errors: &mut Vec<String>) {
    let w = env.world();
    let mut check = |field: &str, ours: Value| {
        if snap[field] != ours {
            errors.push(format!("{at}: {field}: ours {ours} != peer {}", snap[field]));
        }
    };
    check("pos", serde_json::json!([w.agent_pos.0, w.agent_pos.1]));
    check("dir", serde_json::json!(w.agent_dir));
    check("carrying", w.carrying.map_or(Value::Null, |c| format!("{} {}", c.color.name(), c.kind.name()).into()));
    let view = w.view().encode();
    check("view", fnv1a64(view.iter().flatten().flatten().copied()).into());
    if !snap["grid"].is_null() {
        check("grid", fnv1a64(w.grid.encode()).into());
    }
    check("text", vldac_babyai::balrog_context(&env.descriptions()).into());
    let frame = env.render_pov();
    if snap["frame"] != fnv1a64(frame.pixels().iter().copied()) {
        errors.push(format!("{at}: frame differs"));
    }
}

#[test]
fn episodes_match_the_python_peers() {
    let eps = episodes();
    assert!(eps.len() >= 200, "expected the full fixture set, got {} episodes", eps.len());
    let (mut steps, mut successes, mut truncations) = (0, 0, 0);
    let mut errors = Vec::new();
    for ep in &eps {
        let id = ep["env"].as_str().unwrap();
        let seed = ep["seed"].as_u64().unwrap();
        let at = format!("{id} seed {seed}");
        let mut env = make(ep);
        env.reset_episode(Some(seed));
        if ep["mission"] != env.mission() {
            errors.push(format!("{at}: mission {:?} != {}", env.mission(), ep["mission"]));
            continue;
        }
        if ep["max_steps"].as_u64() != Some(env.world().max_steps as u64) {
            errors.push(format!("{at}: max_steps {} != {}", env.world().max_steps, ep["max_steps"]));
        }
        let rows: Vec<Value> = grid_rows(&env).into_iter().map(Value::from).collect();
        if ep["grid_rows"].as_array() != Some(&rows) {
            errors.push(format!("{at}: grid differs:\nours {rows:?}\npeer {}", ep["grid_rows"]));
            continue;
        }
        compare(&mut env, &ep["reset"], &format!("{at} reset"), &mut errors);
        for (k, st) in ep["steps"].as_array().unwrap().iter().enumerate() {
            let action = Action::from_index(st["a"].as_u64().unwrap() as usize).unwrap();
            let o = env.step_action(action);
            steps += 1;
            let at = format!("{at} step {}", k + 1);
            if o.reward != st["r"].as_f64().unwrap() || o.terminated != st["term"] || o.truncated != st["trunc"] {
                errors.push(format!(
                    "{at}: (r, term, trunc) ({}, {}, {}) != ({}, {}, {})",
                    o.reward, o.terminated, o.truncated, st["r"], st["term"], st["trunc"]
                ));
            }
            successes += usize::from(o.reward > 0.0);
            truncations += usize::from(o.truncated);
            compare(&mut env, st, &at, &mut errors);
        }
    }
    eprintln!("{} episodes, {steps} steps, {successes} successes, {truncations} truncations", eps.len());
    assert!(
        errors.is_empty(),
        "{} mismatches; first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
    assert!(successes >= 50 && truncations >= 5, "fixtures should cover success and truncation");
}

/// BALROG's instruction prompt and action list, as its own `get_instruction_prompt` writes them.
#[test]
fn balrog_prompt_matches() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/balrog_prompts.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    let actions: Vec<(String, String)> = serde_json::from_value(fx["actions"].clone()).expect("pairs");
    let ours: Vec<(String, String)> = vldac_babyai::BALROG_ACTIONS
        .iter()
        .zip(vldac_babyai::text::BALROG_ACTION_HELP)
        .map(|(a, h)| (a.to_string(), h.to_string()))
        .collect();
    assert_eq!(ours, actions);
    let prompts = fx["prompts"].as_object().expect("map");
    assert!(!prompts.is_empty());
    for (mission, expected) in prompts {
        assert_eq!(vldac_babyai::balrog_instruction_prompt(mission), expected.as_str().unwrap());
    }
}

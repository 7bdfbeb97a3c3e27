//! Parity with the Python peer: `fixtures/peer.json` was recorded by `fixtures/gen_fixtures.py`
//! from the real `baba` package inside BALROG's own `BabaIsAIWrapper`, seeded as BALROG seeds
//! it. Every episode is replayed here: the initial grid (every stack), the plan, BALROG's text,
//! and after every random action the agent position, reward, done flag, a hash of the whole grid
//! and of the text, and BALROG's in-place reset when no object is "you".

mod common;

use common::{fnv1a, grid_code};
use serde_json::Value;
use vldac_babaisai::{BabaIsAi, Config, balrog_instruction_prompt};
use vldac_core::{Action, Environment};

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/peer.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).expect("fixtures/peer.json is not JSON")
}

#[test]
fn instruction_prompt_is_balrogs() {
    let f = fixture();
    assert_eq!(balrog_instruction_prompt(), f["instruction_prompt"].as_str().unwrap());
}

#[test]
fn episodes_match_the_peer() {
    let f = fixture();
    let episodes = f["episodes"].as_array().unwrap();
    assert!(episodes.len() >= 240, "fixture has only {} episodes", episodes.len());
    let (mut n_steps, mut n_resets, mut n_wins) = (0, 0, 0);
    for ep in episodes {
        let task = ep["task"].as_str().unwrap();
        let seed = ep["seed"].as_u64().unwrap();
        let at = format!("{task} seed {seed}");
        let mut env = BabaIsAi::from_id(&format!("env/{task}"), Config { tile_size: 0, ..Config::default() })
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        let (obs, info) = env.reset(Some(seed)).unwrap();
        assert_eq!(grid_code(&env.world().unwrap().grid), ep["grid"].as_str().unwrap(), "{at}: initial grid");
        assert_eq!(info["target_plan"], ep["target_plan"], "{at}: target plan");
        assert_eq!(obs.text.as_deref(), ep["text"].as_str(), "{at}: initial text");
        assert_eq!(info.contains_key("you_lost_reset"), ep["reset"].as_u64() == Some(1), "{at}: reset regenerated");
        let texts = ep["texts"].as_array().unwrap();
        for (k, s) in ep["steps"].as_array().unwrap().iter().enumerate() {
            let s = s.as_array().unwrap();
            let at = format!("{at} step {}", k + 1);
            let a = s[0].as_u64().unwrap() as usize;
            let step = env.step(&Action::Discrete(a)).unwrap_or_else(|e| panic!("{at}: {e}"));
            let w = env.world().unwrap();
            let text = step.obs.text.clone().unwrap_or_default();
            if let Some(t) = texts.get(k) {
                assert_eq!(text, t.as_str().unwrap(), "{at}: text");
            }
            assert_eq!(
                (w.agent_pos.0 as i64, w.agent_pos.1 as i64),
                (s[1].as_i64().unwrap(), s[2].as_i64().unwrap()),
                "{at}: agent position"
            );
            // serde_json's default float parser may be off by an ulp; the reward formula is exact.
            let want = s[3].as_f64().unwrap();
            assert!((step.reward - want).abs() < 1e-12, "{at}: reward {} vs the peer's {want}", step.reward);
            assert_eq!(step.done(), s[4].as_bool().unwrap(), "{at}: done");
            assert_eq!(fnv1a(&grid_code(&w.grid)), s[5].as_str().unwrap(), "{at}: grid\n{}", grid_code(&w.grid));
            assert_eq!(fnv1a(&text), s[6].as_str().unwrap(), "{at}: text\n{text}");
            let reset = step.info.get("you_lost_reset").is_some();
            assert_eq!(reset, s[7].as_u64().unwrap() == 1, "{at}: in-place reset");
            n_steps += 1;
            n_resets += usize::from(reset);
            n_wins += usize::from(step.reward > 0.0);
        }
    }
    eprintln!("{} episodes, {n_steps} steps, {n_resets} in-place resets, {n_wins} wins matched", episodes.len());
    assert!(n_steps > 5_000 && n_resets > 10 && n_wins > 10);
}

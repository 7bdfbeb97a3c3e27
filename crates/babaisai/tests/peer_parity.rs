//! Parity with the Python peer: `fixtures/peer.json` was recorded by `fixtures/gen_fixtures.py`
//! from the real `baba` package inside BALROG's own `BabaIsAIWrapper`, seeded as BALROG seeds
//! it. Every episode is replayed here: the initial grid (every stack), the plan, BALROG's text,
//! and after every random action the agent position, reward, done flag, a hash of the whole grid
//! and of the text, and BALROG's in-place reset when no object is "you".

use serde_json::Value;
use vldac_babaisai::engine::{Tile, World};
use vldac_babaisai::{BabaIsAi, Config, balrog_instruction_prompt};
use vldac_core::{Action, Environment};

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/peer.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).expect("fixtures/peer.json is not JSON")
}

/// FNV-1a 64, first 12 hex digits (as the fixture script writes it).
fn fnv1a(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

fn tile_code(t: &Tile) -> String {
    match t {
        Tile::Border => "#".to_string(),
        Tile::Word(w) => format!("w:{}", w.text()),
        Tile::Thing(th) => format!("t:{}:{}:{}", th.noun.name(), th.color.name(), th.dir),
    }
}

fn grid_code(w: &World) -> String {
    let g = &w.grid;
    let mut cells = Vec::with_capacity(g.width * g.height);
    for y in 0..g.height as i32 {
        for x in 0..g.width as i32 {
            cells.push(g.stack(x, y).iter().map(tile_code).collect::<Vec<_>>().join(","));
        }
    }
    cells.join("|")
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
        assert_eq!(grid_code(env.world().unwrap()), ep["grid"].as_str().unwrap(), "{at}: initial grid");
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
            assert_eq!(fnv1a(&grid_code(w)), s[5].as_str().unwrap(), "{at}: grid\n{}", grid_code(w));
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

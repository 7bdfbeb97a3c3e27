//! Crafter and NetHack through the BALROG bridge, replayed against fixtures that BALROG's own
//! wrappers produced (`crates/textenv/fixtures/balrog/gen_fixtures.py`): same seed and actions ⇒
//! the same text observations, rewards, end flags, progression (and Crafter frames). Skipped with a
//! message when `target/venvs/balrog` is missing (`cargo xtask setup balrog`), unless
//! `VLDAC_PYTHON_TESTS=1`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use vldac_evals::EvalError;
use vldac_evals::balrog::BalrogEnv;
use vldac_evals::balrog_bridge::{BridgedEnv, BridgedKind, NleObsMode, default_nle_achievements, default_python};

fn python() -> Option<PathBuf> {
    let py = default_python();
    if py.exists() {
        return Some(py);
    }
    let msg = format!("BALROG bridge tests need {}: run `cargo xtask setup balrog`", py.display());
    assert!(std::env::var("VLDAC_PYTHON_TESTS").as_deref() != Ok("1"), "VLDAC_PYTHON_TESTS=1 but {msg}");
    eprintln!("skipped: {msg}");
    None
}

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../textenv/fixtures/balrog").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// The checksum gen_fixtures.py records: Σ pixel[i]·(i mod 251 + 1).
fn checksum(px: &[u8]) -> u64 {
    px.iter().enumerate().map(|(i, &p)| p as u64 * (i as u64 % 251 + 1)).sum()
}

#[test]
fn crafter_replays_balrogs_observations_rewards_and_progression() {
    let Some(py) = python() else { return };
    let fx = fixture("crafter.json");
    let meta = &fx["meta"];
    let mut steps_checked = 0;
    for ep in fx["episodes"].as_array().unwrap() {
        let mut env = BridgedEnv::start(&py, &BridgedKind::crafter()).unwrap();
        assert_eq!(env.instruction_prompt(), meta["instruction_prompt"].as_str().unwrap());
        assert_eq!(env.language_action_space(), strs(&meta["actions"]));
        assert_eq!(env.default_action(), "Noop");
        assert_eq!(env.max_steps(), 2000);
        let seed = ep["seed"].as_u64().unwrap();
        let obs = env.reset(seed).unwrap();
        assert_eq!(obs.long_term_context, ep["reset"]["long_term_context"].as_str().unwrap());
        assert_eq!(obs.short_term_context, ep["reset"]["short_term_context"].as_str().unwrap());
        let frame = obs.image.as_ref().expect("crafter sends a frame");
        assert_eq!((frame.width(), frame.height()), (256, 256));
        assert_eq!(checksum(frame.pixels()), ep["reset"]["frame_checksum"].as_u64().unwrap());
        for (i, (action, want)) in
            ep["actions"].as_array().unwrap().iter().zip(ep["steps"].as_array().unwrap()).enumerate()
        {
            let a = action.as_str().unwrap();
            let (obs, reward, term, trunc) = env.step(a).unwrap();
            let at = format!("crafter seed {seed} step {i} ({a})");
            assert_eq!(obs.long_term_context, want["long_term_context"].as_str().unwrap(), "{at}");
            assert_eq!(obs.short_term_context, want["short_term_context"].as_str().unwrap(), "{at}");
            assert!((reward - want["reward"].as_f64().unwrap()).abs() < 1e-9, "{at}: reward {reward}");
            assert_eq!((term, trunc), (want["terminated"].as_bool().unwrap(), false), "{at}");
            assert_eq!(env.progression(), want["progression"].as_f64().unwrap(), "{at}");
            let px = obs.image.as_ref().unwrap().pixels();
            assert_eq!(checksum(px), want["frame_checksum"].as_u64().unwrap(), "{at}: frame differs");
            steps_checked += 1;
        }
        assert!(env.progression() > 0.0, "the scripted episodes unlock achievements");
        assert_eq!(env.stats()["score"].as_f64().unwrap() / 22.0, env.progression());
    }
    assert!(steps_checked >= 200, "{steps_checked}");
}

#[test]
fn nethack_replays_balrogs_language_observations_and_progression() {
    let Some(py) = python() else { return };
    let fx = fixture("nle.json");
    let meta = &fx["meta"];
    let table = default_nle_achievements();
    let has_table = table.exists();
    if !has_table {
        eprintln!(
            "note: {} missing (`cargo xtask setup balrog` fetches it): progression values are not checked, \
             only the reached Dlvl/Xp levels",
            table.display()
        );
    }
    for ep in fx["episodes"].as_array().unwrap() {
        let mode = match ep["obs_mode"].as_str().unwrap() {
            "hybrid" => NleObsMode::Hybrid,
            _ => NleObsMode::Language,
        };
        let kind = BridgedKind::nle(mode, has_table.then(|| table.clone()));
        let mut env = BridgedEnv::start(&py, &kind).unwrap();
        env.frames = mode == NleObsMode::Language;
        assert_eq!(env.instruction_prompt(), meta["instruction_prompt"].as_str().unwrap());
        assert_eq!(env.default_action(), "esc");
        // BALROG also lists "00".."99", which NetHack cannot take; we leave them out.
        let balrog: Vec<String> = strs(&meta["actions"])
            .into_iter()
            .filter(|a| !(a.len() == 2 && a.bytes().all(|b| b.is_ascii_digit())))
            .collect();
        assert_eq!(env.language_action_space(), balrog);
        assert_eq!(strs(&meta["actions"]).len(), balrog.len() + 100);
        let seed = ep["seed"].as_u64().unwrap();
        let obs = env.reset(seed).unwrap();
        assert_eq!(obs.long_term_context, ep["reset"]["long_term_context"].as_str().unwrap());
        assert_eq!(obs.short_term_context, ep["reset"]["short_term_context"].as_str().unwrap());
        assert_eq!(obs.image.is_some(), env.frames);
        for (i, (action, want)) in
            ep["actions"].as_array().unwrap().iter().zip(ep["steps"].as_array().unwrap()).enumerate()
        {
            let a = action.as_str().unwrap();
            let (obs, reward, term, trunc) = env.step(a).unwrap();
            let at = format!("nle seed {seed} step {i} ({a})");
            assert_eq!(obs.long_term_context, want["long_term_context"].as_str().unwrap(), "{at}");
            assert_eq!(obs.short_term_context, want["short_term_context"].as_str().unwrap(), "{at}");
            assert!((reward - want["reward"].as_f64().unwrap()).abs() < 1e-9, "{at}");
            assert_eq!((term, trunc), (want["terminated"].as_bool().unwrap(), want["truncated"].as_bool().unwrap()));
            let stats = env.stats();
            assert_eq!(stats["dlvl_list"], want["dlvl_list"], "{at}");
            assert_eq!(stats["xplvl_list"], want["xplvl_list"], "{at}");
            if has_table {
                assert_eq!(env.progression(), want["progression"].as_f64().unwrap(), "{at}");
            } else {
                assert!(stats["progression"].is_null(), "{at}: no table, no progression");
            }
        }
    }
}

#[test]
fn a_dead_bridge_is_an_error_naming_the_environment() {
    let Some(py) = python() else { return };
    let mut env = BridgedEnv::start(&py, &BridgedKind::crafter()).unwrap();
    env.frames = false;
    env.reset(0).unwrap();
    // A refused action is an error too (the evaluator never sends one: it checks the list first).
    let e = env.step("Fly").unwrap_err().to_string();
    assert!(e.contains("crafter") && e.contains("bad_action"), "{e}");
    let pid = env.bridge().pid().unwrap();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let e = env.step("Noop").unwrap_err();
    assert!(matches!(e, EvalError::Env(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("crafter bridge failed during step \"Noop\""), "{msg}");
    // A missing interpreter is named too.
    let e = BridgedEnv::start(std::path::Path::new("/nonexistent/python"), &BridgedKind::crafter()).err().unwrap();
    assert!(e.to_string().contains("cargo xtask setup balrog"), "{e}");
}

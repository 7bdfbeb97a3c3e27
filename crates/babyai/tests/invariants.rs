//! Invariants of the engine and the Environment contract, checked on random seeds and random
//! action sequences (proptest), independent of the Python fixtures.

use proptest::prelude::*;
use vldac_babyai::grid::Kind;
use vldac_babyai::{Action, BALROG_ACTIONS, MixedTask, make};
use vldac_core::{Action as CoreAction, EnvError, Environment};

const LEVELS: &[&str] = &[
    "BabyAI-MixedTrainLocal-v0/goto",
    "BabyAI-MixedTrainLocal-v0/pickup",
    "BabyAI-MixedTrainLocal-v0/open",
    "BabyAI-MixedTrainLocal-v0/putnext",
    "BabyAI-MixedTrainLocal-v0/pick_up_seq_go_to",
    "BabyAI-MixedTrainLocal-v0",
    "BabyAI-GoToLocal-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-OpenDoor-v0",
    "BabyAI-GoToObjMaze-v0",
    "BabyAI-OpenDoorsOrderN4-v0",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The agent never stands on a wall or closed door, objects are never lost or duplicated
    /// (boxes may vanish when toggled), a positive reward comes only with success-termination and
    /// lies in (0, 1], and truncation happens exactly at the step limit.
    #[test]
    fn engine_invariants(level in 0..LEVELS.len(), seed in 0u64..1_000_000, actions in prop::collection::vec(0usize..7, 1..200)) {
        let mut env = make(LEVELS[level]).unwrap();
        env.reset_episode(Some(seed));
        let ids = |env: &vldac_babyai::BabyAi| {
            let w = env.world();
            let mut v: Vec<(u32, Kind)> = (0..w.width())
                .flat_map(|x| (0..w.height()).filter_map(move |y| w.grid.get(x, y).copied()))
                .filter(|o| o.id != 0)
                .map(|o| (o.id, o.kind))
                .chain(w.carrying.map(|o| (o.id, o.kind)))
                .collect();
            v.sort_by_key(|p| p.0);
            v
        };
        let before = ids(&env);
        for a in actions {
            let o = env.step_action(Action::from_index(a).unwrap());
            let w = env.world();
            let here = w.grid.get(w.agent_pos.0, w.agent_pos.1);
            prop_assert!(here.is_none_or(|c| c.can_overlap()), "agent inside {:?}", here);
            prop_assert!(o.reward >= 0.0 && o.reward <= 1.0);
            if o.reward > 0.0 {
                prop_assert!(o.terminated);
                prop_assert_eq!(o.reward, 1.0 - 0.9 * (w.step_count as f64 / w.max_steps as f64));
            }
            prop_assert_eq!(o.truncated, w.step_count >= w.max_steps);
            if let Some(c) = w.carrying {
                prop_assert!(w.grid.find(c.id).is_none(), "carried object still on the grid");
            }
            let now = ids(&env);
            prop_assert!(now.iter().all(|p| before.contains(p)), "an object appeared");
            prop_assert!(before.iter().all(|p| now.contains(p) || p.1 == Kind::Box), "an object vanished");
            if o.terminated || o.truncated {
                break;
            }
        }
    }

    /// MixedTrainLocal never asks for the held-out combinations, builds BALROG's layouts and
    /// words missions in the task's pattern.
    #[test]
    fn mixed_train_local_missions(task in 0usize..5, seed in 0u64..10_000_000) {
        let task = MixedTask::ALL[task];
        let mut env = make(&format!("BabyAI-MixedTrainLocal-v0/{}", task.name())).unwrap();
        env.reset_episode(Some(seed));
        let m = env.mission().to_string();
        for held_out in ["yellow box", "red key", "red door", "green ball", "grey door"] {
            prop_assert!(!m.contains(held_out), "{m}");
        }
        let w = env.world();
        prop_assert_eq!((w.width(), w.height()), if task == MixedTask::Open { (15, 8) } else { (8, 8) });
        let ok = match task {
            MixedTask::GoTo => m.starts_with("go to the "),
            MixedTask::Pickup => m.starts_with("pick up the "),
            MixedTask::Open => m == "open the door" || (m.starts_with("open the ") && m.ends_with(" door")),
            MixedTask::PutNext => m.starts_with("put the ") && m.contains(" next to "),
            MixedTask::PickUpSeqGoTo => {
                (m.starts_with("pick up ") && m.contains(", then go to ")) || (m.starts_with("go to ") && m.contains(" after you pick up "))
            }
        };
        prop_assert!(ok, "{:?}: {}", task, m);
        prop_assert_eq!(w.max_steps, if matches!(task, MixedTask::GoTo | MixedTask::Pickup) { 64 } else { 128 });
        prop_assert_eq!(vldac_core::Environment::spec(&env).max_episode_steps, Some(w.max_steps));
    }
}

#[test]
fn mixed_test_local_uses_only_held_out_pairs() {
    for task in MixedTask::ALL {
        let mut env = make(&format!("BabyAI-MixedTestLocal-v0/{}", task.name())).unwrap();
        for seed in 0..30 {
            env.reset_episode(Some(seed));
            let m = env.mission();
            for allowed_in_train in ["yellow key", "red ball", "green box", "blue door", "purple key"] {
                assert!(!m.contains(allowed_in_train), "{m}");
            }
            if task == MixedTask::Open {
                assert!(m == "open the red door" || m == "open the grey door", "{m}");
            }
        }
    }
}

#[test]
fn environment_contract() {
    let mut env = make("BabyAI-MixedTrainLocal-v0/goto").unwrap();
    assert!(matches!(env.step(&CoreAction::Discrete(0)), Err(EnvError::NeedsReset { .. })));
    let (obs, info) = env.reset(Some(3)).unwrap();
    let frame = obs.last_frame().unwrap();
    assert_eq!((frame.width(), frame.height()), (112, 112));
    assert_eq!(obs.task, env.mission());
    assert_eq!(info["mission"], env.mission());
    assert_eq!(obs.text.as_deref(), Some(vldac_babyai::balrog_context(&env.descriptions()).as_str()));
    assert!(env.prompt_text(&obs, vldac_core::PromptVersion::V1).contains(&format!("Your goal is to {}.", obs.task)));
    // Bad actions are errors, not panics; BALROG's strings are accepted.
    assert!(matches!(env.step(&CoreAction::Discrete(6)), Err(EnvError::InvalidAction { .. })));
    assert!(matches!(env.step(&CoreAction::Text("jump".into())), Err(EnvError::InvalidAction { .. })));
    let step = env.step(&CoreAction::Text("turn left".into())).unwrap();
    assert_eq!(step.reward, 0.0);
    assert_eq!(env.spec().action_space.len(), Some(BALROG_ACTIONS.len()));
    // Same seed, same episode.
    let (again, _) = env.reset(Some(3)).unwrap();
    assert_eq!(again, obs);
}

#[test]
fn mixed_id_draws_every_task_and_runs_to_an_end() {
    let mut env = make("BabyAI-MixedTrainLocal-v0").unwrap();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..40 {
        let (_, info) = env.reset(Some(seed)).unwrap();
        seen.insert(info["task"].as_str().unwrap().to_string());
        let mut steps = 0;
        loop {
            let s = env.step(&CoreAction::Discrete(seed as usize % 3)).unwrap();
            steps += 1;
            if s.terminated || s.truncated {
                break;
            }
        }
        assert!(steps <= 128);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn every_registered_id_resets() {
    for id in vldac_babyai::ids() {
        let mut env = make(&id).unwrap();
        let (obs, _) = env.reset(Some(11)).unwrap();
        assert!(!obs.task.is_empty(), "{id}");
    }
    assert!(matches!(make("BabyAI-Nope-v0"), Err(EnvError::UnknownId { .. })));
}

#[test]
fn replay_rejects_bad_scenarios() {
    let ok = vldac_babyai::replay("BabyAI-GoToLocal-v0", &serde_json::json!({"seed": 1, "actions": [6, "drop", 4]}))
        .unwrap();
    assert_eq!(ok.len(), 4);
    let err = vldac_babyai::replay("BabyAI-GoToLocal-v0", &serde_json::json!({"seed": 1, "actions": ["fly"]}));
    assert!(err.unwrap_err().contains("actions[0]"));
    assert!(vldac_babyai::replay("BabyAI-GoToLocal-v0", &serde_json::json!({"actions": []})).is_err());
}

//! BALROG episodes end to end in pure Rust: a native corridor environment behind `CoreEnv` (with its
//! own instruction prompt and default action), a scripted model, `run_plan` writing BALROG's log
//! layout, resuming, token counts, the invalid-action fallback and the summary.

use std::path::PathBuf;

use serde_json::{Value, json};
use vldac_core::{Action, ActionSpace, EnvError, EnvSpec, Environment, Info, Observation, Step};
use vldac_evals::balrog::{self, AgentConfig, AgentKind, BalrogEnv, CoreEnv, SuiteEntry, SuiteEvent};
use vldac_evals::{Model, ModelError, Request, TokenUsage};

/// A corridor of `len` cells: "go right" moves towards the goal at the end (reward 1,
/// terminated), "go left" away from it, "wait" stays.
struct Corridor {
    spec: EnvSpec,
    len: usize,
    pos: usize,
}

impl Corridor {
    fn new(len: usize) -> Self {
        let spec = EnvSpec {
            id: "Corridor-v0".into(),
            action_space: ActionSpace::labelled(["go left", "go right", "wait"]),
            max_episode_steps: None,
            max_image_obs_len: 1,
        };
        Corridor { spec, len, pos: 0 }
    }

    fn obs(&self) -> Observation {
        Observation::default()
            .with_task("reach the end of the corridor")
            .with_text(format!("You are in cell {} of {}.", self.pos, self.len))
    }
}

impl Environment for Corridor {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        self.pos = seed.unwrap_or(0) as usize % 2; // seeds change the start cell
        Ok((self.obs(), Info::new()))
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        match action {
            Action::Discrete(0) => self.pos = self.pos.saturating_sub(1),
            Action::Discrete(1) => self.pos += 1,
            Action::Discrete(2) => {}
            other => return Err(EnvError::InvalidAction { env: self.spec.id.clone(), reason: format!("{other:?}") }),
        }
        let won = self.pos + 1 >= self.len;
        Ok(Step {
            obs: self.obs(),
            reward: if won { 1.0 } else { 0.0 },
            terminated: won,
            truncated: false,
            info: Info::new(),
        })
    }
}

/// Replies from a script (cycled); records the prompts it saw; reports token counts.
struct Scripted {
    replies: Vec<String>,
    calls: usize,
    prompts: Vec<Request>,
}

impl Model for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        let r = self.replies[self.calls % self.replies.len()].clone();
        self.calls += 1;
        self.prompts.extend(batch.iter().cloned());
        Ok(vec![r])
    }
    fn last_usage(&self) -> Vec<TokenUsage> {
        vec![TokenUsage { input_tokens: 100, output_tokens: 3 }]
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-balrog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn corridor(len: usize, max_steps: usize) -> Box<dyn BalrogEnv> {
    let env = CoreEnv::new(Corridor::new(len), max_steps)
        .unwrap()
        .with_default_action("wait")
        .unwrap()
        .with_instruction(|obs| format!("Corridor rules. Goal: {}. Actions: go left, go right, wait.", obs.task));
    Box::new(env)
}

#[test]
fn run_plan_writes_balrog_logs_resumes_and_summarizes() {
    let out = tmp("plan");
    let plan = vec![SuiteEntry { env: "corridor".into(), tasks: vec!["short".into(), "long".into()], episodes: 2 }];
    let mut make = |_: &str, task: &str| Ok(if task == "short" { corridor(3, 10) } else { corridor(50, 4) });
    // "go right." is filtered to "go right" (naive agent); "jump" is invalid → default "wait".
    let mut model = Scripted { replies: vec!["go right.".into(), "jump".into()], calls: 0, prompts: vec![] };
    let config = AgentConfig { kind: AgentKind::Naive, max_image_history: 0, ..AgentConfig::default() };
    let mut events = Vec::new();
    let counts = balrog::run_plan(&plan, &mut make, &mut model, &config, 0, &out, &mut |e| {
        events.push(match e {
            SuiteEvent::Planned { total, done } => format!("planned {total} {done}"),
            SuiteEvent::EpisodeStart { task, episode, .. } => format!("start {task} {episode}"),
            SuiteEvent::Step(s) => format!("step {} {}", s.step, s.max_steps),
            SuiteEvent::EpisodeEnd { task, progression, .. } => format!("end {task} {progression}"),
        })
    })
    .unwrap();
    assert_eq!((counts.played, counts.resumed), (4, 0));
    assert_eq!(events[0], "planned 4 0");
    assert!(events.contains(&"end short 1".to_string()) && events.contains(&"end long 0".to_string()), "{events:?}");

    // Seed 0 starts at cell 0: right, (jump→wait), right → goal of a 3-cell corridor at step 3.
    let log: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("corridor/short/short_run_00.json")).unwrap()).unwrap();
    assert_eq!(log["progression"], 1.0);
    assert_eq!(log["num_steps"], 3);
    assert_eq!(log["done"], true);
    assert_eq!(log["failed_candidates"], json!(["jump"]));
    assert_eq!(log["action_frequency"], json!({"go right": 2, "wait": 1}));
    assert_eq!((log["input_tokens"].as_u64(), log["output_tokens"].as_u64()), (Some(300), Some(9)));
    assert_eq!(log["seed"], 0);
    // The long corridor stops at its step budget without "done".
    let long: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("corridor/long/long_run_01.json")).unwrap()).unwrap();
    assert_eq!((long["num_steps"].as_u64(), long["progression"].as_f64()), (Some(4), Some(0.0)));
    assert!(long.get("done").is_none());

    // The env's own instruction is the first user turn; the invalid output's feedback is shown.
    let first = &model.prompts[0].messages[0].text;
    assert_eq!(first, "Corridor rules. Goal: reach the end of the corridor. Actions: go left, go right, wait.");
    let third = model.prompts[2].messages.last().unwrap().text.clone();
    assert!(
        third.contains("Your previous output did not contain a valid action. Defaulted to action: wait"),
        "{third}"
    );
    assert!(third.starts_with("Current Observation:"), "{third}");

    // Resume: nothing left to play, the model is not called.
    let calls = model.calls;
    let counts = balrog::run_plan(&plan, &mut make, &mut model, &config, 0, &out, &mut |_| {}).unwrap();
    assert_eq!((counts.played, counts.resumed), (0, 4));
    assert_eq!(model.calls, calls);
    // A lost log is replayed alone.
    std::fs::remove_file(out.join("corridor/long/long_run_00.json")).unwrap();
    let counts = balrog::run_plan(&plan, &mut make, &mut model, &config, 0, &out, &mut |_| {}).unwrap();
    assert_eq!((counts.played, counts.resumed), (1, 3));

    let s = balrog::write_summary(&out).unwrap();
    let env = &s.environments["corridor"];
    assert_eq!(env.episodes_played, 4);
    assert_eq!(env.tasks["short"].progression_percentage, 100.0);
    assert_eq!(env.tasks["long"].progression_percentage, 0.0);
    assert_eq!(s.average_progress, 50.0);
    assert!(out.join("summary.json").exists() && out.join("corridor/corridor_summary.json").exists());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn environment_errors_name_the_environment() {
    struct Broken(EnvSpec);
    impl Environment for Broken {
        fn spec(&self) -> &EnvSpec {
            &self.0
        }
        fn reset(&mut self, _: Option<u64>) -> Result<(Observation, Info), EnvError> {
            Err(EnvError::Backend { env: self.0.id.clone(), reason: "server gone".into() })
        }
        fn step(&mut self, _: &Action) -> Result<Step, EnvError> {
            unreachable!()
        }
    }
    let spec = EnvSpec {
        id: "Broken-v0".into(),
        action_space: ActionSpace::labelled(["a"]),
        max_episode_steps: None,
        max_image_obs_len: 1,
    };
    let mut env = CoreEnv::new(Broken(spec), 5).unwrap();
    let e = env.reset(0).unwrap_err().to_string();
    assert!(e.contains("Broken-v0") && e.contains("server gone"), "{e}");
    // Unlabelled action spaces are refused with the env's id.
    let spec = EnvSpec {
        id: "Nums-v0".into(),
        action_space: ActionSpace::Text,
        max_episode_steps: None,
        max_image_obs_len: 1,
    };
    let e = CoreEnv::new(Broken(spec), 5).err().unwrap().to_string();
    assert!(e.contains("Nums-v0") && e.contains("labelled"), "{e}");
}

//! Episode ends against the official VL-DAC code (`fixtures/gen_episode_ends.py`, committed as
//! `fixtures/official_episode_ends.json`). Tolerance 1e-6 (relative above 1).
//!
//! * `flag_table`: the official wrapper of each family turns `(terminated, truncated)` into the
//!   storage's `(masks, bad_masks)`; [`TruncationMode::official_masks`] must say the same.
//! * `cases`: random buffers with both flags set at once, at the first and the last step, in
//!   several envs of a batch, λ ∈ {0, 0.37, 0.95, 1}; for every family, the official presets
//!   resolved for it give the official returns and advantages.
//! * `traces`: short rollouts of our real environments (MiniWorld, Gym-Cards, native WebShop) set
//!   up as vldac-train does (`TimeLimit` over the env, `VecEnv` with auto-reset), with seeded random
//!   actions and synthetic values; the official wrapper + storage code replayed the same episode
//!   ends. The test re-runs each rollout, checks that it still produces the recorded flags and
//!   rewards, and compares our returns and advantages through `RolloutStorage` with the official
//!   preset resolved for the env id.
//!
//! Regenerate: `VLDAC_EPISODE_END_TRACES=target/episode_end_traces.json cargo test --release -p
//! vldac-dac --test official_episode_ends`, then `fixtures/gen_episode_ends.py --traces` (see there).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use vldac_core::seed::episode_seed;
use vldac_core::{Action, ActionSpace, Environment, Observation, TimeLimit, VecEnv};
use vldac_dac::config::{AlgoConfig, DacConfig, EnvFamily, TruncationMode};
use vldac_dac::gae::{Trajectories, compute_gae};
use vldac_dac::{RolloutStorage, StepRecord};

const OFFICIAL_PRESETS: [&str; 2] = ["vldac-official-miniworld", "vldac-official"];

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/official_episode_ends.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect()
}

fn assert_close(ours: f64, theirs: f64, what: &str) {
    let tol = 1e-6 * theirs.abs().max(1.0);
    assert!((ours - theirs).abs() <= tol, "{what}: ours {ours} vs official {theirs}");
}

fn family(name: &str) -> EnvFamily {
    match name {
        "miniworld" => EnvFamily::MiniWorld,
        "gym_cards" => EnvFamily::GymCards,
        "alfworld" => EnvFamily::AlfWorld,
        "webshop" => EnvFamily::WebShop,
        other => panic!("unknown family {other}"),
    }
}

/// A buffer as the fixtures store it (time-major, `t·N + i`).
struct Buffer {
    n: usize,
    gamma: f32,
    lambda: f32,
    rewards: Vec<f32>,
    values: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    next_values: Vec<f32>,
}

impl Buffer {
    fn from_json(c: &Value) -> Buffer {
        Buffer {
            n: c["num_envs"].as_u64().unwrap() as usize,
            gamma: c["gamma"].as_f64().unwrap() as f32,
            lambda: c["lambda"].as_f64().unwrap() as f32,
            rewards: f32s(&c["rewards"]),
            values: f32s(&c["values"]),
            terminated: bools(&c["terminated"]),
            truncated: bools(&c["truncated"]),
            next_values: f32s(&c["next_values"]),
        }
    }

    /// Returns and raw advantages through `RolloutStorage::compute_advantages` under `cfg`
    /// (γ, λ taken from the buffer, no normalisation). Truncated steps carry a final value, as
    /// the trainer gives them; the official modes must ignore it.
    fn through_storage(&self, mut cfg: AlgoConfig) -> (Vec<f32>, Vec<f32>) {
        cfg.gamma = self.gamma;
        cfg.gae_lambda = self.lambda;
        cfg.normalize_advantages = false;
        let steps = self.rewards.len() / self.n;
        let mut st = RolloutStorage::<()>::new(self.n, steps).unwrap();
        for t in 0..steps {
            let batch = (0..self.n)
                .map(|i| {
                    let k = t * self.n + i;
                    StepRecord {
                        obs: (),
                        tokens: vec![1],
                        log_probs: vec![-0.5],
                        ref_log_probs: vec![],
                        action_start: None,
                        value: self.values[k],
                        reward: self.rewards[k],
                        terminated: self.terminated[k],
                        truncated: self.truncated[k],
                        final_value: Some(7.0 + k as f32),
                        task: 0,
                    }
                })
                .collect();
            st.insert(batch).unwrap();
        }
        st.finish(self.next_values.clone()).unwrap();
        st.compute_advantages(&cfg).unwrap();
        (st.returns().to_vec(), st.advantages().to_vec())
    }

    fn check(&self, ours: &(Vec<f32>, Vec<f32>), official: &Value, what: &str) {
        let (ret, adv) = ours;
        for (k, theirs) in f32s(&official["returns"]).iter().enumerate() {
            assert_close(ret[k] as f64, *theirs as f64, &format!("{what}: return {k}"));
        }
        for (k, theirs) in f32s(&official["advantages"]).iter().enumerate() {
            assert_close(adv[k] as f64, *theirs as f64, &format!("{what}: advantage {k}"));
        }
    }
}

#[test]
fn official_wrappers_flag_mapping() {
    let fx = fixtures();
    let rows = fx["flag_table"].as_array().unwrap();
    assert_eq!(rows.len(), 16, "4 families × 4 flag pairs");
    for row in rows {
        let fam = family(row["family"].as_str().unwrap());
        let (term, trunc) = (row["terminated"].as_bool().unwrap(), row["truncated"].as_bool().unwrap());
        let theirs = (row["mask"].as_f64().unwrap() as f32, row["bad_mask"].as_f64().unwrap() as f32);
        let ours = TruncationMode::official_for(fam).official_masks(term, trunc);
        assert_eq!(ours, Some(theirs), "{fam:?} terminated={term} truncated={trunc}");
    }
    // gymnasium's TimeLimit (under the official Gym-Cards and MiniWorld wrappers) reports both
    // flags when the goal is reached on the limit step, and never sets `TimeLimit.truncated`.
    let g = &fx["gymnasium_time_limit"];
    assert_eq!(g["terminated"], json!(true));
    assert_eq!(g["truncated"], json!(true));
    assert_eq!(g["info_has_time_limit_truncated"], json!(false));
}

#[test]
fn official_presets_match_official_storage_at_episode_ends() {
    let fx = fixtures();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    let mut lambdas = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let b = Buffer::from_json(case);
        lambdas.push(b.lambda);
        let both = b.terminated.iter().zip(&b.truncated).filter(|(a, c)| **a && **c).count();
        assert!(both >= 1, "{name}: every case has a step with both flags");
        for (fam_name, official) in case["official"].as_object().unwrap() {
            let fam = family(fam_name);
            // compute_gae with the family's official rule
            let fin = vec![0.0; b.rewards.len()];
            let traj = Trajectories {
                num_envs: b.n,
                rewards: &b.rewards,
                values: &b.values,
                terminated: &b.terminated,
                truncated: &b.truncated,
                final_values: &fin,
                next_values: &b.next_values,
            };
            let (mut a, mut r) = (vec![0.0; b.rewards.len()], vec![0.0; b.rewards.len()]);
            compute_gae(&traj, b.gamma, b.lambda, TruncationMode::official_for(fam), &mut a, &mut r).unwrap();
            b.check(&(r, a), official, &format!("{name} {fam_name} compute_gae"));
            // every official preset, resolved for the family, through the storage
            for preset in OFFICIAL_PRESETS {
                let mut cfg = DacConfig::preset(preset).unwrap().algo;
                assert_eq!(cfg.truncation, TruncationMode::Official, "{preset}");
                cfg.resolve_episode_end(fam);
                b.check(&b.through_storage(cfg), official, &format!("{name} {fam_name} {preset}"));
            }
        }
    }
    for l in [0.0, 1.0] {
        assert!(lambdas.contains(&l), "λ = {l} covered");
    }
    assert!(lambdas.iter().any(|&l| l > 0.0 && l < 1.0), "a λ in between");
}

#[test]
fn issue20_minimal_case() {
    // N = 1, T = 2, γ = 0.9, λ = 0.95, r = [0, 1], V = [0.5, 0.5], the last step both terminated
    // and truncated: the official MiniWorld run gives returns [0.45, 0.5].
    let fx = fixtures();
    let case = fx["cases"].as_array().unwrap().iter().find(|c| c["name"] == "issue20_minimal").unwrap();
    let b = Buffer::from_json(case);
    let mut cfg = DacConfig::preset("vldac-official-miniworld").unwrap().algo;
    cfg.resolve_episode_end_for_env("MiniWorld-OneRoom-v0").unwrap();
    let (ret, adv) = b.through_storage(cfg.clone());
    assert!((ret[0] - 0.45).abs() < 1e-6 && (ret[1] - 0.5).abs() < 1e-6, "{ret:?}");
    assert!((adv[1]).abs() < 1e-7, "A = 0 at the step with both flags: {adv:?}");
    assert_eq!(case["official"]["miniworld"]["returns"], json!([0.44999998807907104, 0.5]));
    // Gym-Cards: a time-out is a termination. Our default: termination wins, no bootstrap.
    cfg.truncation = TruncationMode::official_for(EnvFamily::GymCards);
    let (ret, _) = b.through_storage(cfg.clone());
    assert!((ret[0] - 0.8775).abs() < 1e-6 && (ret[1] - 1.0).abs() < 1e-6, "{ret:?}");
    let paper = DacConfig::preset("vldac-paper").unwrap().algo;
    assert_eq!(paper.truncation, TruncationMode::Bootstrap);
    let (ret_paper, _) = b.through_storage(paper);
    assert!((ret_paper[0] - 0.8775).abs() < 1e-6 && (ret_paper[1] - 1.0).abs() < 1e-6, "{ret_paper:?}");
}

#[test]
fn unresolved_official_is_an_error_only_at_a_truncation() {
    let cfg = DacConfig::preset("vldac-official").unwrap().algo;
    let b = Buffer {
        n: 1,
        gamma: 0.9,
        lambda: 0.95,
        rewards: vec![0.0, 1.0],
        values: vec![0.5, 0.5],
        terminated: vec![false, true],
        truncated: vec![false, false],
        next_values: vec![0.0],
    };
    let (ret, _) = b.through_storage(cfg.clone()); // a termination alone is the same in every family
    assert!((ret[1] - 1.0).abs() < 1e-6);
    let mut st = RolloutStorage::<()>::new(1, 1).unwrap();
    st.insert(vec![StepRecord {
        obs: (),
        tokens: vec![1],
        log_probs: vec![-0.5],
        ref_log_probs: vec![],
        action_start: None,
        value: 0.0,
        reward: 0.0,
        terminated: false,
        truncated: true,
        final_value: None,
        task: 0,
    }])
    .unwrap();
    st.finish(vec![0.0]).unwrap();
    let err = st.compute_advantages(&cfg).unwrap_err().to_string();
    assert!(err.contains("official") && err.contains("step 0 env 0"), "{err}");
    let mut c = cfg;
    assert!(c.resolve_episode_end_for_env("BabyAI-GoToLocal-v0").is_err());
    c.resolve_episode_end_for_env("WebShop-v0").unwrap();
    assert_eq!(c.truncation, TruncationMode::Terminate);
}

// ---- short runs of our environments ------------------------------------------------------------

/// How a rollout is made: env id, N, T, root seed. The time limit is chosen so that env 0's
/// first episode reaches its goal exactly on the limit step (both flags at once).
struct RunSpec {
    env_id: &'static str,
    num_envs: usize,
    num_steps: usize,
    seed: u64,
}

const RUNS: [RunSpec; 3] = [
    RunSpec { env_id: "MiniWorld-OneRoomS6Fast-v0", num_envs: 3, num_steps: 40, seed: 11 },
    RunSpec { env_id: "gym_cards/NumberLine-v0", num_envs: 4, num_steps: 16, seed: 5 },
    RunSpec { env_id: "WebShop-v0", num_envs: 3, num_steps: 12, seed: 3 },
];

fn make(id: &str) -> Box<dyn Environment> {
    if id.starts_with("MiniWorld-") {
        vldac_miniworld::make(id).unwrap()
    } else if id.starts_with("gym_cards/") {
        vldac_gym_cards::make(id).unwrap()
    } else {
        vldac_textenv::registry::make(id).unwrap().unwrap()
    }
}

/// Seeded random actions, biased towards progress so that goals are reached in a short run:
/// MiniWorld moves forward more often, WebShop searches for the task's words and often buys.
fn act(space: &ActionSpace, obs: &Observation, rng: &mut ChaCha8Rng) -> Action {
    match space {
        ActionSpace::Discrete { labels, .. } => {
            let forward = labels.iter().position(|l| l.contains("forward"));
            match forward {
                Some(f) if rng.random_bool(0.6) => Action::Discrete(f),
                _ => Action::Discrete(rng.random_range(0..labels.len())),
            }
        }
        ActionSpace::Text => {
            if obs.admissible.iter().any(|a| a.starts_with("search[")) {
                let words: Vec<&str> = obs.task.split_whitespace().take(4).collect();
                return Action::Text(format!("search[{}]", words.join(" ")));
            }
            let buy = obs.admissible.iter().find(|a| a.eq_ignore_ascii_case("click[buy now]"));
            if let Some(buy) = buy
                && rng.random_bool(0.5)
            {
                return Action::Text(buy.clone());
            }
            let clicks: Vec<&String> = obs.admissible.iter().filter(|a| a.starts_with("click[")).collect();
            if clicks.is_empty() {
                Action::Text("click[Back to Search]".into())
            } else {
                Action::Text(clicks[rng.random_range(0..clicks.len())].clone())
            }
        }
    }
}

/// Rewards and flags of a rollout set up like vldac-train's (TimeLimit over the env, VecEnv with
/// per-episode seeds and auto-reset). Actions of env `i` at step `t` depend only on `(seed, i,
/// t)` and the observation.
fn rollout(spec: &RunSpec, n: usize, steps: usize, limit: usize) -> (Vec<f32>, Vec<bool>, Vec<bool>) {
    let envs: Vec<TimeLimit<Box<dyn Environment>>> = (0..n).map(|_| TimeLimit::new(make(spec.env_id), limit)).collect();
    let space = envs[0].spec().action_space.clone();
    let mut venv = VecEnv::new(envs, spec.seed, 1).unwrap();
    let mut obs: Vec<Observation> = venv.reset().unwrap().into_iter().map(|(o, _)| o).collect();
    let (mut r, mut te, mut tr) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..steps {
        let actions: Vec<Action> = (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(episode_seed(spec.seed, i, t as u64));
                act(&space, &obs[i], &mut rng)
            })
            .collect();
        let s = venv.step(&actions).unwrap();
        r.extend(s.rewards.iter().map(|&x| x as f32));
        te.extend(&s.terminated);
        tr.extend(&s.truncated);
        obs = s.obs;
    }
    (r, te, tr)
}

/// The limit that makes env 0's first episode end with both flags: the step its goal is reached
/// at without a (binding) limit.
fn both_flags_limit(spec: &RunSpec) -> usize {
    let (_, te, tr) = rollout(spec, 1, spec.num_steps, usize::MAX);
    let first_end = te.iter().zip(&tr).position(|(a, b)| *a || *b);
    match first_end {
        Some(k) if te[k] && !tr[k] => k + 1,
        other => panic!("{}: env 0's first episode does not reach its goal within the run ({other:?})", spec.env_id),
    }
}

fn synthetic_values(len: usize, salt: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(salt);
    (0..len).map(|_| (rng.random_range(-100i32..=100) as f32) / 64.0).collect()
}

fn record(spec: &RunSpec, preset: &str) -> Value {
    let limit = both_flags_limit(spec);
    let (rewards, terminated, truncated) = rollout(spec, spec.num_envs, spec.num_steps, limit);
    let cfg = DacConfig::preset(preset).unwrap().algo;
    json!({
        "env_id": spec.env_id,
        "preset": preset,
        "limit": limit,
        "num_envs": spec.num_envs,
        "gamma": cfg.gamma,
        "lambda": cfg.gae_lambda,
        "rewards": rewards,
        "values": synthetic_values(rewards.len(), spec.seed),
        "terminated": terminated,
        "truncated": truncated,
        "next_values": synthetic_values(spec.num_envs, spec.seed + 1),
    })
}

#[test]
fn short_runs_replayed_through_the_official_code() {
    if let Ok(path) = std::env::var("VLDAC_EPISODE_END_TRACES") {
        let traces: Vec<Value> =
            RUNS.iter().flat_map(|spec| OFFICIAL_PRESETS.iter().map(move |p| record(spec, p))).collect();
        std::fs::write(&path, serde_json::to_string(&traces).unwrap()).unwrap();
        eprintln!("wrote {} traces to {path}; now run fixtures/gen_episode_ends.py --traces {path}", traces.len());
        return;
    }
    let fx = fixtures();
    let traces = fx["traces"].as_array().unwrap();
    assert_eq!(traces.len(), RUNS.len() * OFFICIAL_PRESETS.len(), "every official preset on every env family");
    for tr in traces {
        let env_id = tr["env_id"].as_str().unwrap();
        let preset = tr["preset"].as_str().unwrap();
        let spec = RUNS.iter().find(|s| s.env_id == env_id).unwrap();
        // the rollout still ends its episodes where the official code was shown them
        let fresh = record(spec, preset);
        for key in ["limit", "terminated", "truncated", "values", "next_values"] {
            assert_eq!(fresh[key], tr[key], "{env_id} {preset}: {key} changed; regenerate the fixture");
        }
        for (k, (a, b)) in f32s(&fresh["rewards"]).iter().zip(f32s(&tr["rewards"])).enumerate() {
            assert_close(*a as f64, b as f64, &format!("{env_id} {preset}: reward {k}"));
        }
        let b = Buffer::from_json(tr);
        let n_both = b.terminated.iter().zip(&b.truncated).filter(|(a, c)| **a && **c).count();
        let n_trunc = b.terminated.iter().zip(&b.truncated).filter(|(a, c)| !**a && **c).count();
        let n_term = b.terminated.iter().zip(&b.truncated).filter(|(a, c)| **a && !**c).count();
        eprintln!(
            "{env_id} {preset}: limit {}, ends: {n_both} both, {n_trunc} truncated only, {n_term} terminated only",
            tr["limit"]
        );
        assert!(n_both >= 1 && n_trunc >= 1, "{env_id}: the run has both-flag and truncation-only ends");
        let mut cfg = DacConfig::preset(preset).unwrap().algo;
        cfg.resolve_episode_end_for_env(env_id).unwrap();
        b.check(&b.through_storage(cfg), &tr["official"], &format!("{env_id} {preset}"));
    }
}

//! Steps per second of this crate on the workloads `scripts/speed_vs_peer.py` times in the
//! Python peer; prints one JSON object. `cargo run --release -p vldac-babaisai --example speed`

use std::time::Instant;

use vldac_babaisai::engine::Act;
use vldac_babaisai::{BabaIsAi, Config};
use vldac_core::{Action, Environment};

const TASK: &str = "BabaIsAI-two_room-break_stop-make_win-v0";

fn actions(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 5) as usize
        })
        .collect()
}

fn env_steps_per_s(tile_size: u32, n: usize) -> f64 {
    let mut env = BabaIsAi::from_id(TASK, Config { tile_size, ..Config::default() }).expect("task");
    env.reset(Some(0)).expect("reset");
    let acts = actions(n);
    let t = Instant::now();
    for &a in &acts {
        if env.step(&Action::Discrete(a)).expect("step").done() {
            env.reset(None).expect("reset");
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mut env = BabaIsAi::from_id(TASK, Config { tile_size: 0, ..Config::default() }).expect("task");
    env.reset(Some(0)).expect("reset");
    let start = env.world().expect("level").clone();
    let mut world = start.clone();
    let acts = actions(n);
    let t = Instant::now();
    for &a in &acts {
        let out = world.step(Act::from_index(a).expect("act"));
        if out.win || out.timeout {
            world = start.clone();
        }
    }
    let engine = n as f64 / t.elapsed().as_secs_f64();
    let text = env_steps_per_s(0, n);
    let frame = env_steps_per_s(32, n / 20);
    let t = Instant::now();
    let resets = n / 10;
    for s in 0..resets {
        env.reset(Some(s as u64)).expect("reset");
    }
    let reset = resets as f64 / t.elapsed().as_secs_f64();
    println!(
        "{{\"task\": \"{TASK}\", \"engine_step_per_s\": {engine:.1}, \"text_step_per_s\": {text:.1}, \
         \"text_frame_step_per_s\": {frame:.1}, \"reset_per_s\": {reset:.1}}}"
    );
}

//! Baba Is AI: engine step, environment step with BALROG's text (with and without the frame),
//! and reset (level generation) on BALROG's two-room task.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vldac_babaisai::engine::Act;
use vldac_babaisai::{BabaIsAi, Config};
use vldac_core::{Action, Environment};

const TASK: &str = "BabaIsAI-two_room-break_stop-make_win-v0";

/// A fixed pseudo-random action stream (mostly moves).
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

fn run(c: &mut Criterion, name: &str, tile_size: u32) {
    let mut env = BabaIsAi::from_id(TASK, Config { tile_size, ..Config::default() }).expect("task");
    env.reset(Some(0)).expect("reset");
    let acts = actions(4096);
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let s = env.step(&Action::Discrete(acts[i % acts.len()])).expect("step");
            i += 1;
            if s.done() {
                env.reset(None).expect("reset");
            }
            black_box(s.reward)
        })
    });
}

fn babaisai(c: &mut Criterion) {
    let mut env = BabaIsAi::from_id(TASK, Config { tile_size: 0, ..Config::default() }).expect("task");
    env.reset(Some(0)).expect("reset");
    let mut world = env.world().expect("level").clone();
    let start = world.clone();
    let acts = actions(4096);
    let mut i = 0;
    c.bench_function("babaisai/engine_step", |b| {
        b.iter(|| {
            let out = world.step(Act::from_index(acts[i % acts.len()]).expect("act"));
            i += 1;
            if out.win || out.timeout {
                world = start.clone();
            }
            black_box(out.reward)
        })
    });
    run(c, "babaisai/env_step_text", 0);
    run(c, "babaisai/env_step_text_frame32", 32);
    let mut seed = 0;
    c.bench_function("babaisai/reset_text", |b| {
        b.iter(|| {
            seed += 1;
            black_box(env.reset(Some(seed)).expect("reset").0.text)
        })
    });
}

criterion_group!(benches, babaisai);
criterion_main!(benches);

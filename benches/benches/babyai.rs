//! BabyAI engine throughput, comparable op for op with `crates/babyai/fixtures/bench_python.py`:
//! reset (level generation + first text), step (MiniGrid step + view + BabyAI-Text descriptions,
//! what the fork's `env.step` computes), the 16 px POV frame, and the full BALROG-style
//! `Environment::step` (step + text + frame).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vldac_babyai::{Action, make};
use vldac_core::{Action as CoreAction, Environment};

const ID: &str = "BabyAI-MixedTrainLocal-v0/putnext";

fn reset(c: &mut Criterion) {
    for id in ["BabyAI-MixedTrainLocal-v0/putnext", "BabyAI-MixedTrainLocal-v0/open", "BabyAI-GoToLocal-v0"] {
        let mut env = make(id).expect("registered");
        let mut seed = 0;
        c.bench_function(&format!("babyai/reset_text/{id}"), |b| {
            b.iter(|| {
                seed += 1;
                env.reset_episode(Some(seed));
                black_box(env.descriptions())
            })
        });
    }
}

fn step(c: &mut Criterion) {
    let mut env = make(ID).expect("registered");
    env.reset_episode(Some(0));
    let mut k = 0usize;
    let mut seed = 0;
    c.bench_function("babyai/step_text", |b| {
        b.iter(|| {
            // A fixed cycle of moves; episodes restart when they end.
            k += 1;
            let o = env.step_action(Action::from_index([2, 2, 1, 2, 0, 3, 2, 4][k % 8]).expect("action"));
            let text = env.descriptions();
            let view = env.world().view().encode();
            if o.terminated || o.truncated {
                seed += 1;
                env.reset_episode(Some(seed));
            }
            black_box((text, view))
        })
    });
    c.bench_function("babyai/render_pov16", |b| b.iter(|| black_box(env.render_pov())));

    let mut env = make(ID).expect("registered");
    env.reset(Some(0)).expect("reset");
    c.bench_function("babyai/env_step_balrog", |b| {
        b.iter(|| {
            k += 1;
            let s = env.step(&CoreAction::Discrete([2, 2, 1, 2, 0, 3, 2, 4][k % 8])).expect("step");
            if s.terminated || s.truncated {
                seed += 1;
                env.reset(Some(seed)).expect("reset");
            }
            black_box(s.obs)
        })
    });
}

criterion_group!(benches, reset, step);
criterion_main!(benches);

//! BALROG's Crafter and NetHack through the bridge (`vldac_evals::balrog_bridge`): one step as the
//! evaluator takes it, with and without the frame. Compare with BALROG's wrappers in-process:
//! `target/venvs/balrog/bin/python crates/textenv/fixtures/balrog/bench_peer.py`. Needs
//! `cargo xtask setup balrog`; without it the benchmarks are skipped with a message.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use vldac_evals::balrog::BalrogEnv;
use vldac_evals::balrog_bridge::{BridgedEnv, BridgedKind, NleObsMode, default_python};

fn steps(c: &mut Criterion, name: &str, kind: &BridgedKind, frames: bool, actions: &[&str]) {
    let mut env = BridgedEnv::start(&default_python(), kind).expect("bridge starts");
    env.frames = frames;
    env.reset(1).expect("reset");
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            let (obs, _, term, trunc) = env.step(actions[i % actions.len()]).expect("step");
            if term || trunc {
                env.reset(i as u64).expect("reset");
            }
            black_box(obs)
        })
    });
}

fn balrog(c: &mut Criterion) {
    if !default_python().exists() {
        eprintln!("skipped: {} missing (cargo xtask setup balrog)", default_python().display());
        return;
    }
    let moves = ["Move West", "Move East", "Do", "Move North", "Move South"];
    steps(c, "balrog/crafter_step_frame", &BridgedKind::crafter(), true, &moves);
    steps(c, "balrog/crafter_step_text", &BridgedKind::crafter(), false, &moves);
    let moves = ["north", "east", "south", "west", "search"];
    steps(c, "balrog/nle_step_hybrid_text", &BridgedKind::nle(NleObsMode::Hybrid, None), false, &moves);
    steps(c, "balrog/nle_step_language_frame", &BridgedKind::nle(NleObsMode::Language, None), true, &moves);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = balrog
}
criterion_main!(benches);

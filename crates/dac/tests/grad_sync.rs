//! `Dac::update_with` split over K simulated ranks (threads with an in-process sum, no MPI) takes
//! the one-process step: the same losses and the same parameters, for every algorithm, with
//! gradient accumulation, micro-batches that do not divide by K, and ranks whose slice of a
//! micro-batch is empty.

use std::sync::{Arc, Barrier, Mutex};

use burn::tensor::Device;
use vldac_dac::toy::{CorridorObs, Part, TinyPolicy, ToyRunner};
use vldac_dac::update::GradSync;
use vldac_dac::{Dac, DacConfig, DacError, RolloutStorage, UpdateStats};

/// Every rank's buffer, summed in rank order (the same on every rank).
struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
}

struct ThreadSync {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl ThreadSync {
    fn sum(&self, xs: &[f64]) -> Vec<f64> {
        self.shared.slots.lock().unwrap()[self.rank] = xs.to_vec();
        self.shared.barrier.wait();
        let out = {
            let slots = self.shared.slots.lock().unwrap();
            let mut out = vec![0.0; xs.len()];
            for s in slots.iter() {
                assert_eq!(s.len(), xs.len(), "ranks reduce buffers of different lengths");
                out.iter_mut().zip(s).for_each(|(o, x)| *o += x);
            }
            out
        };
        self.shared.barrier.wait();
        out
    }
}

impl GradSync for ThreadSync {
    fn size(&self) -> usize {
        self.size
    }
    fn rows(&self, len: usize) -> std::ops::Range<usize> {
        (self.rank * len / self.size)..((self.rank + 1) * len / self.size)
    }
    fn sum_f64(&mut self, xs: &mut [f64]) -> Result<(), DacError> {
        let s = self.sum(xs);
        xs.copy_from_slice(&s);
        Ok(())
    }
    fn sum_f32(&mut self, xs: &mut [f32]) -> Result<(), DacError> {
        let wide: Vec<f64> = xs.iter().map(|&x| x as f64).collect();
        let s = self.sum(&wide);
        xs.iter_mut().zip(s).for_each(|(x, v)| *x = v as f32);
        Ok(())
    }
}

fn config(preset: &str) -> DacConfig {
    let mut cfg = DacConfig::preset(preset).unwrap();
    // 48 rows: 9 micro-batches of 5 and one of 3, of which rank 0 of 4 evaluates no row.
    cfg.algo.mini_batch_size = 5;
    cfg.algo.grad_accum_steps = 3; // and a partial window at the end of each epoch
    cfg.algo.ppo_epochs = 2;
    cfg.algo.value_warmup_iterations = 1;
    cfg.algo.token_selection = Default::default();
    cfg.rollout.num_envs = 4;
    cfg.rollout.num_steps = 12;
    cfg.rollout.max_new_tokens = 3;
    cfg.rollout.top_k = None;
    cfg.optim.max_grad_norm = Some(0.5);
    cfg.algo.loop_group_size = 2;
    cfg
}

/// Iterations 0..3 with `size` ranks (1: plain `update`): per-iteration stats and the final
/// parameters of rank 0 (all ranks' parameters are checked equal).
fn run(preset: &str, size: usize) -> (Vec<UpdateStats>, Vec<f32>, Vec<f32>) {
    let shared = Arc::new(Shared { barrier: Barrier::new(size), slots: Mutex::new(vec![Vec::new(); size]) });
    let handles: Vec<_> = (0..size)
        .map(|rank| {
            let shared = shared.clone();
            let preset = preset.to_string();
            std::thread::spawn(move || {
                let cfg = config(&preset);
                let device = Device::flex().autodiff();
                let mut policy = TinyPolicy::new(&device, 3);
                let mut dac = Dac::new(cfg.clone(), 11).unwrap();
                let (n, t) = (cfg.rollout.num_envs, cfg.rollout.num_steps);
                let mut storage: RolloutStorage<CorridorObs> = RolloutStorage::new(n, t).unwrap();
                let mut runner = ToyRunner::new(n, cfg.algo.loop_group_size, 5, 9);
                let mut sync = ThreadSync { rank, size, shared };
                let mut stats = Vec::new();
                for it in 0..3 {
                    if cfg.algo.algorithm == vldac_dac::Algorithm::Loop {
                        runner.restart_all(100 + it);
                        storage.mark_all_episode_starts();
                    }
                    runner.collect(&policy, &dac, &mut storage, it).unwrap();
                    let s = if size == 1 {
                        dac.update(&mut policy, &mut storage).unwrap()
                    } else {
                        dac.update_with(&mut policy, &mut storage, &mut sync).unwrap()
                    };
                    storage.after_update();
                    stats.push(s);
                }
                (stats, policy.params(Part::Adapters), policy.params(Part::ValueHead))
            })
        })
        .collect();
    let mut results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (r, res) in results.iter().enumerate().skip(1) {
        assert_eq!(res.1, results[0].1, "{preset}: rank {r}'s adapters differ from rank 0's");
        assert_eq!(res.2, results[0].2, "{preset}: rank {r}'s value head differs from rank 0's");
    }
    results.swap_remove(0)
}

fn close(a: f64, b: f64, what: &str) {
    let tol = 1e-4 * a.abs().max(b.abs()).max(1e-3);
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

fn check(preset: &str) {
    let (one, adapters, head) = run(preset, 1);
    for k in [2, 3, 4] {
        let (many, a, h) = run(preset, k);
        for (i, (x, y)) in one.iter().zip(&many).enumerate() {
            let w = format!("{preset}, {k} ranks, iteration {i}");
            assert_eq!(
                (x.micro_batches, x.optimizer_steps, x.skipped_non_finite, x.guard_hits),
                (y.micro_batches, y.optimizer_steps, y.skipped_non_finite, y.guard_hits),
                "{w}"
            );
            // Iteration 0 collects with identical parameters; later ones with parameters equal to
            // f32 rounding (the split sums round differently), so values differ in the last bits.
            if i == 0 {
                assert_eq!(x.advantages, y.advantages, "{w}: advantages of the same global buffer");
            }
            close(x.advantages.raw_mean as f64, y.advantages.raw_mean as f64, &format!("{w}: advantage mean"));
            close(x.advantages.raw_std as f64, y.advantages.raw_std as f64, &format!("{w}: advantage std"));
            close(x.policy_loss, y.policy_loss, &format!("{w}: policy loss"));
            close(x.value_loss, y.value_loss, &format!("{w}: value loss"));
            close(x.kl, y.kl, &format!("{w}: kl"));
            close(x.clip_fraction, y.clip_fraction, &format!("{w}: clip fraction"));
            close(x.approx_kl, y.approx_kl, &format!("{w}: approx kl"));
            close(x.grad_norm, y.grad_norm, &format!("{w}: grad norm"));
        }
        for (p, q) in adapters.iter().zip(&a).chain(head.iter().zip(&h)) {
            close(*p as f64, *q as f64, &format!("{preset}, {k} ranks: parameters"));
        }
    }
}

#[test]
fn vldac_split_over_ranks_takes_the_one_process_step() {
    check("vldac-paper");
}

#[test]
fn rl4vlm_split_over_ranks_takes_the_one_process_step() {
    check("rl4vlm");
}

#[test]
fn loop_split_over_ranks_takes_the_one_process_step() {
    check("loop");
}

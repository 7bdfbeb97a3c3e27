//! One property test per invariant of the algorithm spec (§6), named after it.

use burn::Tensor;
use burn::tensor::{Device, TensorData};
use proptest::prelude::*;
use vldac_dac::config::{AlgoConfig, Algorithm, DacConfig, TokenSelection, TruncationMode};
use vldac_dac::gae::{Trajectories, compute_gae, discounted_returns, leave_one_out, normalize};
use vldac_dac::loss::{MicroBatch, compute_loss, k3, value_loss};
use vldac_dac::schedule::cosine_lr;
use vldac_dac::toy::{CorridorObs, Part, TinyPolicy};
use vldac_dac::{RolloutStorage, Scored, StepRecord, TextPolicy};

fn dev() -> Device {
    Device::flex().autodiff()
}

#[allow(clippy::too_many_arguments)] // explicit buffers read best at the call sites
fn gae_of(
    n: usize,
    r: &[f32],
    v: &[f32],
    term: &[bool],
    trunc: &[bool],
    fin: &[f32],
    next: &[f32],
    g: f32,
    l: f32,
    mode: TruncationMode,
) -> (Vec<f32>, Vec<f32>) {
    let traj = Trajectories {
        num_envs: n,
        rewards: r,
        values: v,
        terminated: term,
        truncated: trunc,
        final_values: fin,
        next_values: next,
    };
    let mut a = vec![0.0; r.len()];
    let mut ret = vec![0.0; r.len()];
    compute_gae(&traj, g, l, mode, &mut a, &mut ret).unwrap();
    (a, ret)
}

/// A random `T × N` buffer.
#[derive(Debug, Clone)]
struct Buf {
    n: usize,
    r: Vec<f32>,
    v: Vec<f32>,
    term: Vec<bool>,
    trunc: Vec<bool>,
    fin: Vec<f32>,
    next: Vec<f32>,
}

fn buf(max_t: usize, p_term: f64, p_trunc: f64) -> impl Strategy<Value = Buf> {
    (1usize..4, 1usize..max_t).prop_flat_map(move |(n, t)| {
        let k = n * t;
        (
            prop::collection::vec(-2.0f32..2.0, k),
            prop::collection::vec(-2.0f32..2.0, k),
            prop::collection::vec(prop::bool::weighted(p_term), k),
            prop::collection::vec(prop::bool::weighted(p_trunc), k),
            prop::collection::vec(-2.0f32..2.0, k),
            prop::collection::vec(-2.0f32..2.0, n),
        )
            .prop_map(move |(r, v, term, trunc, fin, next)| Buf { n, r, v, term, trunc, fin, next })
    })
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // §6.1
    #[test]
    fn gae_lambda1_no_truncation_is_discounted_return_minus_value(b in buf(20, 0.2, 0.0), g in 0.5f32..=1.0) {
        let none = vec![false; b.r.len()];
        let (a, ret) = gae_of(b.n, &b.r, &b.v, &b.term, &none, &b.fin, &b.next, g, 1.0, TruncationMode::Bootstrap);
        let traj = Trajectories { num_envs: b.n, rewards: &b.r, values: &b.v, terminated: &b.term, truncated: &none, final_values: &b.fin, next_values: &b.next };
        let mc = discounted_returns(&traj, g, TruncationMode::Bootstrap).unwrap();
        for k in 0..a.len() {
            prop_assert!(close(a[k], mc[k] - b.v[k], 1e-4), "k={k}: {} vs {}", a[k], mc[k] - b.v[k]);
            prop_assert!(close(ret[k], mc[k], 1e-4));
        }
    }

    // §6.2
    #[test]
    fn gae_lambda0_is_one_step_td(b in buf(20, 0.2, 0.0), g in 0.0f32..=1.0) {
        let none = vec![false; b.r.len()];
        let (a, _) = gae_of(b.n, &b.r, &b.v, &b.term, &none, &b.fin, &b.next, g, 0.0, TruncationMode::Bootstrap);
        let t_len = b.r.len() / b.n;
        for t in 0..t_len {
            for i in 0..b.n {
                let k = t * b.n + i;
                let next = if t + 1 < t_len { b.v[k + b.n] } else { b.next[i] };
                let m = if b.term[k] { 0.0 } else { 1.0 };
                let td = b.r[k] + g * m * next - b.v[k];
                prop_assert!(close(a[k], td, 1e-5));
            }
        }
    }

    // §6.3
    #[test]
    fn gae_returns_equal_advantage_plus_value_and_scale_linearly(b in buf(20, 0.2, 0.2), g in 0.0f32..=1.0, l in 0.0f32..=1.0, c in -3.0f32..3.0) {
        for mode in [TruncationMode::Bootstrap, TruncationMode::ZeroAdvantage, TruncationMode::ZeroAdvantageTruncationWins, TruncationMode::Terminate] {
            let (a, ret) = gae_of(b.n, &b.r, &b.v, &b.term, &b.trunc, &b.fin, &b.next, g, l, mode);
            for k in 0..a.len() {
                prop_assert!(close(ret[k], a[k] + b.v[k], 1e-6));
            }
            let s = |x: &[f32]| x.iter().map(|y| y * c).collect::<Vec<_>>();
            let (a2, _) = gae_of(b.n, &s(&b.r), &s(&b.v), &b.term, &b.trunc, &s(&b.fin), &s(&b.next), g, l, mode);
            for k in 0..a.len() {
                prop_assert!(close(a2[k], c * a[k], 1e-4), "{} vs {}", a2[k], c * a[k]);
            }
        }
    }

    // §6.4
    #[test]
    fn gae_no_bootstrap_across_termination(b in buf(20, 0.0, 0.0), cut in 0usize..19, g in 0.0f32..=1.0, l in 0.0f32..=1.0, noise in prop::collection::vec(-5.0f32..5.0, 64)) {
        let t_len = b.r.len() / b.n;
        let cut = cut % t_len;
        let mut term = b.term.clone();
        for i in 0..b.n { term[cut * b.n + i] = true; }
        let (a, _) = gae_of(b.n, &b.r, &b.v, &term, &b.trunc, &b.fin, &b.next, g, l, TruncationMode::Bootstrap);
        // randomise everything after the boundary
        let (mut r2, mut v2, mut next2) = (b.r.clone(), b.v.clone(), b.next.clone());
        for k in (cut + 1) * b.n..b.r.len() { r2[k] += noise[k % 64]; v2[k] -= noise[(k + 7) % 64]; }
        for x in next2.iter_mut() { *x += noise[3]; }
        let (a2, _) = gae_of(b.n, &r2, &v2, &term, &b.trunc, &b.fin, &next2, g, l, TruncationMode::Bootstrap);
        for k in 0..(cut + 1) * b.n { prop_assert_eq!(a[k], a2[k]); }
    }

    // §6.5 (our choice: bootstrap from V(s_final); the official zero-advantage mode is tested too)
    #[test]
    fn gae_truncation_bootstraps_from_final_value(b in buf(20, 0.0, 0.0), cut in 0usize..19, g in 0.0f32..=1.0, l in 0.0f32..=1.0) {
        let t_len = b.r.len() / b.n;
        let cut = cut % t_len;
        let none = vec![false; b.r.len()];
        let mut at = none.clone();
        for i in 0..b.n { at[cut * b.n + i] = true; }
        let (a_term, _) = gae_of(b.n, &b.r, &b.v, &at, &none, &b.fin, &b.next, g, l, TruncationMode::Bootstrap);
        let (a_trunc, _) = gae_of(b.n, &b.r, &b.v, &none, &at, &b.fin, &b.next, g, l, TruncationMode::Bootstrap);
        let (a_zero, r_zero) = gae_of(b.n, &b.r, &b.v, &none, &at, &b.fin, &b.next, g, l, TruncationMode::ZeroAdvantage);
        for i in 0..b.n {
            let kc = cut * b.n + i;
            for t in 0..t_len {
                let k = t * b.n + i;
                if t <= cut {
                    // exactly the + γ V(s_final) term, carried back by (γλ)^(cut−t)
                    let diff = (g * l).powi((cut - t) as i32) * g * b.fin[kc];
                    prop_assert!(close(a_trunc[k] - a_term[k], diff, 1e-4), "t={t}");
                } else {
                    prop_assert_eq!(a_trunc[k], a_term[k]);
                }
            }
            prop_assert_eq!(a_zero[kc], 0.0);
            prop_assert_eq!(r_zero[kc], b.v[kc]);
        }
    }

    // §6.5b: the default (`vldac-paper`) is gymnasium's semantics, written here as the explicit
    // λ-return sum A_t = Σ_l (γλ)^l δ_{t+l} up to the episode end, where a termination wins over a
    // truncation on the same step (δ = r − V) and a truncation alone bootstraps from V(s_final).
    #[test]
    fn default_preset_is_gymnasium_semantics_termination_wins(b in buf(16, 0.25, 0.25)) {
        let cfg = DacConfig::preset("vldac-paper").unwrap().algo;
        prop_assert_eq!(cfg.truncation, TruncationMode::Bootstrap);
        let (g, l) = (cfg.gamma as f64, cfg.gae_lambda as f64);
        let (a, ret) = gae_of(b.n, &b.r, &b.v, &b.term, &b.trunc, &b.fin, &b.next, cfg.gamma, cfg.gae_lambda, cfg.truncation);
        let t_len = b.r.len() / b.n;
        for i in 0..b.n {
            for t in 0..t_len {
                let mut sum = 0.0f64;
                let mut w = 1.0f64;
                for u in t..t_len {
                    let k = u * b.n + i;
                    let (r, v) = (b.r[k] as f64, b.v[k] as f64);
                    let (delta, ends) = if b.term[k] {
                        (r - v, true)
                    } else if b.trunc[k] {
                        (r + g * b.fin[k] as f64 - v, true)
                    } else {
                        let next = if u + 1 < t_len { b.v[k + b.n] } else { b.next[i] } as f64;
                        (r + g * next - v, false)
                    };
                    sum += w * delta;
                    if ends { break; }
                    w *= g * l;
                }
                let k = t * b.n + i;
                prop_assert!(close(a[k], sum as f32, 1e-4), "t={t} i={i}: {} vs {sum}", a[k]);
                prop_assert!(close(ret[k], (sum + b.v[k] as f64) as f32, 1e-4));
            }
        }
        // both flags: exactly a termination, whatever V(s_final) is
        let both: Vec<bool> = b.term.iter().zip(&b.trunc).map(|(x, y)| *x && *y).collect();
        let fin2: Vec<f32> = b.fin.iter().map(|x| x + 3.0).collect();
        let (a_both, _) = gae_of(b.n, &b.r, &b.v, &both, &both, &fin2, &b.next, cfg.gamma, cfg.gae_lambda, cfg.truncation);
        let none = vec![false; b.r.len()];
        let (a_term, _) = gae_of(b.n, &b.r, &b.v, &both, &none, &b.fin, &b.next, cfg.gamma, cfg.gae_lambda, cfg.truncation);
        prop_assert_eq!(a_both, a_term);
    }

    // §6.5c: every non-bootstrap mode equals the official storage recursion (storage.py
    // `compute_returns`, use_gae and use_proper_time_limits) fed with the masks that mode stands for.
    #[test]
    fn official_modes_equal_the_official_mask_recursion(b in buf(16, 0.25, 0.25), g in 0.0f32..=1.0, l in 0.0f32..=1.0) {
        for mode in [TruncationMode::ZeroAdvantage, TruncationMode::ZeroAdvantageTruncationWins, TruncationMode::Terminate] {
            let (a, ret) = gae_of(b.n, &b.r, &b.v, &b.term, &b.trunc, &b.fin, &b.next, g, l, mode);
            let t_len = b.r.len() / b.n;
            for i in 0..b.n {
                let mut gae = 0.0f64;
                for t in (0..t_len).rev() {
                    let k = t * b.n + i;
                    let (mask, bad) = mode.official_masks(b.term[k], b.trunc[k]).unwrap();
                    let next = if t + 1 < t_len { b.v[k + b.n] } else { b.next[i] } as f64;
                    let delta = b.r[k] as f64 + g as f64 * next * mask as f64 - b.v[k] as f64;
                    gae = (delta + g as f64 * l as f64 * mask as f64 * gae) * bad as f64;
                    prop_assert!(close(a[k], gae as f32, 1e-4), "{mode:?} t={t} i={i}: {} vs {gae}", a[k]);
                    prop_assert!(close(ret[k], (gae + b.v[k] as f64) as f32, 1e-4));
                }
            }
        }
    }

    // §6.6
    #[test]
    fn gae_sparse_terminal_reward_returns(len in 1usize..30, big_r in 0.1f32..5.0, v in prop::collection::vec(-1.0f32..1.0, 30), g in 0.5f32..0.999) {
        let mut r = vec![0.0; len];
        r[len - 1] = big_r;
        let mut term = vec![false; len];
        term[len - 1] = true;
        let none = vec![false; len];
        let (_, ret) = gae_of(1, &r, &v[..len], &term, &none, &v[..len], &[9.0], 1.0, 1.0, TruncationMode::Bootstrap);
        for x in &ret { prop_assert!(close(*x, big_r, 1e-5)); }
        let (_, ret) = gae_of(1, &r, &v[..len], &term, &none, &v[..len], &[9.0], g, 1.0, TruncationMode::Bootstrap);
        for w in ret.windows(2) { prop_assert!(w[0] < w[1]); }
    }

    // §6.7
    #[test]
    fn normalization_gives_mean0_std1(x in prop::collection::vec(-100.0f32..100.0, 2..300), c in -10.0f32..10.0, n in 1usize..50) {
        let mut y = x.clone();
        normalize(&mut y, 1e-8);
        let m = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
        let var = y.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / (y.len() - 1) as f64;
        let spread = x.iter().cloned().fold(f32::MIN, f32::max) - x.iter().cloned().fold(f32::MAX, f32::min);
        prop_assert!(m.abs() < 1e-5);
        if spread > 1e-2 { prop_assert!((var.sqrt() - 1.0).abs() < 1e-5, "std {}", var.sqrt()); }
        let mut k = vec![c; n];
        normalize(&mut k, 1e-8);
        for v in k { prop_assert!(v.is_finite() && v.abs() < 1e-3); }
    }

    // §6.8
    #[test]
    fn loo_advantages_sum_to_zero(r in prop::collection::vec(-10.0f32..10.0, 2..12), shift in -50.0f32..50.0) {
        let a = leave_one_out(&r).unwrap();
        let k = r.len() as f32;
        let mean = r.iter().sum::<f32>() / k;
        prop_assert!(a.iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-3);
        for (ai, ri) in a.iter().zip(&r) { prop_assert!(close(*ai, k / (k - 1.0) * (ri - mean), 1e-4)); }
        let shifted: Vec<f32> = r.iter().map(|x| x + shift).collect();
        for (x, y) in a.iter().zip(leave_one_out(&shifted).unwrap()) { prop_assert!((x - y).abs() < 1e-3); }
        let same = leave_one_out(&vec![r[0]; r.len()]).unwrap();
        prop_assert!(same.iter().all(|&x| x == 0.0));
        prop_assert!(leave_one_out(&r[..1]).is_err());
    }
}

/// Builds a one-step micro-batch (all tokens counted) and the gradient of the loss with respect to
/// the new log-probs and the value.
struct OneStep {
    loss: f32,
    grad_lp: Vec<f32>,
    grad_v: f32,
    guard_hits: usize,
}

fn one_step(
    cfg: &AlgoConfig,
    new: &[f32],
    old: &[f32],
    refs: &[f32],
    mask: &[f32],
    adv: f32,
    v: (f32, f32, f32),
) -> OneStep {
    let d = dev();
    let l = new.len();
    let mb = MicroBatch {
        batch: 1,
        len: l,
        old_log_probs: old.to_vec(),
        ref_log_probs: refs.to_vec(),
        mask: mask.to_vec(),
        seq_weight: mask.to_vec(),
        advantages: vec![adv],
        returns: vec![v.2],
        old_values: vec![v.1],
    };
    let lp = Tensor::<2>::from_data(TensorData::new(new.to_vec(), [1, l]), &d).require_grad();
    let values = Tensor::<1>::from_data(TensorData::new(vec![v.0], [1]), &d).require_grad();
    let scored = Scored { log_probs: lp.clone(), values: values.clone() };
    let out = compute_loss(cfg, &mb, &scored, false).unwrap();
    let grads = out.total.backward();
    let gl = lp.grad(&grads).map(|g| g.into_data().try_to_vec::<f32>().unwrap()).unwrap_or(vec![0.0; l]);
    let gv = values.grad(&grads).map(|g| g.into_data().try_to_vec::<f32>().unwrap()[0]).unwrap_or(0.0);
    OneStep { loss: out.total.into_scalar::<f32>(), grad_lp: gl, grad_v: gv, guard_hits: out.guard_hits }
}

fn policy_only(guard: Option<f32>) -> AlgoConfig {
    AlgoConfig {
        kl_beta: 0.0,
        value_coef: 0.0,
        ratio_guard: guard,
        clip_eps: 0.2,
        ..DacConfig::preset("vldac-paper").unwrap().algo
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // §6.9
    #[test]
    fn surrogate_at_ratio_one_is_vanilla_policy_gradient(old in prop::collection::vec(-5.0f32..0.0, 1..8), adv in -3.0f32..3.0) {
        let n = old.len();
        let s = one_step(&policy_only(None), &old, &old, &[], &vec![1.0; n], adv, (0.0, 0.0, 0.0));
        prop_assert!(close(s.loss, -adv, 1e-5));
        prop_assert_eq!(s.grad_v, 0.0, "the policy loss must not reach the value");
        for g in s.grad_lp { prop_assert!(close(g, -adv / n as f32, 1e-5)); }
    }

    // §6.10
    #[test]
    fn clipped_surrogate_gradient_is_zero_where_clip_is_active(old in prop::collection::vec(-5.0f32..-0.5, 1..8), d in prop::collection::vec(0.3f32..1.0, 8), adv in 0.1f32..3.0, flip in any::<bool>()) {
        // ratios e^{±d} are outside [0.8, 1.2] by construction
        let n = old.len();
        let sign = if flip { -1.0 } else { 1.0 };
        let new: Vec<f32> = old.iter().zip(&d).map(|(o, x)| o + sign * x).collect();
        let cfg = policy_only(None);
        // clip active in the direction of the advantage: A>0 & r>1+ε, or A<0 & r<1−ε → zero gradient
        let s = one_step(&cfg, &new, &old, &[], &vec![1.0; n], sign * adv, (0.0, 0.0, 0.0));
        for g in &s.grad_lp { prop_assert_eq!(*g, 0.0); }
        // opposite direction: A<0 & r>1+ε, or A>0 & r<1−ε → gradient −A·r/n
        let s2 = one_step(&cfg, &new, &old, &[], &vec![1.0; n], -sign * adv, (0.0, 0.0, 0.0));
        for (g, (nw, o)) in s2.grad_lp.iter().zip(new.iter().zip(&old)) {
            let r = (nw - o).exp();
            prop_assert!(close(*g, sign * adv * r / n as f32, 1e-4), "{g}");
        }
        // pessimism: the surrogate is never above the unclipped objective
        let unclipped: f32 = new.iter().zip(&old).map(|(nw, o)| (nw - o).exp() * sign * adv).sum::<f32>() / n as f32;
        prop_assert!(-s.loss <= unclipped + 1e-5);
    }

    // §6.11
    #[test]
    fn ratio_guard_zeroes_gradient_outside_clip_range(old in prop::collection::vec(-5.0f32..-0.5, 2..8), d in prop::collection::vec(-1.0f32..1.0, 8), adv in -3.0f32..3.0) {
        let n = old.len();
        let mut new: Vec<f32> = old.iter().zip(&d).map(|(o, x)| o + x).collect();
        new[0] = old[0] + 2.5; // ratio ≈ 12.2 > 10
        let s = one_step(&policy_only(Some(10.0)), &new, &old, &[], &vec![1.0; n], adv, (0.0, 0.0, 0.0));
        prop_assert_eq!(s.guard_hits, 1);
        for (j, g) in s.grad_lp.iter().enumerate() {
            let r = (new[j] - old[j]).exp();
            if !(0.8..=1.2).contains(&r) { prop_assert_eq!(*g, 0.0); } else { prop_assert!(close(*g, -adv * r / n as f32, 1e-4)); }
        }
        // without the spike the guard is silent and equals the unguarded loss
        new[0] = old[0] + d[0] * 0.1;
        let a = one_step(&policy_only(Some(10.0)), &new, &old, &[], &vec![1.0; n], adv, (0.0, 0.0, 0.0));
        let b = one_step(&policy_only(None), &new, &old, &[], &vec![1.0; n], adv, (0.0, 0.0, 0.0));
        prop_assert_eq!(a.guard_hits, 0);
        prop_assert_eq!(a.loss, b.loss);
        prop_assert_eq!(a.grad_lp, b.grad_lp);
    }

    // §6.12
    #[test]
    fn token_mean_ignores_masked_tokens(old in prop::collection::vec(-5.0f32..-0.1, 2..8), d in prop::collection::vec(-0.5f32..0.5, 8), junk in -1e3f32..1e3, adv in -3.0f32..3.0, beta in 0.0f32..0.2) {
        let n = old.len();
        let new: Vec<f32> = old.iter().zip(&d).map(|(o, x)| o + x).collect();
        let refs: Vec<f32> = old.iter().map(|o| o - 0.3).collect();
        let cfg = AlgoConfig { kl_beta: beta, ..policy_only(None) };
        let base = one_step(&cfg, &new, &old, &refs, &vec![1.0; n], adv, (0.0, 0.0, 0.0));
        // padding with junk values, masked out
        let pad = |x: &[f32], v: f32| { let mut y = x.to_vec(); y.push(v); y.push(v); y };
        let mut mask = vec![1.0; n]; mask.push(0.0); mask.push(0.0);
        let padded = one_step(&cfg, &pad(&new, junk), &pad(&old, -junk), &pad(&refs, junk * 0.5), &mask, adv, (0.0, 0.0, 0.0));
        prop_assert!(close(padded.loss, base.loss, 1e-5));
        prop_assert_eq!(padded.grad_lp[n], 0.0);
        prop_assert_eq!(padded.grad_lp[n + 1], 0.0);
        for j in 0..n { prop_assert!(close(padded.grad_lp[j], base.grad_lp[j], 1e-5)); }
        // duplicating every token leaves the mean unchanged
        let dup = |x: &[f32]| x.iter().chain(x.iter()).cloned().collect::<Vec<_>>();
        let twice = one_step(&cfg, &dup(&new), &dup(&old), &dup(&refs), &vec![1.0; 2 * n], adv, (0.0, 0.0, 0.0));
        prop_assert!(close(twice.loss, base.loss, 1e-5));
    }

    // §6.13
    #[test]
    fn value_clipping_is_pessimistic(v in -3.0f32..3.0, v_old in -3.0f32..3.0, ret in -3.0f32..3.0, c in 0.05f32..0.5) {
        let d = Device::flex();
        let t = |x: f32| Tensor::<1>::from_data(TensorData::new(vec![x], [1]), &d);
        let clipped = value_loss(t(v), t(v_old), t(ret), Some(c), 1.0).into_scalar::<f32>();
        let plain = value_loss(t(v), t(v_old), t(ret), None, 1.0).into_scalar::<f32>();
        prop_assert!(clipped >= plain);
        if (v - v_old).abs() <= c { prop_assert!(close(clipped, plain, 1e-6)); }
        prop_assert!(close(value_loss(t(v), t(v_old), t(ret), None, 0.5).into_scalar::<f32>(), 0.5 * (v - ret).powi(2), 1e-5));
    }

    // §6.14
    #[test]
    fn k3_kl_nonnegative_and_zero_iff_equal(x in -20.0f64..20.0, logits_p in prop::collection::vec(-3.0f64..3.0, 2..6), noise in prop::collection::vec(-2.0f64..2.0, 6)) {
        prop_assert!(k3(x) >= 0.0);
        if x != 0.0 { prop_assert!(k3(x) > 0.0); } else { prop_assert_eq!(k3(x), 0.0); }
        if x.abs() < 1e-3 { prop_assert!((k3(x) - x * x / 2.0).abs() < 1e-9); }
        // E_{a~p}[k3(log q(a) − log p(a))] = KL(p‖q), by enumeration
        let lse = |l: &[f64]| { let m = l.iter().cloned().fold(f64::MIN, f64::max); m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln() };
        let lq: Vec<f64> = logits_p.iter().zip(&noise).map(|(a, b)| a + b).collect();
        let (zp, zq) = (lse(&logits_p), lse(&lq));
        let (mut e_k3, mut kl) = (0.0, 0.0);
        for (a, b) in logits_p.iter().zip(&lq) {
            let (lp, lqa) = (a - zp, b - zq);
            e_k3 += lp.exp() * k3(lqa - lp);
            kl += lp.exp() * (lp - lqa);
        }
        prop_assert!((e_k3 - kl).abs() < 1e-9);
        // and the loss's per-token k3 on tensors agrees with the scalar formula and is ≥ 0
        let cfg = AlgoConfig { kl_beta: 1.0, ..policy_only(None) };
        let old = [-1.0f32];
        let s = one_step(&cfg, &old, &old, &[(-1.0 + x.clamp(-5.0, 5.0)) as f32], &[1.0], 0.0, (0.0, 0.0, 0.0));
        prop_assert!(s.loss >= 0.0);
        prop_assert!(close(s.loss, k3(x.clamp(-5.0, 5.0)) as f32, 1e-4));
    }

    // §6.18
    #[test]
    fn rl4vlm_log_prob_is_affine_in_thought_coef(n in 2usize..8, split in 0usize..8, d in prop::collection::vec(-0.3f32..0.3, 8)) {
        let split = split % n;
        let old: Vec<f32> = (0..n).map(|j| -0.5 - j as f32 * 0.1).collect();
        let new: Vec<f32> = old.iter().zip(&d).map(|(o, x)| o + x).collect();
        let mut store = RolloutStorage::<u8>::new(1, 1).unwrap();
        store.insert(vec![StepRecord { obs: 0, tokens: vec![1; n], log_probs: old.clone(), ref_log_probs: vec![], action_start: Some(split), value: 0.0, reward: 1.0, terminated: true, truncated: false, final_value: None, task: 0 }]).unwrap();
        store.finish(vec![0.0]).unwrap();
        let base = DacConfig::preset("rl4vlm").unwrap().algo;
        let cfg_for = |lam: f32| AlgoConfig { thought_coef: lam, token_selection: TokenSelection::default(), normalize_advantages: false, ..base.clone() };
        store.compute_advantages(&cfg_for(0.0)).unwrap();
        let seq = |lam: f32| {
            let mb = MicroBatch::from_storage(&store, &[0], &cfg_for(lam)).unwrap();
            mb.seq_weight.iter().zip(new.iter().zip(&old)).map(|(w, (a, b))| w * (a - b)).sum::<f32>()
        };
        let full: f32 = new.iter().zip(&old).map(|(a, b)| a - b).sum();
        let action: f32 = new[split..].iter().zip(&old[split..]).map(|(a, b)| a - b).sum();
        prop_assert!(close(seq(1.0), full, 1e-5));
        prop_assert!(close(seq(0.0), action, 1e-5));
        prop_assert!(close(seq(0.3), 0.7 * seq(0.0) + 0.3 * seq(1.0), 1e-5));
    }
}

// §6.15: the stop-gradient really stops.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn stop_gradient_blocks_value_loss_from_backbone(pos in prop::collection::vec(0usize..5, 1..5), right in any::<bool>(), toks in prop::collection::vec(0u32..3, 1..4)) {
        let d = dev();
        let policy = TinyPolicy::new(&d, 0);
        // Move the adapters off zero so every path carries gradient.
        let obs: Vec<CorridorObs> = pos.iter().map(|&p| CorridorObs { pos: p, goal_right: right }).collect();
        let o: Vec<&CorridorObs> = obs.iter().collect();
        let t: Vec<&[u32]> = obs.iter().map(|_| toks.as_slice()).collect();
        for stop in [true, false] {
            let score = vldac_dac::ScoreConfig { logit_temperature: 1.0, value_stop_grad: stop };
            let s = policy.evaluate(&o, &t, &score).unwrap();
            let value_loss = s.values.clone().powi_scalar(2).sum();
            let grads = value_loss.backward();
            let g = burn::optim::GradientsParams::from_grads(grads, &policy);
            let n_all = g.len();
            // value head: 2 weights + 2 biases; adapters are 2 more tensors
            if stop { prop_assert_eq!(n_all, 4, "value loss reached the backbone"); } else { prop_assert_eq!(n_all, 5); }
            // policy loss never reaches the value head
            let s = policy.evaluate(&o, &t, &score).unwrap();
            let g = burn::optim::GradientsParams::from_grads(s.log_probs.sum().backward(), &policy);
            prop_assert_eq!(g.len(), 2, "policy loss gradient must touch the two adapters only");
        }
    }
}

#[test]
fn warmup_leaves_adapters_bitwise_unchanged() {
    // §6.16
    let d = dev();
    let mut policy = TinyPolicy::new(&d, 0);
    let mut cfg = DacConfig::preset("vldac-paper").unwrap();
    cfg.algo.value_warmup_iterations = 2;
    cfg.algo.grad_accum_steps = 1;
    cfg.algo.mini_batch_size = 4;
    cfg.optim.lr_init = 1e-2;
    cfg.rollout.num_envs = 2;
    cfg.rollout.num_steps = 8;
    let mut dac = vldac_dac::Dac::new(cfg, 3).unwrap();
    let mut storage = RolloutStorage::new(2, 8).unwrap();
    let mut runner = vldac_dac::toy::ToyRunner::new(2, 1, 6, 5);
    let adapters0 = policy.params(Part::Adapters);
    let head0 = policy.params(Part::ValueHead);
    for it in 0..2 {
        runner.collect(&policy, &dac, &mut storage, it).unwrap();
        let st = dac.update(&mut policy, &mut storage).unwrap();
        assert!(st.value_only && st.optimizer_steps > 0);
        storage.after_update();
    }
    assert_eq!(policy.params(Part::Adapters), adapters0, "adapters moved during warm-up");
    assert_ne!(policy.params(Part::ValueHead), head0, "value head did not train during warm-up");
    runner.collect(&policy, &dac, &mut storage, 2).unwrap();
    let st = dac.update(&mut policy, &mut storage).unwrap();
    assert!(!st.value_only);
    assert_ne!(policy.params(Part::Adapters), adapters0, "adapters must train after warm-up");
}

#[test]
fn log_prob_alignment_between_generation_and_scoring() {
    // §6.17: act's per-token log-probs (read at position prompt_len + j − 1 while generating)
    // equal evaluate's teacher-forced ones; each is ≤ 0 and their sum is the sequence log-prob.
    let d = dev();
    let policy = TinyPolicy::new(&d, 0);
    let obs: Vec<CorridorObs> = (0..5).map(|p| CorridorObs { pos: p, goal_right: p % 2 == 0 }).collect();
    let o: Vec<&CorridorObs> = obs.iter().collect();
    let score = vldac_dac::ScoreConfig { logit_temperature: 1.0, value_stop_grad: true };
    let sample = vldac_dac::SampleConfig { temperature: 1.0, top_k: None, top_p: None, max_new_tokens: 3, seed: 11 };
    let gens = policy.act(&o, &sample, &score).unwrap();
    let toks: Vec<&[u32]> = gens.iter().map(|g| g.tokens.as_slice()).collect();
    let s = policy.evaluate(&o, &toks, &score).unwrap();
    let len = s.log_probs.dims()[1];
    let lp = s.log_probs.into_data().try_to_vec::<f32>().unwrap();
    let refs = policy.reference_log_probs(&o, &toks, &score).unwrap();
    let values = policy.values(&o).unwrap();
    for (b, g) in gens.iter().enumerate() {
        for (j, &x) in g.log_probs.iter().enumerate() {
            assert!(x <= 0.0);
            assert!((x - lp[b * len + j]).abs() < 1e-5, "token {j} of reply {b}");
            // zero-initialised adapters: the reference equals the policy at the start
            assert!((x - refs[b][j]).abs() < 1e-5);
        }
        assert!((g.value - values[b]).abs() < 1e-6);
    }
}

#[test]
fn lr_schedule_reaches_floor_at_horizon() {
    // §6.19
    let mut o = DacConfig::preset("vldac-paper").unwrap().optim;
    o.lr_max_steps = 100;
    assert_eq!(cosine_lr(&o, 0), o.lr_init);
    assert!((cosine_lr(&o, 100) - o.lr_end).abs() < 1e-15);
    assert_eq!(cosine_lr(&o, 250), cosine_lr(&o, 100));
    o.lr_restart = true;
    assert!((cosine_lr(&o, 200) - o.lr_init).abs() < 1e-12, "PyTorch's schedule is periodic");
    assert!(cosine_lr(&o, 150) > o.lr_end);
}

#[test]
fn after_update_carries_episode_start_and_ignores_next_value_after_done() {
    // §6.20
    let rec = |done: bool| StepRecord {
        obs: 0u8,
        tokens: vec![1],
        log_probs: vec![-0.1],
        ref_log_probs: vec![],
        action_start: None,
        value: 0.5,
        reward: 1.0,
        terminated: done,
        truncated: false,
        final_value: None,
        task: 0,
    };
    let cfg = AlgoConfig { normalize_advantages: false, ..DacConfig::preset("vldac-paper").unwrap().algo };
    let mut s = RolloutStorage::new(2, 2).unwrap();
    s.insert(vec![rec(false), rec(false)]).unwrap();
    s.insert(vec![rec(true), rec(false)]).unwrap();
    s.finish(vec![100.0, 100.0]).unwrap();
    s.compute_advantages(&cfg).unwrap();
    // env 0 ended: its last return ignores next_value; env 1 bootstraps from it
    assert_eq!(s.returns()[2], 1.0);
    assert!((s.returns()[3] - (1.0 + 0.99 * 100.0)).abs() < 1e-4);
    s.after_update();
    assert_eq!(s.starts_episode(), &[true, false]);
    assert!(s.is_empty());
}

#[test]
fn update_is_deterministic_given_seed() {
    // §6.22
    let run = || {
        let d = dev();
        let mut policy = TinyPolicy::new(&d, 0);
        let mut cfg = DacConfig::preset("vldac-paper").unwrap();
        cfg.algo.value_warmup_iterations = 0;
        cfg.algo.grad_accum_steps = 2;
        cfg.algo.mini_batch_size = 4;
        cfg.rollout.num_envs = 2;
        cfg.rollout.num_steps = 8;
        let mut dac = vldac_dac::Dac::new(cfg, 3).unwrap();
        let mut storage = RolloutStorage::new(2, 8).unwrap();
        let mut runner = vldac_dac::toy::ToyRunner::new(2, 1, 6, 5);
        runner.collect(&policy, &dac, &mut storage, 0).unwrap();
        dac.update(&mut policy, &mut storage).unwrap();
        (storage.advantages().to_vec(), policy.params(Part::Adapters))
    };
    assert_eq!(run(), run());
}

#[test]
fn loop_groups_complete_episodes_by_task() {
    let rec = |reward: f32, done: bool, task: u64| StepRecord {
        obs: 0u8,
        tokens: vec![1],
        log_probs: vec![-0.1],
        ref_log_probs: vec![],
        action_start: None,
        value: 0.0,
        reward,
        terminated: done,
        truncated: false,
        final_value: None,
        task,
    };
    let cfg = AlgoConfig { gamma: 1.0, ..DacConfig::preset("loop").unwrap().algo };
    assert_eq!(cfg.algorithm, Algorithm::Loop);
    let mut s = RolloutStorage::new(2, 3).unwrap();
    // env 0: episode (task 7) of return 1 in two steps, then an unfinished one
    // env 1: episode (task 7) of return 0 in three steps
    s.insert(vec![rec(0.0, false, 7), rec(0.0, false, 7)]).unwrap();
    s.insert(vec![rec(1.0, true, 7), rec(0.0, false, 7)]).unwrap();
    s.insert(vec![rec(0.0, false, 9), rec(0.0, true, 7)]).unwrap();
    s.finish(vec![0.0, 0.0]).unwrap();
    let st = s.compute_advantages(&cfg).unwrap();
    assert_eq!(st.episodes, 2);
    assert_eq!(s.active(), &[true, true, true, true, false, true]);
    assert_eq!(s.advantages(), &[1.0, -1.0, 1.0, -1.0, 0.0, -1.0]);
}

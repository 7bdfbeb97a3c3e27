//! The text model's attention over a prompt, rotary included, as one autodiff op of our own for
//! bf16 flex tensors during LoRA training.
//!
//! Under autodiff this attention was burn ops: rotary (five ops per tensor), casts to f32 and
//! the explicit attention (two batched matmuls, mask, softmax), whose backward ran mostly on one
//! thread. Here the forward is the inference kernel ([`super::attend_prompt`]) and the backward
//! recomputes each head's probabilities in f32 and takes the standard gradients, a head per task:
//!
//! `P = softmax(scale Q K^T + mask)`, `dV = P^T dO`, `dP = dO V^T`,
//! `dS = P (dP - rowsum(P dP))`, `dQ = scale dS K`, `dK = scale dS^T Q`,
//!
//! then undoes the rotation (its transpose) and rounds to bf16 once, as torch's CPU attention
//! backward accumulates in f32 and returns bf16.

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::{AutodiffBackend, BackendTypes};
use burn::tensor::{Bool, Bytes, DType, Shape, Tensor, bf16};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use rayon::prelude::*;

use super::attention_f32::product;
use super::lora::{autodiff_parts, from_autodiff_parts};
use super::{PromptShape, to_bf16, widen};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

#[derive(Clone, Debug)]
struct State {
    /// Rotated q `[b, s, heads * hd]`, rotated k and v `[b, s, kv_heads * hd]`.
    q: Vec<bf16>,
    k: Vec<bf16>,
    v: Vec<bf16>,
    /// Rotary tables `[b, s, hd]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `[b, s, s]`, true = masked out.
    blocked: Vec<bool>,
    shape: PromptShape,
}

#[derive(Debug)]
struct PromptAttention;

impl Backward<Flex, 3> for PromptAttention {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let st = ops.state;
        let PromptShape { b, s, heads, kv_heads, hd } = st.shape;
        let (e, ekv, rep) = (heads * hd, kv_heads * hd, heads / kv_heads);
        let grad = super::as_bf16(grads.consume::<Flex>(&ops.node).to_contiguous());
        let dout = grad.as_slice::<bf16>().expect("contiguous bf16");
        let scale = 1.0 / (hd as f32).sqrt();
        // One task per (row, query head): its dQ, and its shares of its key/value head's dK, dV.
        let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..b * heads)
            .into_par_iter()
            .map(|task| {
                let (r, h) = (task / heads, task % heads);
                let g = h / rep;
                let gather = |src: &[bf16], width: usize, head: usize| -> Vec<f32> {
                    let mut m = vec![0f32; s * hd];
                    for i in 0..s {
                        let row = &src[(r * s + i) * width + head * hd..][..hd];
                        m[i * hd..][..hd].iter_mut().zip(row).for_each(|(d, &v)| *d = widen(v));
                    }
                    m
                };
                let (q, k, v, d_o) =
                    (gather(&st.q, e, h), gather(&st.k, ekv, g), gather(&st.v, ekv, g), gather(dout, e, h));
                // P = softmax(scale q k^T + mask), f32.
                let mut p = vec![0f32; s * s];
                product(s, s, hd, &mut p, &q, (hd, 1), &k, (1, hd));
                for i in 0..s {
                    let row = &mut p[i * s..][..s];
                    let blocked = &st.blocked[(r * s + i) * s..][..s];
                    let mut max = f32::NEG_INFINITY;
                    for (x, &m) in row.iter_mut().zip(blocked) {
                        *x = if m { f32::NEG_INFINITY } else { *x * scale };
                        max = max.max(*x);
                    }
                    let mut sum = 0.0;
                    for x in row.iter_mut() {
                        *x = if *x == f32::NEG_INFINITY { 0.0 } else { (*x - max).exp() };
                        sum += *x;
                    }
                    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                // dV = P^T dO.
                let mut dv = vec![0f32; s * hd];
                product(s, hd, s, &mut dv, &p, (1, s), &d_o, (hd, 1));
                // dP = dO V^T, then dS = P (dP - rowsum(P dP)), scaled.
                let mut ds = vec![0f32; s * s];
                product(s, s, hd, &mut ds, &d_o, (hd, 1), &v, (1, hd));
                for i in 0..s {
                    let (pr, dr) = (&p[i * s..][..s], &mut ds[i * s..][..s]);
                    let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                    dr.iter_mut().zip(pr).for_each(|(d, &pv)| *d = scale * pv * (*d - dot));
                }
                // dQ = dS K, dK = dS^T Q.
                let (mut dq, mut dk) = (vec![0f32; s * hd], vec![0f32; s * hd]);
                product(s, hd, s, &mut dq, &ds, (s, 1), &k, (hd, 1));
                product(s, hd, s, &mut dk, &ds, (1, s), &q, (hd, 1));
                (dq, dk, dv)
            })
            .collect();
        let [pq, pk, pv] = ops.parents;
        let mut dq = vec![0f32; b * s * e];
        let (mut dk, mut dv) = (vec![0f32; b * s * ekv], vec![0f32; b * s * ekv]);
        for (task, (q, k, v)) in parts.into_iter().enumerate() {
            let (r, h) = (task / heads, task % heads);
            let g = h / rep;
            for i in 0..s {
                dq[(r * s + i) * e + h * hd..][..hd].copy_from_slice(&q[i * hd..][..hd]);
                let at = (r * s + i) * ekv + g * hd;
                dk[at..][..hd].iter_mut().zip(&k[i * hd..][..hd]).for_each(|(d, &x)| *d += x);
                dv[at..][..hd].iter_mut().zip(&v[i * hd..][..hd]).for_each(|(d, &x)| *d += x);
            }
        }
        let tensor = |data: Vec<bf16>, width: usize| {
            FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(Shape::from([b, s, width])), DType::BF16)
        };
        if let Some(node) = pq {
            grads.register::<Flex>(node.id, tensor(unrotate(&dq, e, hd, &st.cos, &st.sin), e));
        }
        if let Some(node) = pk {
            grads.register::<Flex>(node.id, tensor(unrotate(&dk, ekv, hd, &st.cos, &st.sin), ekv));
        }
        if let Some(node) = pv {
            grads.register::<Flex>(node.id, tensor(dv.iter().map(|&x| to_bf16(x)).collect(), ekv));
        }
    }
}

/// The rotation's transpose on gradients `[rows, width]` (`width` = heads * hd), rounded to bf16:
/// `x_rot = x cos + rotate_half(x) sin` gives `dx = dy cos + rotate_half^T(dy sin)`.
fn unrotate(d: &[f32], width: usize, hd: usize, cos: &[f32], sin: &[f32]) -> Vec<bf16> {
    let half = hd / 2;
    let mut out = vec![bf16::ZERO; d.len()];
    out.par_chunks_mut(width).zip(d.par_chunks(width)).enumerate().for_each(|(row, (o, dr))| {
        let (c, sn) = (&cos[row * hd..][..hd], &sin[row * hd..][..hd]);
        for (oh, dh) in o.chunks_mut(hd).zip(dr.chunks(hd)) {
            for j in 0..hd {
                let from_rot = if j < half { dh[j + half] * sn[j + half] } else { -dh[j - half] * sn[j - half] };
                oh[j] = to_bf16(dh[j] * c[j] + from_rot);
            }
        }
    });
    out
}

/// Whether [`prompt_attention`] takes these tensors: bf16 autodiff flex `q`, `k`, `v` (tracked
/// or not), on a CPU with AVX512-BF16, head size even, `cos`/`sin` `[b, 1, s, hd]` frozen on flex.
pub fn applies(q: &Tensor<3>, k: &Tensor<3>, v: &Tensor<3>, cos: &Tensor<4>, sin: &Tensor<4>, hd: usize) -> bool {
    let [b, s, _] = q.dims();
    super::enabled()
        && hd.is_multiple_of(2)
        && super::use_dp(2, hd, super::WeightLayout::OutIn)
        && [q, k, v].iter().all(|t| t.dtype() == DType::BF16 && autodiff_parts((*t).clone()).is_some())
        && k.dims()[..2] == [b, s]
        && v.dims() == k.dims()
        && [cos, sin].iter().all(|t| {
            t.dims() == [b, 1, s, hd]
                && matches!(t.dtype(), DType::BF16 | DType::F32)
                && super::flex((*t).clone()).is_some()
        })
}

/// [`super::text_attention`]'s output (no cache) as an autodiff op whose backward gives `q`, `k`
/// and `v` their gradients. `mask` `[b, 1, s, s]`, true = blocked.
///
/// # Panics
/// When [`applies`] is false.
#[allow(clippy::too_many_arguments)]
pub fn prompt_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    mask: Tensor<4, Bool>,
    heads: usize,
    kv_heads: usize,
) -> Tensor<3> {
    let [b, s, e] = q.dims();
    let hd = e / heads;
    assert_eq!(mask.dims(), [b, 1, s, s], "prompt_attention: mask shape");
    let parts = |t: Tensor<3>| autodiff_parts(t).expect("prompt_attention: applies()");
    let ((aq, context), (ak, _), (av, _)) = (parts(q), parts(k), parts(v));
    let guards = [aq.node(), ak.node(), av.node()];
    let values = |a: AdTensor| -> Vec<bf16> {
        let f = Ad::inner(a).to_contiguous();
        f.as_slice::<bf16>().expect("bf16").to_vec()
    };
    let (qv, kv, vv) = (values(aq), values(ak), values(av));
    let table = |t: &Tensor<4>| super::rotary_table(super::flex(t.clone()).expect("prompt_attention: applies()"));
    let (ct, st) = (table(cos), table(sin));
    let blocked = mask.into_data().try_into_vec::<bool>().expect("a bool mask");
    let shape = PromptShape { b, s, heads, kv_heads, hd };
    let done = super::attend_prompt(&qv, &kv, &vv, &ct, &st, &blocked, shape);
    let out = FlexTensor::new(Bytes::from_elems(done.out), Layout::contiguous(Shape::from([b, s, e])), DType::BF16);
    let state = State { q: done.q_rotated, k: done.k_rotated, v: vv, cos: ct, sin: st, blocked, shape };
    let out: AdTensor = match PromptAttention.prepare::<NoCheckpointing>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    from_autodiff_parts(out, context)
}

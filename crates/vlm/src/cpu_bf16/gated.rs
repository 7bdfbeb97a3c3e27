//! The text MLP's gated activation `silu(g) * u` on bf16 flex tensors, in one pass instead of
//! burn's SiLU (whose bf16 `exp` alone took 19 ms per layer at the 2B width over a 334-token
//! prompt) and product; under autodiff as one op of our own whose backward is one pass too.
//!
//! Rounded where transformers' bf16 ops round: `silu(g)` and the product forward; backward,
//! `dy * u` (the product's gradient into the SiLU), then SiLU's gradient, and `dy * silu(g)`.

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::{AutodiffBackend, BackendTypes};
use burn::tensor::{Bytes, DType, Tensor, bf16};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use rayon::prelude::*;

use super::lora::{autodiff_parts, from_autodiff_parts};
use super::{round_f32 as round, to_bf16, widen};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// Elements per parallel chunk (f32 scratch of this size stays in L1/L2).
const CHUNK: usize = 4096;

/// `out = bf16(bf16(silu(g)) * u)`.
pub(super) fn forward(g: &[bf16], u: &[bf16], out: &mut [bf16]) {
    out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(u.par_chunks(CHUNK)).for_each(|((o, g), u)| {
        let mut s: Vec<f32> = g.iter().map(|&v| widen(v)).collect();
        super::silu_in_place(&mut s);
        for ((o, &s), &u) in o.iter_mut().zip(&s).zip(u) {
            *o = to_bf16(round(s) * widen(u));
        }
    });
}

/// Gradients of [`forward`] for the output gradient `dy`: `(dg, du)`.
pub(super) fn backward(g: &[bf16], u: &[bf16], dy: &[bf16]) -> (Vec<bf16>, Vec<bf16>) {
    let (mut dg, mut du) = (vec![bf16::ZERO; g.len()], vec![bf16::ZERO; g.len()]);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)))
        .for_each(|((dg, du), ((g, u), dy))| {
            let mut sig: Vec<f32> = g.iter().map(|&v| widen(v)).collect();
            sigmoid_in_place(&mut sig);
            for i in 0..g.len() {
                let (x, s, d) = (widen(g[i]), sig[i], widen(dy[i]));
                // The product's gradients: into silu(g) (rounded) and into u.
                let ds = round(d * widen(u[i]));
                du[i] = to_bf16(d * round(x * s));
                // SiLU's: sigmoid(x) (1 + x (1 - sigmoid(x))).
                dg[i] = to_bf16(ds * s * (1.0 + x * (1.0 - s)));
            }
        });
    (dg, du)
}

fn sigmoid_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::dpbf16::available() {
        super::dpbf16::sigmoid(v);
        return;
    }
    v.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
}

#[derive(Debug)]
struct GatedSilu;

impl Backward<Flex, 2> for GatedSilu {
    /// `g` and `u`, contiguous bf16.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (g, u) = ops.state;
        let dy = super::as_bf16(grads.consume::<Flex>(&ops.node).to_contiguous());
        let shape = g.layout().shape().clone();
        let (dg, du) = backward(
            g.as_slice::<bf16>().expect("contiguous bf16"),
            u.as_slice::<bf16>().expect("contiguous bf16"),
            dy.as_slice::<bf16>().expect("contiguous bf16"),
        );
        let [pg, pu] = ops.parents;
        for (parent, grad) in [(pg, dg), (pu, du)] {
            if let Some(node) = parent {
                let t = FlexTensor::new(Bytes::from_elems(grad), Layout::contiguous(shape.clone()), DType::BF16);
                grads.register::<Flex>(node.id, t);
            }
        }
    }
}

/// `silu(g) * u` for bf16 flex tensors of one shape: plain (or untracked autodiff) through
/// [`forward`], tracked autodiff as [`GatedSilu`]; anything else (other dtypes or backends)
/// through burn's ops.
pub fn silu_mul<const D: usize>(g: Tensor<D>, u: Tensor<D>) -> Tensor<D> {
    use burn::tensor::activation::silu;
    if super::enabled() && g.dtype() == DType::F32 && u.dtype() == DType::F32 && g.dims() == u.dims() {
        // f32 outside autodiff: one parallel pass (burn's SiLU and product are two, the first
        // on one thread: ~14 ms a layer of the 2B prompt's MLP).
        if let (Some(o), Some(_)) = (super::origin_of(&g), super::origin_of(&u)) {
            let contiguous = |t: Tensor<D>| super::flex(t).expect("checked by origin_of").to_contiguous();
            let (gf, uf) = (contiguous(g), contiguous(u));
            let shape = gf.layout().shape().clone();
            let mut out = gf.as_slice::<f32>().expect("f32").to_vec();
            out.par_chunks_mut(CHUNK).zip(uf.as_slice::<f32>().expect("f32").par_chunks(CHUNK)).for_each(|(o, u)| {
                super::silu_in_place(o);
                o.iter_mut().zip(u).for_each(|(o, &u)| *o *= u);
            });
            let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32);
            return Tensor::from_dispatch(super::dispatch_as(t, &o));
        }
    }
    if !super::enabled() || g.dtype() != DType::BF16 || u.dtype() != DType::BF16 || g.dims() != u.dims() {
        return silu(g) * u;
    }
    if let (Some(o), Some(_)) = (super::origin_of(&g), super::origin_of(&u)) {
        let contiguous = |t: Tensor<D>| {
            let f = super::flex(t).expect("checked by origin_of");
            if f.is_contiguous() { f } else { f.to_contiguous() }
        };
        let (gf, uf) = (contiguous(g), contiguous(u));
        let shape = gf.layout().shape().clone();
        let mut out = vec![bf16::ZERO; shape.num_elements()];
        forward(gf.as_slice::<bf16>().expect("bf16"), uf.as_slice::<bf16>().expect("bf16"), &mut out);
        let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::BF16);
        return Tensor::from_dispatch(super::dispatch_as(t, &o));
    }
    match (autodiff_parts(g.clone()), autodiff_parts(u.clone())) {
        (Some((ga, context)), Some((ua, _))) => {
            let (gn, un) = (ga.node(), ua.node());
            let (gv, uv) = (Ad::inner(ga).to_contiguous(), Ad::inner(ua).to_contiguous());
            let shape = gv.layout().shape().clone();
            let mut out = vec![bf16::ZERO; shape.num_elements()];
            forward(gv.as_slice::<bf16>().expect("bf16"), uv.as_slice::<bf16>().expect("bf16"), &mut out);
            let y = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::BF16);
            let out: AdTensor = match GatedSilu.prepare::<NoCheckpointing>([gn, un]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((gv, uv), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            from_autodiff_parts(out, context)
        }
        _ => silu(g) * u,
    }
}

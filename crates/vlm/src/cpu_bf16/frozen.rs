//! The frozen bf16 base products of LoRA training on flex, on the same kernels as inference.
//!
//! Under burn's autodiff a product with a frozen bf16 weight went to flex's own bf16 matmul, which
//! widens both operands to f32 on one thread, forward and backward. Here `y = x W (+ b)` is one
//! autodiff op of our own: the forward is [`super::try_matmul`] on the untracked values, and the
//! backward gives `x` the gradient `dy W^T` through the same kernels (the weight, read in place
//! through its transpose, is the op's state; the weight and bias get no gradient, so they must
//! not be tracked). An `f32` gradient (the logits are cast to f32 after the head) is rounded to
//! bf16 first, as the backward of that cast does. The f32 LM head is the same op with flex's
//! matmul forward and backward ([`try_head_f32`]). Both backwards multiply only the rows of `dy`
//! that are non-zero.

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::{AutodiffBackend, BackendTypes};
use burn::tensor::{DType, Tensor, bf16};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, NodeGuard, Ops, OpsKind, unary};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

#[derive(Debug)]
struct FrozenProduct;

impl Backward<Flex, 1> for FrozenProduct {
    /// The weight as the forward used it (`[k, n]`, maybe a transposed view).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        // The weight's precision says which forward ran: bf16 on our kernels ([`try_product`]),
        // f32 by flex's matmul ([`try_head_f32`]).
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| match w.dtype() {
            DType::F32 => f32_input_grad(grad, w),
            _ => base_input_grad(grad, w),
        });
    }
}

/// `y` (computed from `x`'s value and the frozen `wf`) as the output of a [`FrozenProduct`] of
/// `x` (`guard` its node) in the autodiff `context`.
fn frozen_output<const D: usize>(
    guard: NodeGuard,
    context: burn::backend::DispatchAutodiffContext,
    wf: FlexTensor,
    y: FlexTensor,
) -> Tensor<D> {
    let out: AdTensor = match FrozenProduct.prepare::<NoCheckpointing>([guard]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(wf, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    super::lora::from_autodiff_parts(out, context)
}

/// `dy W^T` for the rows of `g` (`[rows, n]`, contiguous) that `live` lists, by `product`
/// (a `[live, n]` gradient of `dtype` to `[live, k]`), scattered into zeros: rows of a gradient
/// that are exactly zero (positions the loss does not read) give exactly zero unmultiplied.
fn product_of_live_rows<T: burn::tensor::Element + bytemuck::Pod>(
    g: &[T],
    n: usize,
    k: usize,
    live: &[usize],
    dtype: DType,
    product: impl FnOnce(FlexTensor) -> FlexTensor,
) -> Vec<T> {
    let rows = g.len().checked_div(n).unwrap_or(0);
    let mut out = vec![T::default(); rows * k];
    if live.is_empty() {
        return out;
    }
    let compact: Vec<T> = live.iter().flat_map(|&r| g[r * n..][..n].iter().copied()).collect();
    let compact = FlexTensor::new(
        burn::tensor::Bytes::from_elems(compact),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from([live.len(), n])),
        dtype,
    );
    let dx = product(compact).to_contiguous();
    let dx = dx.as_slice::<T>().expect("a contiguous product");
    for (i, &r) in live.iter().enumerate() {
        out[r * k..][..k].copy_from_slice(&dx[i * k..][..k]);
    }
    out
}

/// `dy W^T` for the gradient `dy [.., n]` of a product with the frozen weight `w` (`[k, n]` as
/// the forward used it), on the dot-product kernels; an f32 `dy` is rounded to bf16 first.
pub(super) fn base_input_grad(grad: FlexTensor, w: FlexTensor) -> FlexTensor {
    let wt = plain::<2>(w).transpose();
    let k = wt.dims()[1];
    let mut dims = grad.layout().shape().to_vec();
    let n = dims.last().copied().unwrap_or(0);
    let (grad, live) = live_rows(grad.to_contiguous(), n);
    let rows = live.len();
    if live.iter().all(|&l| l) {
        return match grad_input(grad, &wt, dims.len()) {
            Some(dx) => dx,
            None => unreachable!("the forward checked that the transposed weight takes this path"),
        };
    }
    // Rows whose gradient is exactly zero (positions the loss does not read: the prompt
    // and everything but the scored tokens after the tied head and the last layer's MLP)
    // give exactly zero; only the others are multiplied.
    let keep: Vec<usize> = (0..rows).filter(|&r| live[r]).collect();
    let g = grad.as_slice::<bf16>().expect("contiguous bf16");
    let out = product_of_live_rows(g, n, k, &keep, DType::BF16, |compact| match grad_input(compact, &wt, 2) {
        Some(dx) => dx,
        None => unreachable!("the forward checked that the transposed weight takes this path"),
    });
    *dims.last_mut().expect("rank >= 2") = k;
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from(dims)),
        DType::BF16,
    )
}

/// The gradient in bf16 (rounded to nearest even from f32, as a cast's backward does) and, per
/// row of `n`, whether any entry is non-zero.
fn live_rows(g: FlexTensor, n: usize) -> (FlexTensor, Vec<bool>) {
    use rayon::prelude::*;
    let g = super::as_bf16(g);
    let data = g.as_slice::<bf16>().expect("contiguous bf16");
    let live = if n == 0 {
        Vec::new()
    } else {
        // -0.0 counts as zero: its products are zeros too.
        data.par_chunks(n).map(|row| row.iter().any(|v| v.to_bits() & 0x7FFF != 0)).collect()
    };
    (g, live)
}

/// `dy [.., n] @ W^T` on our kernels, for the ranks the model uses.
fn grad_input(grad: FlexTensor, wt: &Tensor<2>, rank: usize) -> Option<FlexTensor> {
    macro_rules! ranks {
        ($($d:literal)*) => {
            match rank {
                $($d => super::try_matmul(plain::<$d>(grad), wt, None, false).ok().map(|t| inner(t)),)*
                _ => None,
            }
        };
    }
    ranks!(2 3 4)
}

/// `x @ w (+ bias)` where `x` is a tracked (or untracked) autodiff bf16 flex tensor and `w`,
/// `bias` are frozen bf16 (plain flex, or autodiff and untracked); `f32_out` as in
/// [`super::try_matmul`]. Gives `x` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_product<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    f32_out: bool,
) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != DType::BF16 || w.dtype() != DType::BF16 || !(2..=4).contains(&D) {
        return Err(x);
    }
    let (Some(wf), Some(bf)) = (super::flex(w.clone()), bias.map_or(Some(None), |b| super::flex(b.clone()).map(Some)))
    else {
        return Err(x);
    };
    if !transpose_takes_dp(&wf) {
        return Err(x);
    }
    let Some((ax, context)) = super::lora::autodiff_parts(x.clone()) else { return Err(x) };
    let guard = ax.node();
    let xv = plain::<D>(Ad::inner(ax));
    let Ok(y) = super::try_matmul(xv, &plain::<2>(wf.clone()), bf.map(plain::<1>).as_ref(), f32_out) else {
        return Err(x);
    };
    Ok(frozen_output(guard, context, wf, inner(y)))
}

/// `dy W^T` for an f32 `dy [.., n]` and the frozen f32 `w` (`[k, n]`) by flex's matmul, over
/// the rows of `dy` that are non-zero only. The loss reads the logits of a few positions (the
/// scored tokens), and burn's backward of the f32 head multiplied every position: a second
/// product as large as the forward one (at the 2B shape 334 x 151,936 x 1,536: 156 GFLOP, for
/// gradients that are exactly zero).
fn f32_input_grad(grad: FlexTensor, w: FlexTensor) -> FlexTensor {
    use rayon::prelude::*;
    let grad = grad.to_contiguous();
    let mut dims = grad.layout().shape().to_vec();
    let n = dims.last().copied().unwrap_or(0);
    let wt = plain::<2>(w).transpose();
    let k = wt.dims()[1];
    let g = grad.as_slice::<f32>().expect("contiguous f32");
    let rows = g.len().checked_div(n).unwrap_or(0);
    // -0.0 counts as zero (its products are zeros); NaN does not.
    let live: Vec<usize> = (0..rows).into_par_iter().filter(|&r| g[r * n..][..n].iter().any(|&v| v != 0.0)).collect();
    *dims.last_mut().expect("rank >= 2") = k;
    if live.len() == rows {
        // Every row is read: the whole product, without copying the rows out and back.
        let dx = plain::<2>(grad.reshape(burn::tensor::Shape::from([rows, n]))).matmul(wt);
        return inner(dx).reshape(burn::tensor::Shape::from(dims));
    }
    let out = product_of_live_rows(g, n, k, &live, DType::F32, |compact| inner(plain::<2>(compact).matmul(wt)));
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from(dims)),
        DType::F32,
    )
}

/// `x @ w` for a tracked f32 autodiff flex `x` and a frozen f32 `w` (plain flex, or autodiff and
/// untracked) by flex's matmul, as a [`FrozenProduct`] whose backward is [`f32_input_grad`]; gives `x` back when this does not apply (other dtypes or
/// backends, or an untracked `x`, which burn's matmul handles as well).
#[allow(clippy::result_large_err)]
pub fn try_head_f32<const D: usize>(x: Tensor<D>, w: &Tensor<2>) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != DType::F32 || w.dtype() != DType::F32 || !(2..=4).contains(&D) {
        return Err(x);
    }
    let Some(wf) = super::flex(w.clone()) else { return Err(x) };
    let Some((ax, context)) = super::lora::autodiff_parts(x.clone()) else { return Err(x) };
    if !ax.is_tracked() {
        return Err(x);
    }
    let guard = ax.node();
    let y = crate::nn::matmul_last(plain::<D>(Ad::inner(ax)), plain::<2>(wf.clone()));
    Ok(frozen_output(guard, context, wf, inner(y)))
}

/// Whether the backward's `dy W^T` for the frozen `[k, n]` weight `wf` takes the dot-product
/// path too (its transpose read in place), which both autodiff products need.
pub(super) fn transpose_takes_dp(wf: &FlexTensor) -> bool {
    let n = wf.layout().shape().to_vec().get(1).copied().unwrap_or(0);
    let wt = plain::<2>(wf.clone()).transpose();
    super::use_dp(2, n, super::WeightLayout::InOut) && super::weight_layout(&inner(wt), n).is_some()
}

pub(super) fn plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(super::flex_dispatch(t))
}

pub(super) fn inner<const D: usize>(t: Tensor<D>) -> FlexTensor {
    match super::flex_of(t.into_dispatch()) {
        Ok(f) => f,
        Err(_) => unreachable!("our kernels return plain flex tensors"),
    }
}

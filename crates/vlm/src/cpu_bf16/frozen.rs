//! The frozen bf16 base products of LoRA training on flex, on the same kernels as inference.
//!
//! Under burn's autodiff a product with a frozen bf16 weight went to flex's own bf16 matmul, which
//! widens both operands to f32 on one thread, forward and backward. Here `y = x W (+ b)` is one
//! autodiff op of our own: the forward is [`super::try_matmul`] on the untracked values, and the
//! backward gives `x` the gradient `dy W^T` through the same kernels (the weight, read in place
//! through its transpose, is the op's state; the weight and bias get no gradient, so they must
//! not be tracked). An `f32` gradient (the logits are cast to f32 after the head) is rounded to
//! bf16 first, as the backward of that cast does.

use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::{AutodiffBackend, BackendTypes};
use burn::tensor::{DType, Tensor, bf16};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

#[derive(Debug)]
struct FrozenProduct;

impl Backward<Flex, 1> for FrozenProduct {
    /// The weight as the forward used it (`[k, n]`, maybe a transposed view).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| base_input_grad(grad, w));
    }
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
    let mut out = vec![bf16::ZERO; rows * k];
    if !keep.is_empty() {
        let compact: Vec<bf16> = keep.iter().flat_map(|&r| g[r * n..][..n].iter().copied()).collect();
        let compact = FlexTensor::new(
            burn::tensor::Bytes::from_elems(compact),
            burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from([keep.len(), n])),
            DType::BF16,
        );
        let Some(dx) = grad_input(compact, &wt, 2) else {
            unreachable!("the forward checked that the transposed weight takes this path")
        };
        let dx = dx.to_contiguous();
        let dx = dx.as_slice::<bf16>().expect("contiguous bf16");
        for (i, &r) in keep.iter().enumerate() {
            out[r * k..][..k].copy_from_slice(&dx[i * k..][..k]);
        }
    }
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
    let y = inner(y);
    let out: AdTensor = match FrozenProduct.prepare::<NoCheckpointing>([guard]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(wf, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(super::lora::from_autodiff_parts(out, context))
}

/// The f32 LM head under autodiff: `y = x W` by flex's matmul, as burn's own op computes it;
/// the backward multiplies only the rows of `dy` that are non-zero. The loss reads the logits
/// of a few positions (the scored tokens), so burn's `dy W^T` over every position was a second
/// product as large as the forward one (at the 2B shape 334 x 151,936 x 1,536: 156 GFLOP, for
/// gradients that are exactly zero).
#[derive(Debug)]
struct FrozenHeadF32;

impl Backward<Flex, 1> for FrozenHeadF32 {
    /// The weight as the forward used it (`[k, n]`, maybe a transposed view).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let w = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| f32_live_rows_grad(grad, w));
    }
}

/// `dy W^T` for an f32 `dy [.., n]` and the frozen `w` (`[k, n]`): rows of `dy` that are all
/// zero give zero rows, the others one product by flex's matmul.
fn f32_live_rows_grad(grad: FlexTensor, w: FlexTensor) -> FlexTensor {
    use rayon::prelude::*;
    let grad = grad.to_contiguous();
    let mut dims = grad.layout().shape().to_vec();
    let n = dims.last().copied().unwrap_or(0);
    let k = w.layout().shape().to_vec().first().copied().unwrap_or(0);
    let g = grad.as_slice::<f32>().expect("contiguous f32");
    let rows = g.len().checked_div(n).unwrap_or(0);
    // -0.0 counts as zero (its products are zeros); NaN does not.
    let live: Vec<usize> = (0..rows).into_par_iter().filter(|&r| g[r * n..][..n].iter().any(|&v| v != 0.0)).collect();
    let wt = plain::<2>(w).transpose();
    let mut out = vec![0f32; rows * k];
    if !live.is_empty() {
        let compact: Vec<f32> = live.iter().flat_map(|&r| g[r * n..][..n].iter().copied()).collect();
        let compact =
            Tensor::<2>::from_data(burn::tensor::TensorData::new(compact, [live.len(), n]), (&wt.device(), DType::F32));
        let dx = inner(compact.matmul(wt)).to_contiguous();
        let dx = dx.as_slice::<f32>().expect("contiguous f32");
        for (i, &r) in live.iter().enumerate() {
            out[r * k..][..k].copy_from_slice(&dx[i * k..][..k]);
        }
    }
    *dims.last_mut().expect("rank >= 2") = k;
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(out),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from(dims)),
        DType::F32,
    )
}

/// `x @ w` for a tracked f32 autodiff flex `x` and a frozen f32 `w` (plain flex, or autodiff and
/// untracked) as [`FrozenHeadF32`]; gives `x` back when this does not apply (other dtypes or
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
    let out: AdTensor = match FrozenHeadF32.prepare::<NoCheckpointing>([guard]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(wf, inner(y)),
        OpsKind::UnTracked(prep) => prep.finish(inner(y)),
    };
    Ok(super::lora::from_autodiff_parts(out, context))
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

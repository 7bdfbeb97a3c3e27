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
use burn::backend::{BackendTensor, DispatchTensor, DispatchTensorKind};
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
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let dims = grad.layout().shape().to_vec();
            let grad = as_bf16(grad);
            let wt = plain::<2>(w).transpose();
            match grad_input(grad, &wt, dims.len()) {
                Some(dx) => dx,
                None => unreachable!("the forward checked that the transposed weight takes this path"),
            }
        });
    }
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
    let d = x.clone().into_dispatch();
    let context = d.autodiff;
    let DispatchTensorKind::Autodiff(kind) = d.kind else { return Err(x) };
    let DispatchTensorKind::Flex(BackendTensor::Autodiff(ax)) = *kind else { return Err(x) };
    // The backward needs the transposed weight to take the dot-product path too.
    let wt = plain::<2>(wf.clone()).transpose();
    if !super::use_dp(2, w.dims()[1], super::WeightLayout::InOut)
        || super::weight_layout(&inner(wt), w.dims()[1]).is_none()
    {
        return Err(x);
    }
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
    let kind = DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(BackendTensor::Autodiff(out))));
    Ok(Tensor::from_dispatch(DispatchTensor { kind, autodiff: context }))
}

fn plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(super::flex_dispatch(t))
}

fn inner<const D: usize>(t: Tensor<D>) -> FlexTensor {
    match super::flex_of(t.into_dispatch()) {
        Ok(f) => f,
        Err(_) => unreachable!("our kernels return plain flex tensors"),
    }
}

/// The gradient in bf16 (rounded to nearest even from f32, as a cast's backward does).
fn as_bf16(g: FlexTensor) -> FlexTensor {
    if g.dtype() == DType::BF16 {
        return g;
    }
    let g = g.to_contiguous();
    let dims = g.layout().shape().to_vec();
    let v: Vec<bf16> = match g.dtype() {
        DType::F32 => g.as_slice::<f32>().expect("contiguous f32").iter().map(|&v| bf16::from_f32(v)).collect(),
        other => unreachable!("gradient of a bf16 product in {other:?}"),
    };
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(v),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from(dims)),
        DType::BF16,
    )
}

//! A LoRA projection `y = x W (+ b) + s (drop(x) A) B` as one autodiff op of our own, for bf16
//! flex tensors during LoRA training.
//!
//! As burn ops the adapter cost five passes over the `[rows, out]` product forward (the rank-r
//! product in f32, its cast, the add) and as many backward, mostly on one thread: at the 2B
//! width over a 334-token prompt about 5 ms per MLP projection forward, more than the base
//! product's own 11. Here the base product is [`super::try_matmul`] and the adapter is added in
//! one pass over its rows; the backward is the base's `dy W^T` (as `frozen.rs`) plus rank-r
//! work only: `g = dy B^T`, `dB = h^T dy`, `dA = drop(x)^T (s g)`, `dx += drop(s g A^T)`.
//!
//! Precision follows PEFT on a bf16 base with f32 adapters: the input is widened and dropped
//! out in f32, the rank-r products are f32, and the adapter's f32 output is added to the
//! base's bf16 output and rounded once. Backward, the adapter's input gradient is rounded to
//! bf16 (its cast's backward) before it joins the base's.

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::{AutodiffBackend, BackendTensor, BackendTypes, DispatchTensor, DispatchTensorKind};
use burn::tensor::{Bytes, DType, Distribution, Shape, Tensor, bf16};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use rayon::prelude::*;

use super::frozen::{base_input_grad, inner, plain};
use super::{round_f32, to_bf16, widen};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// Rows per parallel task of the row-wise passes.
const ROWS: usize = 8;
/// Columns per parallel task of the `dA`/`dB` reductions over rows.
const COLS: usize = 512;

/// What the backward needs: the forward's inputs as it used them and its rank-r activations.
#[derive(Clone, Debug)]
struct State {
    /// `[m, k]` bf16, contiguous.
    x: FlexTensor,
    /// The base weight as the forward used it (`[k, n]`, maybe a transposed view).
    w: FlexTensor,
    /// `A^T` `[r, k]` and `B` `[r, n]`, f32.
    at: Vec<f32>,
    b: Vec<f32>,
    /// `h = s drop(x) A`, `[m, r]`.
    h: Vec<f32>,
    /// Dropout: which inputs were kept (`[m, k]`) and the kept ones' factor `1 / (1 - p)`.
    keep: Option<(Vec<bool>, f32)>,
    scaling: f32,
    /// Output dims (`[.., n]`).
    dims: Vec<usize>,
}

#[derive(Debug)]
struct LoraProduct;

impl Backward<Flex, 3> for LoraProduct {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let st = ops.state;
        let [px, pa, pb] = ops.parents;
        let grad = super::as_bf16(grads.consume::<Flex>(&ops.node).to_contiguous());
        let dy = grad.as_slice::<bf16>().expect("contiguous bf16");
        let (k, r) = (st.x.layout().shape().to_vec().last().copied().unwrap_or(0), st.b.len() / st.n().max(1));
        let n = st.n();
        let m = dy.len().checked_div(n).unwrap_or(0);
        let xs = st.x.as_slice::<bf16>().expect("contiguous bf16");
        // g = dy B^T (then s g): what dA and the adapter's dx read. Rows whose gradient is all
        // zero (positions the loss never reads) give zeros and are skipped.
        let mut sg = vec![0f32; m * r];
        if px.is_some() || pa.is_some() {
            sg.par_chunks_mut(r * ROWS).enumerate().for_each(|(c, out)| {
                let mut dyf = vec![0f32; n];
                for (i, o) in out.chunks_mut(r).enumerate() {
                    let row = &dy[(c * ROWS + i) * n..][..n];
                    if row.iter().all(|v| v.to_bits() & 0x7FFF == 0) {
                        continue;
                    }
                    dyf.iter_mut().zip(row).for_each(|(d, &v)| *d = widen(v));
                    super::kernels::dots(&dyf, &st.b, o);
                    o.iter_mut().for_each(|v| *v *= st.scaling);
                }
            });
        }
        if let Some(node) = pb {
            // dB = h^T dy, `[r, n]`.
            let db = rows_outer_sum(
                m,
                r,
                n,
                |i| &st.h[i * r..][..r],
                |i, c0, out| {
                    let w = out.len();
                    out.iter_mut().zip(&dy[i * n + c0..][..w]).for_each(|(d, &v)| *d = widen(v))
                },
            );
            grads.register::<Flex>(node.id, f32_tensor(db, vec![r, n]));
        }
        if let Some(node) = pa {
            // dA = drop(x)^T (s g), built as `[r, k]`, returned `[k, r]`.
            let dat = rows_outer_sum(
                m,
                r,
                k,
                |i| &sg[i * r..][..r],
                |i, c0, out| {
                    let w = out.len();
                    dropped_row(
                        &xs[i * k + c0..][..w],
                        st.keep.as_ref().map(|(kp, f)| (&kp[i * k + c0..][..w], *f)),
                        out,
                    )
                },
            );
            let mut da = vec![0f32; k * r];
            for j in 0..r {
                for (q, &v) in dat[j * k..][..k].iter().enumerate() {
                    da[q * r + j] = v;
                }
            }
            grads.register::<Flex>(node.id, f32_tensor(da, vec![k, r]));
        }
        if let Some(node) = px {
            let base = base_input_grad(grad.clone(), st.w.clone()).to_contiguous();
            let mut dx = base.as_slice::<bf16>().expect("contiguous bf16").to_vec();
            // dx += bf16(drop(s g A^T)).
            dx.par_chunks_mut(k * ROWS).enumerate().for_each(|(c, rows)| {
                let mut acc = vec![0f32; k];
                for (i, d) in rows.chunks_mut(k).enumerate() {
                    let row = c * ROWS + i;
                    let g = &sg[row * r..][..r];
                    if g.iter().all(|&v| v == 0.0) {
                        continue;
                    }
                    acc.fill(0.0);
                    super::kernels::mix_rows(g, &st.at, &mut acc);
                    if let Some((kp, f)) = &st.keep {
                        acc.iter_mut()
                            .zip(&kp[row * k..][..k])
                            .for_each(|(a, &kept)| *a = if kept { *a * f } else { 0.0 });
                    }
                    d.iter_mut().zip(&acc).for_each(|(d, &a)| *d = to_bf16(widen(*d) + round_f32(a)));
                }
            });
            let mut xdims = st.dims.clone();
            *xdims.last_mut().expect("rank >= 2") = k;
            let dx = FlexTensor::new(Bytes::from_elems(dx), Layout::contiguous(Shape::from(xdims)), DType::BF16);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// `sum_i coef(i)^T row(i)` as `[r, width]`: each task owns a block of `COLS` columns, fills
/// row `i`'s slice of it (`fill(i, c0, out)`) and adds the rank-one update; rows whose
/// coefficients are all zero are skipped (their updates are zero).
fn rows_outer_sum<'a>(
    m: usize,
    r: usize,
    width: usize,
    coef: impl Fn(usize) -> &'a [f32] + Sync,
    fill: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let blocks: Vec<(usize, Vec<f32>)> = (0..width.div_ceil(COLS))
        .into_par_iter()
        .map(|c| {
            let (c0, w) = (c * COLS, COLS.min(width - c * COLS));
            let (mut acc, mut vals) = (vec![0f32; r * w], vec![0f32; w]);
            for i in 0..m {
                let g = coef(i);
                if g.iter().all(|&v| v == 0.0) {
                    continue;
                }
                fill(i, c0, &mut vals);
                super::kernels::outer_add(g, &vals, &mut acc);
            }
            (c0, acc)
        })
        .collect();
    let mut out = vec![0f32; r * width];
    for (c0, acc) in blocks {
        let w = acc.len() / r.max(1);
        for j in 0..r {
            out[j * width + c0..][..w].copy_from_slice(&acc[j * w..][..w]);
        }
    }
    out
}

impl State {
    fn n(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }
}

fn f32_tensor(v: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(v), Layout::contiguous(Shape::from(dims)), DType::F32)
}

/// `x` widened, with the dropout applied (`keep`: kept flags and their factor).
fn dropped_row(x: &[bf16], keep: Option<(&[bool], f32)>, out: &mut [f32]) {
    match keep {
        None => out.iter_mut().zip(x).for_each(|(o, &v)| *o = widen(v)),
        Some((kp, f)) => {
            out.iter_mut().zip(x).zip(kp).for_each(|((o, &v), &kept)| *o = if kept { widen(v) * f } else { 0.0 })
        }
    }
}

/// A tracked or untracked autodiff flex tensor's primitive (value and graph node) and context.
pub(super) fn autodiff_parts<const D: usize>(
    t: Tensor<D>,
) -> Option<(AdTensor, burn::backend::DispatchAutodiffContext)> {
    let d = t.into_dispatch();
    match d.kind {
        DispatchTensorKind::Autodiff(kind) => match *kind {
            DispatchTensorKind::Flex(BackendTensor::Autodiff(a)) => Some((a, d.autodiff)),
            _ => None,
        },
        _ => None,
    }
}

/// The inverse of [`autodiff_parts`]: an op's output primitive as a tensor of `context`.
pub(super) fn from_autodiff_parts<const D: usize>(
    out: AdTensor,
    context: burn::backend::DispatchAutodiffContext,
) -> Tensor<D> {
    let kind = DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(BackendTensor::Autodiff(out))));
    Tensor::from_dispatch(DispatchTensor { kind, autodiff: context })
}

/// A seed for [`keep_mask`] from flex's generator (the one burn's `Dropout` draws from), so
/// `Device::seed` makes the masks reproducible.
pub fn draw_dropout_seed() -> u64 {
    let draw = Tensor::<1>::random([2], Distribution::Default, (&burn::tensor::Device::flex(), DType::F32));
    let v = draw.into_data().try_into_vec::<f32>().unwrap_or_default();
    v.iter().fold(0u64, |acc, x| (acc << 32) | u64::from(x.to_bits()))
}

/// Dropout's keep flags: element `i` is kept when the `i`-th 32-bit word of ChaCha8 seeded with
/// `seed` is below `p_keep * 2^32`. The stream is counter-based, so chunks are drawn in parallel
/// and the mask does not depend on the thread count. burn's `Dropout` drew one value per element
/// on one thread through `TensorData::random` (its `Bernoulli` at the 2B width: one draw per
/// input of each of the seven projections, every layer, every step).
pub fn keep_mask(seed: u64, len: usize, p_keep: f64) -> Vec<bool> {
    use rand::{Rng, SeedableRng};
    const CHUNK: usize = 1 << 14;
    let threshold = (p_keep.clamp(0.0, 1.0) * 4_294_967_296.0) as u64;
    let mut out = vec![false; len];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Word positions count 32-bit outputs.
        rng.set_word_pos((c * CHUNK) as u128);
        chunk.iter_mut().for_each(|kept| *kept = u64::from(rng.next_u32()) < threshold);
    });
    out
}

/// The adapter of a [`super::lora_linear`] call: `A [in, r]`, `B [r, out]` (f32 autodiff
/// tensors, usually the trainable parameters), the scaling, and the dropout probability to
/// apply (0 when the dropout is off).
pub struct Adapter {
    pub a: Tensor<2>,
    pub b: Tensor<2>,
    pub scaling: f64,
    pub dropout: f64,
}

/// `x W (+ bias) + s (drop(x) A) B` for a bf16 autodiff flex `x` (tracked or not), a frozen
/// bf16 `W` the dot-product kernels take (as `frozen::try_product`), and f32 adapter tensors on
/// the same autodiff device. Gives `x` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_lora_product<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    adapter: &Adapter,
) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != DType::BF16
        || w.dtype() != DType::BF16
        || adapter.a.dtype() != DType::F32
        || adapter.b.dtype() != DType::F32
        || !(2..=4).contains(&D)
        || !(0.0..1.0).contains(&adapter.dropout)
    {
        return Err(x);
    }
    let [k, n] = w.dims();
    let r = adapter.a.dims()[1];
    if adapter.a.dims() != [k, r] || adapter.b.dims() != [r, n] || x.dims()[D - 1] != k {
        return Err(x);
    }
    let (Some(wf), Some(bf)) = (super::flex(w.clone()), bias.map_or(Some(None), |b| super::flex(b.clone()).map(Some)))
    else {
        return Err(x);
    };
    if !super::frozen::transpose_takes_dp(&wf) {
        return Err(x);
    }
    let (Some((aa, _)), Some((ab, _))) = (autodiff_parts(adapter.a.clone()), autodiff_parts(adapter.b.clone())) else {
        return Err(x);
    };
    let Some((ax, context)) = autodiff_parts(x.clone()) else { return Err(x) };
    let guards = [ax.node(), aa.node(), ab.node()];
    let xv = Ad::inner(ax).to_contiguous();
    let dims: Vec<usize> = xv.layout().shape().to_vec();
    let m = dims[..D - 1].iter().product::<usize>();
    let a_host = Ad::inner(aa).to_contiguous();
    let a_host = a_host.as_slice::<f32>().expect("contiguous f32");
    let mut at = vec![0f32; r * k];
    for (kk, row) in a_host.chunks(r.max(1)).enumerate().take(k) {
        for (j, &v) in row.iter().enumerate() {
            at[j * k + kk] = v;
        }
    }
    let b_host = Ad::inner(ab).to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec();
    let keep = (adapter.dropout > 0.0).then(|| {
        let p_keep = 1.0 - adapter.dropout;
        (keep_mask(draw_dropout_seed(), m * k, p_keep), (1.0 / p_keep) as f32)
    });
    let scaling = adapter.scaling as f32;
    let xs = xv.as_slice::<bf16>().expect("contiguous bf16");
    // h = s drop(x) A, row by row.
    let mut h = vec![0f32; m * r];
    h.par_chunks_mut(r * ROWS).enumerate().for_each(|(c, out)| {
        let mut xf = vec![0f32; k];
        for (i, o) in out.chunks_mut(r).enumerate() {
            let row = c * ROWS + i;
            dropped_row(&xs[row * k..][..k], keep.as_ref().map(|(kp, f)| (&kp[row * k..][..k], *f)), &mut xf);
            super::kernels::dots(&xf, &at, o);
            o.iter_mut().for_each(|v| *v *= scaling);
        }
    });
    let Ok(y) = super::try_matmul(plain::<D>(xv.clone()), &plain::<2>(wf.clone()), bf.map(plain::<1>).as_ref(), false)
    else {
        return Err(x);
    };
    let mut y = inner(y).to_contiguous();
    let out_dims: Vec<usize> = y.layout().shape().to_vec();
    if y.try_storage_mut::<bf16>().is_none() {
        let copy = y.as_slice::<bf16>().expect("contiguous bf16").to_vec();
        y = FlexTensor::new(Bytes::from_elems(copy), Layout::contiguous(Shape::from(out_dims.clone())), DType::BF16);
    }
    {
        let ys = y.try_storage_mut::<bf16>().expect("a unique contiguous buffer");
        // y = bf16(y + h B), a row at a time.
        ys.par_chunks_mut(n * ROWS).enumerate().for_each(|(c, rows)| {
            let mut acc = vec![0f32; n];
            for (i, yr) in rows.chunks_mut(n).enumerate() {
                let row = c * ROWS + i;
                acc.iter_mut().zip(yr.iter()).for_each(|(a, &v)| *a = widen(v));
                super::kernels::mix_rows(&h[row * r..][..r], &b_host, &mut acc);
                yr.iter_mut().zip(&acc).for_each(|(y, &a)| *y = to_bf16(a));
            }
        });
    }
    let state = State { x: xv, w: wf, at, b: b_host, h, keep, scaling, dims: out_dims };
    let out: AdTensor = match LoraProduct.prepare::<NoCheckpointing>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(from_autodiff_parts(out, context))
}

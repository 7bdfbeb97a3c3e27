//! bf16-weight matmul (and the vision tower's attention and LayerNorm) for burn's flex (CPU)
//! backend, used when the weights are bf16.
//!
//! flex multiplies bf16 by copying both operands to contiguous f32 buffers on every call, on one
//! thread, and rounding the product back: at decode that widens every weight once per token,
//! the tied LM head (a transposed 151,936 x 1,536 view) included. Here the weight stays bf16 where
//! it lies. On CPUs with AVX512-BF16, [`dpbf16`] multiplies bf16 pairs directly (`vdpbf16ps`,
//! as torch does). Elsewhere a few rows stream the weight once, widened in registers, and many
//! rows widen it panel by panel into a cache-sized buffer for gemm's f32 kernel. Sums are f32 and the result is rounded to bf16 once, as torch does.
//! Inputs are plain flex tensors or autodiff ones that are not tracked (the frozen vision tower
//! during LoRA training: the result is handed back as an untracked autodiff tensor). Tracked
//! inputs go through autodiff ops of our own on the same kernels: a frozen bf16 product
//! (`frozen.rs`), a LoRA projection (`lora.rs`), the prompt's attention (`attention_grad.rs`),
//! `silu(g) * u` (`gated.rs`). Other backends never come here. f32 weights come here for
//! decode-sized products (`small_f32.rs`), the vision attention (`attention_f32.rs`) and the
//! activations after burn's f32 products.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::nn::Linear;
use burn::tensor::{Bytes, DType, Shape, Tensor, bf16};
use rayon::prelude::*;
use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
pub mod attention_f32;
#[cfg(target_arch = "x86_64")]
pub mod attention_grad;
#[cfg(target_arch = "x86_64")]
pub mod dpbf16;
#[cfg(target_arch = "x86_64")]
mod frozen;
#[cfg(target_arch = "x86_64")]
mod lora;
#[cfg(target_arch = "x86_64")]
mod packed;
#[cfg(target_arch = "x86_64")]
pub use lora::{Adapter, draw_dropout_seed, keep_mask};
pub mod gated;
#[cfg(target_arch = "x86_64")]
pub mod small_f32;

/// How the bf16 weight `W[k, j]` (`k` inner, `j` output column) lies in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// At `k * n + j`: burn's Linear `[in, out]`.
    InOut,
    /// At `j * k_len + k`: an `[out, in]` matrix used transposed (the tied LM head's embedding).
    OutIn,
}

/// Up to this many rows, the weight is streamed (GEMV-like); above, widened panels feed gemm.
const SMALL_M: usize = 16;
/// Up to this many rows, threads split W by rows (m x n partial sums each); above, by columns
/// (measured at 2b:4: one row 18.4 vs 15.9 tok/s, eight rows 29.5 vs 35.3).
const SPLIT_K_M: usize = 2;
/// Width of the W chunk the streaming kernel widens at a time (four rows of it stay in L1).
const NT_MAX: usize = 256;
/// gemm panel: this many output columns by `KB` inner rows, widened to f32 (512 KiB, in L2).
const NB: usize = 256;
const KB: usize = 512;

/// `x @ w (+ bias)` on flex for `x: [.., k]`, `w: [k, n]` (its own layout or the transpose of a
/// contiguous `[n, k]`), all bf16 and outside autodiff; the output is bf16, or f32 holding the
/// bf16-rounded values when `f32_out`. Gives `x` back when this path does not apply.
// The input comes back by value on the Err side so the caller can take burn's path with it.
#[allow(clippy::result_large_err)]
pub fn try_matmul<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    f32_out: bool,
) -> Result<Tensor<D>, Tensor<D>> {
    try_matmul_then(x, w, bias, f32_out, Epilogue::None)
}

/// What is applied to the f32 sums before they are rounded to bf16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    None,
    /// `v * sigmoid(1.702 v)`: the vision MLP's activation, fused so it costs no extra passes
    /// over the activations (and is rounded once instead of after each of its three ops).
    QuickGelu,
    /// `v Phi(v)` with the exact (erf) normal CDF: the vision merger's `nn.GELU()`. burn's erf
    /// ran on one thread over the merger's 256 x 5,120 activations (30-40 ms per image).
    Gelu,
}

impl Epilogue {
    /// The activation on f32 sums, in place.
    fn apply(self, v: &mut [f32]) {
        match self {
            Epilogue::None => {}
            Epilogue::QuickGelu => quick_gelu_in_place(v),
            Epilogue::Gelu => gelu_in_place(v),
        }
    }
}

/// [`try_matmul`] with an [`Epilogue`].
#[allow(clippy::result_large_err)]
pub fn try_matmul_then<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    f32_out: bool,
    epilogue: Epilogue,
) -> Result<Tensor<D>, Tensor<D>> {
    #[cfg(target_arch = "x86_64")]
    if x.dtype() == DType::F32 {
        return try_small_f32(x, w, bias, epilogue);
    }
    let op = Operands::new(x, &[w], bias)?;
    // The f32 sums go to a per-thread buffer kept between calls: a fresh one of this size is
    // mapped and zeroed by the kernel on every call (7% of the vision tower's time). Every path
    // writes all of it, so stale values are never read.
    let mut out = if f32_out { Vec::new() } else { SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut())) };
    let t = if f32_out {
        let done = op.sums(0, &mut out, epilogue == Epilogue::None, None);
        if epilogue != Epilogue::None {
            out.par_chunks_mut(4096).for_each(|c| epilogue.apply(c));
        }
        if done != Sums::Rounded {
            out.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v = round_f32(*v)));
        }
        FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(op.out_shape(0)), DType::F32)
    } else {
        // The activation and the rounding inside the kernel's tasks where it allows (many
        // rows), else as passes over the sums.
        let n = op.weights[0].2;
        // Not zeroed first: either the kernel's tasks or the pass below write every element.
        let mut o: Vec<bf16> = Vec::with_capacity(op.m * n);
        let dst = SharedOut(o.spare_capacity_mut().as_mut_ptr());
        let finish = |i: usize, j0: usize, sums: &mut [f32]| {
            epilogue.apply(sums);
            // SAFETY: row i's columns j0 .. j0 + sums.len() of the m x n output, which only
            // this task writes.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(i * n + j0), sums.len()) };
            kernels::round_row(sums, row);
        };
        if op.sums(0, &mut out, false, Some(&finish)) != Sums::Finished {
            if epilogue != Epilogue::None {
                out.par_chunks_mut(4096).for_each(|c| epilogue.apply(c));
            }
            round_into(&mut o.spare_capacity_mut()[..out.len()], &out);
        }
        // SAFETY: every one of the m * n elements was written above (finished rows or the pass).
        unsafe { o.set_len(op.m * n) };
        SCRATCH.with(|s| *s.borrow_mut() = out);
        FlexTensor::new(Bytes::from_elems(o), Layout::contiguous(op.out_shape(0)), DType::BF16)
    };
    Ok(Tensor::from_dispatch(dispatch_as(t, &op.origin)))
}

/// `silu(x @ gate) * (x @ up)`, the text MLP's gated activation, on flex with bf16 weights
/// `[k, n]` (no bias) and a bf16 `x` outside autodiff (or untracked). Rounds where transformers'
/// bf16 ops round (each product, the SiLU, the product of the two) but in one pass over the
/// sums instead of three tensor ops. Gives `x` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_swiglu<const D: usize>(x: Tensor<D>, gate: &Tensor<2>, up: &Tensor<2>) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != DType::BF16 {
        return Err(x);
    }
    let op = Operands::new(x, &[gate, up], None)?;
    if op.weights[0].2 != op.weights[1].2 {
        return Err(op.give_back());
    }
    let mut g = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let mut u = Vec::new();
    op.sums(0, &mut g, false, None);
    // Not zeroed first: `combine` writes every element, in the kernel's tasks or in a pass.
    let mut o: Vec<bf16> = Vec::with_capacity(g.len());
    // `silu(round(g)) * round(u)`, rounded, from the gate's row and the up product's sums.
    let combine = |o: &mut [MaybeUninit<bf16>], g: &[f32], u: &[f32]| {
        let mut t = [0f32; 256];
        for ((o, g), u) in o.chunks_mut(256).zip(g.chunks(256)).zip(u.chunks(256)) {
            let t = &mut t[..g.len()];
            kernels::round_f32_row(g, t);
            silu_in_place(t);
            kernels::mul_round_row(t, u, o);
        }
    };
    let n = op.weights[1].2;
    let dst = SharedOut(o.spare_capacity_mut().as_mut_ptr());
    let gate = &g;
    let finish = |i: usize, j0: usize, u: &mut [f32]| {
        // SAFETY: row i's columns j0 .. j0 + u.len() of the m x n output, which only this task
        // writes.
        let o = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(i * n + j0), u.len()) };
        combine(o, &gate[i * n + j0..][..u.len()], u);
    };
    if op.sums(1, &mut u, false, Some(&finish)) != Sums::Finished {
        o.spare_capacity_mut()[..g.len()]
            .par_chunks_mut(4096)
            .zip(g.par_chunks(4096))
            .zip(u.par_chunks(4096))
            .for_each(|((o, g), u)| combine(o, g, u));
    }
    // SAFETY: `combine` wrote all g.len() elements (finished rows or the pass above).
    unsafe { o.set_len(g.len()) };
    SCRATCH.with(|s| *s.borrow_mut() = g);
    let t = FlexTensor::new(Bytes::from_elems(o), Layout::contiguous(op.out_shape(0)), DType::BF16);
    Ok(Tensor::from_dispatch(dispatch_as(t, &op.origin)))
}

/// The flex operands of bf16 products `x @ W_i (+ bias)` that the kernels here can read: `x`
/// contiguous, each weight's layout, width and offset, and how the result goes back.
struct Operands {
    x: FlexTensor,
    origin: Origin,
    dims: Vec<usize>,
    m: usize,
    k: usize,
    /// (storage, layout, n, start offset)
    weights: Vec<(FlexTensor, WeightLayout, usize, usize)>,
    bias: Option<FlexTensor>,
}

impl Operands {
    /// `x` back (unchanged) when any operand is not bf16 on flex outside autodiff (or untracked),
    /// or a weight's shape or strides do not fit.
    #[allow(clippy::result_large_err)]
    fn new<const D: usize>(x: Tensor<D>, ws: &[&Tensor<2>], bias: Option<&Tensor<1>>) -> Result<Self, Tensor<D>> {
        if !enabled()
            || x.dtype() != DType::BF16
            || ws.iter().any(|w| w.dtype() != DType::BF16)
            || bias.is_some_and(|b| b.dtype() != DType::BF16)
        {
            return Err(x);
        }
        let Some(origin) = origin_of(&x) else { return Err(x) };
        let k = x.dims()[D - 1];
        let mut weights = Vec::with_capacity(ws.len());
        for w in ws {
            let Some(wf) = flex_for((*w).clone(), &origin) else { return Err(x) };
            let Some((layout, n, off)) = weight_layout(&wf, k) else { return Err(x) };
            weights.push((wf, layout, n, off));
        }
        let bias = match bias.map(|b| flex_for(b.clone(), &origin)) {
            Some(None) => return Err(x),
            Some(Some(b)) => Some(b.to_contiguous()),
            None => None,
        };
        let (xf, origin) = match flex_value(x.into_dispatch()) {
            Ok(t) => t,
            Err(other) => return Err(Tensor::from_dispatch(other)),
        };
        let dims = xf.layout().shape().to_vec();
        let m = dims[..D - 1].iter().product();
        let x = if xf.is_contiguous() { xf } else { xf.to_contiguous() };
        Ok(Operands { x, origin, dims, m, k, weights, bias })
    }

    /// The input as it came (for a caller that takes another path after all).
    fn give_back<const D: usize>(self) -> Tensor<D> {
        Tensor::from_dispatch(dispatch_as(self.x, &self.origin))
    }

    /// Shape of `x @ W_i`.
    fn out_shape(&self, i: usize) -> Shape {
        let mut d = self.dims.clone();
        *d.last_mut().expect("x has a last axis") = self.weights[i].2;
        Shape::from(d)
    }

    /// `out = x @ W_i (+ bias)`, f32 sums (resized to `m * n`); with `round`, a kernel that can
    /// may round them to bf16 values as it goes, and with `finish` hand them over as they are
    /// done. Returns which it did.
    fn sums(&self, i: usize, out: &mut Vec<f32>, round: bool, finish: Option<Finish>) -> Sums {
        let (m, k) = (self.m, self.k);
        let (wf, layout, n, off) = &self.weights[i];
        let (layout, n) = (*layout, *n);
        let w_data = &wf.storage::<bf16>()[*off..*off + k * n];
        let x_data = self.x.as_slice::<bf16>().expect("contiguous bf16");
        let b_data = self.bias.as_ref().map(|b| b.as_slice::<bf16>().expect("contiguous bf16"));
        if out.capacity() < m * n {
            // Zeroed pages from the allocator, not a pass that writes them (the tied head's f32
            // logits over a prompt are 200 MB).
            *out = vec![0.0; m * n];
        } else {
            out.truncate(m * n);
            out.resize(m * n, 0.0);
        }
        if use_dp(m, k, layout) {
            #[cfg(target_arch = "x86_64")]
            {
                let kept = if dpbf16::packs(m) { packed::panels(wf, (*off, k, n, layout)) } else { None };
                let kept = kept.as_deref().map(packed::Panels::words);
                return dpbf16::matmul_into(x_data, m, k, w_data, n, layout, b_data, out, round, finish, kept);
            }
        }
        let _ = (round, finish);
        let mut xw = vec![0f32; m * k];
        xw.par_chunks_mut(4096).zip(x_data.par_chunks(4096)).for_each(|(d, s)| widen_into(d, s));
        matmul_f32_out(&xw, m, k, w_data, n, layout, b_data, out);
        Sums::Plain
    }
}

/// f32 weights and at most [`small_f32::MAX_M`] rows (decode) on a CPU with AVX-512, through
/// [`small_f32`]; everything else is given back for gemm.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::result_large_err)]
fn try_small_f32<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    epilogue: Epilogue,
) -> Result<Tensor<D>, Tensor<D>> {
    let dims = x.dims();
    let (m, k) = (dims[..D - 1].iter().product::<usize>(), dims[D - 1]);
    if !enabled()
        || !small_f32::available()
        || m > small_f32::MAX_M
        || w.dtype() != DType::F32
        || bias.is_some_and(|b| b.dtype() != DType::F32)
    {
        return Err(x);
    }
    let Some(origin) = origin_of(&x) else { return Err(x) };
    let (Some(wf), Some(bf)) =
        (flex_for(w.clone(), &origin), bias.map_or(Some(None), |b| flex_for(b.clone(), &origin).map(Some)))
    else {
        return Err(x);
    };
    let Some((layout, n, off)) = weight_layout(&wf, k) else {
        return Err(x);
    };
    let (xf, origin) = match flex_value(x.into_dispatch()) {
        Ok(t) => t,
        Err(other) => return Err(Tensor::from_dispatch(other)),
    };
    let w_data = &wf.storage::<f32>()[off..off + k * n];
    let xc = if xf.is_contiguous() { xf } else { xf.to_contiguous() };
    let bias_c = bf.map(|b| b.to_contiguous());
    let b_data = bias_c.as_ref().map(|b| b.as_slice::<f32>().expect("contiguous f32"));
    let mut out = vec![0f32; m * n];
    small_f32::matmul(xc.as_slice::<f32>().expect("contiguous f32"), m, k, w_data, n, layout, b_data, &mut out);
    epilogue.apply(&mut out);
    let mut out_dims = dims;
    out_dims[D - 1] = n;
    let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::from(out_dims)), DType::F32);
    Ok(Tensor::from_dispatch(dispatch_as(t, &origin)))
}

/// How a flex weight `[k, n]` lies (see [`WeightLayout`]), its `n` and start offset; `None` for
/// other strides or a `k` that does not match.
fn weight_layout(wf: &FlexTensor, k: usize) -> Option<(WeightLayout, usize, usize)> {
    let wl = wf.layout();
    let (wk, n) = (wl.shape()[0], wl.shape()[1]);
    let layout = match wl.strides() {
        [s0, 1] if *s0 == n as isize => WeightLayout::InOut,
        [1, s1] if *s1 == k as isize => WeightLayout::OutIn,
        _ => return None,
    };
    (wk == k).then_some((layout, n, wl.start_offset()))
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `v * sigmoid(1.702 v)` in place (AVX-512 where the CPU has it).
fn quick_gelu_in_place(v: &mut [f32]) {
    sigmoid_mul_in_place(v, 1.702);
}

/// `v Phi(v) = v (1 + erf(v / sqrt 2)) / 2` in place, erf by Abramowitz & Stegun 7.1.26
/// (absolute error below 1.5e-7, far under the bf16 rounding that follows).
fn gelu_in_place(v: &mut [f32]) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    for x in v.iter_mut() {
        let z = (*x * std::f32::consts::FRAC_1_SQRT_2).abs();
        let t = 1.0 / (1.0 + P * z);
        let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
        let erf = (1.0 - poly * (-z * z).exp()).copysign(*x);
        *x *= 0.5 * (1.0 + erf);
    }
}

/// `v * sigmoid(v)` in place.
fn silu_in_place(v: &mut [f32]) {
    sigmoid_mul_in_place(v, 1.0);
}

fn sigmoid_mul_in_place(v: &mut [f32], a: f32) {
    #[cfg(target_arch = "x86_64")]
    if dpbf16::available() {
        dpbf16::sigmoid_mul(v, a);
        return;
    }
    v.iter_mut().for_each(|v| *v /= 1.0 + (-a * *v).exp());
}

/// The vision tower's attention from its qkv projection, on flex, bf16, outside autodiff: splits
/// `qkv` (`[n, 3 * heads * hd]`, q then k then v), applies the 2D rotary embedding to q and k in
/// f32 and rounds them to bf16 (transformers' order), then [`dpbf16::attention`]. One pass
/// instead of the casts, rotate-half and products as separate tensor ops. `cos`/`sin` are f32
/// `[n, 1, hd]`. Returns `[n, heads * hd]`, or `qkv` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_vision_attention(
    qkv: Tensor<2>,
    heads: usize,
    cos: &Tensor<3>,
    sin: &Tensor<3>,
) -> Result<Tensor<2>, Tensor<2>> {
    let [n, e3] = qkv.dims();
    let e = e3 / 3;
    let hd = e / heads.max(1);
    #[cfg(target_arch = "x86_64")]
    if qkv.dtype() == DType::F32 {
        return try_vision_attention_f32(qkv, heads, cos, sin);
    }
    let applies = qkv.dtype() == DType::BF16
        && n.is_multiple_of(2)
        && use_dp(n, hd, WeightLayout::OutIn)
        && vision_shapes_fit(&qkv, heads, cos, sin);
    #[cfg(target_arch = "x86_64")]
    if applies {
        let (xc, origin, cf, sf) = vision_operands(qkv, cos, sin)?;
        let (src, c, s) = (
            xc.as_slice::<bf16>().expect("contiguous bf16"),
            cf.as_slice::<f32>().expect("contiguous f32"),
            sf.as_slice::<f32>().expect("contiguous f32"),
        );
        let (mut q, mut k, mut v) = (vec![bf16::ZERO; n * e], vec![bf16::ZERO; n * e], vec![bf16::ZERO; n * e]);
        q.par_chunks_mut(e).zip(k.par_chunks_mut(e)).zip(v.par_chunks_mut(e)).enumerate().for_each(
            |(i, ((q, k), v))| {
                let row = &src[i * e3..][..e3];
                let (cos, sin) = (&c[i * hd..][..hd], &s[i * hd..][..hd]);
                kernels::rotary_row(&row[..e], cos, sin, q);
                kernels::rotary_row(&row[e..2 * e], cos, sin, k);
                v.copy_from_slice(&row[2 * e..]);
            },
        );
        let mut out = vec![bf16::ZERO; n * e];
        dpbf16::attention(&q, &k, &v, n, heads, hd, 1.0 / (hd as f32).sqrt(), &mut out);
        let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::from([n, e])), DType::BF16);
        return Ok(Tensor::from_dispatch(dispatch_as(t, &origin)));
    }
    let _ = applies;
    Err(qkv)
}

/// [`try_vision_attention`] for f32 `qkv` (plain flex or untracked): [`attention_f32`] on
/// CPUs with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::result_large_err)]
fn try_vision_attention_f32(
    qkv: Tensor<2>,
    heads: usize,
    cos: &Tensor<3>,
    sin: &Tensor<3>,
) -> Result<Tensor<2>, Tensor<2>> {
    let [n, e3] = qkv.dims();
    let e = e3 / 3;
    let hd = e / heads.max(1);
    if !(small_f32::available() && vision_shapes_fit(&qkv, heads, cos, sin)) {
        return Err(qkv);
    }
    let (xc, origin, cf, sf) = vision_operands(qkv, cos, sin)?;
    let mut out = vec![0f32; n * e];
    attention_f32::vision_attention(
        xc.as_slice::<f32>().expect("contiguous f32"),
        n,
        heads,
        hd,
        cf.as_slice::<f32>().expect("contiguous f32"),
        sf.as_slice::<f32>().expect("contiguous f32"),
        &mut out,
    );
    let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::from([n, e])), DType::F32);
    Ok(Tensor::from_dispatch(dispatch_as(t, &origin)))
}

/// The vision attention's shape and kind checks shared by its bf16 and f32 paths: `qkv`
/// `[n, 3 * heads * hd]` with `hd` even, plain or untracked on flex, `cos`/`sin` f32
/// `[n, 1, hd]` that go with it.
fn vision_shapes_fit(qkv: &Tensor<2>, heads: usize, cos: &Tensor<3>, sin: &Tensor<3>) -> bool {
    let [n, e3] = qkv.dims();
    let hd = e3 / 3 / heads.max(1);
    enabled()
        && heads > 0
        && e3 == 3 * heads * hd
        && hd.is_multiple_of(2)
        && cos.dims() == [n, 1, hd]
        && sin.dims() == [n, 1, hd]
        && origin_of(qkv)
            .is_some_and(|o| [cos, sin].iter().all(|t| t.dtype() == DType::F32 && flex_for((*t).clone(), &o).is_some()))
}

/// The contiguous flex values of a vision attention's `qkv`, `cos`, `sin` (after
/// [`vision_shapes_fit`]) and where `qkv` came from.
#[allow(clippy::result_large_err)]
fn vision_operands(
    qkv: Tensor<2>,
    cos: &Tensor<3>,
    sin: &Tensor<3>,
) -> Result<(FlexTensor, Origin, FlexTensor, FlexTensor), Tensor<2>> {
    let (xf, origin) = match flex_value(qkv.into_dispatch()) {
        Ok(t) => t,
        Err(other) => return Err(Tensor::from_dispatch(other)),
    };
    let xc = if xf.is_contiguous() { xf } else { xf.to_contiguous() };
    let contiguous = |t: &Tensor<3>| flex(t.clone()).expect("checked by vision_shapes_fit").to_contiguous();
    Ok((xc, origin, contiguous(cos), contiguous(sin)))
}

/// Whether burn's attention should run on `q`'s values widened to f32: bf16 on flex (CPU, with or
/// without autodiff), where flex's bf16 matmuls and softmax widen element by element on one
/// thread (at the 2B width over a 334-token prompt: 20-38 ms forward and 54-74 ms with the
/// backward per layer, against 13 and 37-42 in f32). torch's CPU kernels also compute bf16
/// attention in f32 and round the output once.
pub fn attention_in_f32<const D: usize>(q: &Tensor<D>) -> bool {
    enabled() && q.dtype() == DType::BF16 && is_flex(q)
}

/// Whether `t` lives on flex (plainly or under autodiff).
#[allow(unreachable_patterns)] // only flex and autodiff exist without the `cuda`/`tch` features
fn is_flex<const D: usize>(t: &Tensor<D>) -> bool {
    match t.clone().into_dispatch().kind {
        DispatchTensorKind::Flex(_) => true,
        DispatchTensorKind::Autodiff(k) => matches!(*k, DispatchTensorKind::Flex(_)),
        _ => false,
    }
}

/// Whether [`text_attention`] takes these tensors: bf16 on flex outside autodiff (or untracked),
/// on a CPU with AVX512-BF16, head size even, `cos`/`sin` `[b, 1, s, hd]` on flex.
pub fn text_attention_applies(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    head_dim: usize,
) -> bool {
    let [b, s, _] = q.dims();
    enabled()
        && head_dim.is_multiple_of(2)
        && use_dp(2, head_dim, WeightLayout::OutIn)
        && [q, k, v].iter().all(|t| t.dtype() == DType::BF16)
        && [cos, sin].iter().all(|t| t.dims() == [b, 1, s, head_dim] && matches!(t.dtype(), DType::BF16 | DType::F32))
        && origin_of(q).is_some_and(|o| {
            [k, v].iter().all(|t| flex_for((*t).clone(), &o).is_some())
                && [cos, sin].iter().all(|t| flex_for((*t).clone(), &o).is_some())
        })
}

/// The text model's attention over a prompt on [`dpbf16::attention_gqa`] (when
/// [`text_attention_applies`]), rotary included: q and k are rotated while they are copied for
/// the kernel, rounding where transformers' bf16 ops round (`q cos`, `rotate_half(q) sin`, their
/// sum; `cos`/`sin` in bf16), instead of five tensor ops each. `q` is `[b, s, heads * hd]`, `k`
/// and `v` `[b, s, kv_heads * hd]` (token-major, as the projections make them), `cos`/`sin`
/// `[b, 1, s, hd]`, `mask` `[b, 1, s, s]` with true = blocked. Returns the output
/// `[b, s, heads * hd]` and the rotated `k` (for the KV cache).
///
/// # Panics
/// When [`text_attention_applies`] is false or the shapes disagree.
#[allow(clippy::too_many_arguments)]
pub fn text_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    mask: Tensor<4, burn::tensor::Bool>,
    heads: usize,
    kv_heads: usize,
) -> (Tensor<3>, Tensor<3>) {
    let [b, s, e] = q.dims();
    let [_, t, ekv] = k.dims();
    let hd = e / heads;
    assert_eq!(t, s, "text_attention: a prompt attends to itself (no cache before it)");
    assert_eq!(mask.dims(), [b, 1, s, t], "text_attention: mask shape");
    let origin = origin_of(&q).expect("text_attention_applies");
    let slice = |t: Tensor<3>| {
        let f = flex_for(t, &origin).expect("text_attention_applies");
        if f.is_contiguous() { f } else { f.to_contiguous() }
    };
    let (qf, kf, vf) = (slice(q), slice(k), slice(v));
    let table = |t: &Tensor<4>| rotary_table(flex_for(t.clone(), &origin).expect("text_attention_applies"));
    let shape = PromptShape { b, s, heads, kv_heads, hd };
    debug_assert_eq!(ekv, kv_heads * hd);
    let blocked = mask.into_data().try_into_vec::<bool>().expect("a bool mask");
    let done = attend_prompt(
        qf.as_slice::<bf16>().expect("bf16"),
        kf.as_slice::<bf16>().expect("bf16"),
        vf.as_slice::<bf16>().expect("bf16"),
        &table(cos),
        &table(sin),
        &blocked,
        shape,
    );
    let tensor = |data: Vec<bf16>, width: usize| {
        let t = FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(Shape::from([b, s, width])), DType::BF16);
        Tensor::from_dispatch(dispatch_as(t, &origin))
    };
    (tensor(done.out, e), tensor(done.k_rotated, ekv))
}

/// The sizes of one prompt's attention: `b` rows of `s` positions, `heads` query heads over
/// `kv_heads` key/value heads of `hd` values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PromptShape {
    pub b: usize,
    pub s: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub hd: usize,
}

/// What [`attend_prompt`] computed: the output `[b, s, heads * hd]` and the rotated q and k.
pub(crate) struct Attended {
    pub out: Vec<bf16>,
    pub q_rotated: Vec<bf16>,
    pub k_rotated: Vec<bf16>,
}

/// cos/sin `[b, 1, s, hd]` as the bf16 values transformers multiplies by, widened.
pub(crate) fn rotary_table(f: FlexTensor) -> Vec<f32> {
    let f = f.to_contiguous();
    match f.dtype() {
        DType::BF16 => f.as_slice::<bf16>().expect("bf16").iter().map(|&v| widen(v)).collect(),
        _ => f.as_slice::<f32>().expect("f32").iter().map(|&v| round_f32(v)).collect(),
    }
}

/// Rotates the token-major rows of `src` (`width` = heads * hd each, row `i` by the tables'
/// row `i`) into `dst`, rounding where transformers' bf16 ops round.
fn rotate_rows(src: &[bf16], dst: &mut [bf16], width: usize, hd: usize, ct: &[f32], st: &[f32]) {
    dst.par_chunks_mut(width).zip(src.par_chunks(width)).enumerate().for_each(|(row, (d, x))| {
        kernels::rotary_row_rounded(x, &ct[row * hd..][..hd], &st[row * hd..][..hd], d);
    });
}

/// [`text_attention`] on host slices: `q` `[b, s, heads * hd]`, `k`/`v` `[b, s, kv_heads * hd]`,
/// the rotary tables `[b, s, hd]`, `blocked` `[b, s, s]` (true = masked out).
pub(crate) fn attend_prompt(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    ct: &[f32],
    st: &[f32],
    blocked: &[bool],
    shape: PromptShape,
) -> Attended {
    let PromptShape { b, s, heads, kv_heads, hd } = shape;
    let (e, ekv, t) = (heads * hd, kv_heads * hd, s);
    let (mut qr, mut kr) = (vec![bf16::ZERO; b * s * e], vec![bf16::ZERO; b * s * ekv]);
    rotate_rows(q, &mut qr, e, hd, ct, st);
    rotate_rows(k, &mut kr, ekv, hd, ct, st);
    // The kernel pairs keys: an odd count gets one zero key that nobody may see.
    let tp = t.next_multiple_of(2);
    let dshape = dpbf16::AttentionShape { queries: s, keys: tp, heads, kv_heads, head_dim: hd };
    let mut out = vec![bf16::ZERO; b * s * e];
    let (mut kp, mut vp) = (vec![bf16::ZERO; tp * ekv], vec![bf16::ZERO; tp * ekv]);
    let mut allowed = vec![false; s * tp];
    for r in 0..b {
        kp[..t * ekv].copy_from_slice(&kr[r * t * ekv..][..t * ekv]);
        vp[..t * ekv].copy_from_slice(&v[r * t * ekv..][..t * ekv]);
        for i in 0..s {
            let src = &blocked[(r * s + i) * t..][..t];
            allowed[i * tp..][..t].iter_mut().zip(src).for_each(|(a, &m)| *a = !m);
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let (qrow, orow) = (&qr[r * s * e..][..s * e], &mut out[r * s * e..][..s * e]);
        dpbf16::attention_gqa(qrow, &kp, &vp, dshape, scale, Some(&allowed), orow);
    }
    Attended { out, q_rotated: qr, k_rotated: kr }
}

/// [`crate::nn::LayerNorm`] over the last dimension of a bf16 flex tensor outside autodiff, in
/// f32 and rounded once (as the tensor-op version and torch's CPU kernel do): one pass per row.
/// Gives `x` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<1>,
    bias: &Tensor<1>,
    eps: f64,
) -> Result<Tensor<D>, Tensor<D>> {
    let ones = vec![1f32; weight.dims()[0]];
    try_row_norm(x, &[weight, bias], |row, o, p| {
        // Sums in 32 lanes (a serial f32 sum does not vectorise).
        let d = row.len() as f32;
        let mean = kernels::dot(row, &ones) / d;
        row.iter_mut().for_each(|v| *v -= mean);
        let var = kernels::dot(row, row) / d;
        let inv = 1.0 / (var + eps as f32).sqrt();
        for (((o, &v), &w), &b) in o.iter_mut().zip(row.iter()).zip(&p[0]).zip(&p[1]) {
            *o = to_bf16(v * inv * w + b);
        }
    })
}

/// [`crate::nn::RmsNorm`] (Qwen2's: normalised in f32, rounded to bf16, then times the bf16
/// weight and rounded again, as transformers does) over the last dimension of a bf16 flex tensor
/// outside autodiff: one pass per row. Gives `x` back when this path does not apply.
#[allow(clippy::result_large_err)]
pub fn try_rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Result<Tensor<D>, Tensor<D>> {
    if weight.dtype() != DType::BF16 {
        return Err(x);
    }
    try_row_norm(x, &[weight], |row, o, p| {
        let ms = kernels::dot(row, row) / row.len() as f32;
        let inv = 1.0 / (ms + eps as f32).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row.iter()).zip(&p[0]) {
            *o = to_bf16(round_f32(v * inv) * w);
        }
    })
}

/// Runs `norm(row in f32, output row, params in f32)` over the rows of a bf16 flex tensor outside
/// autodiff (or untracked), each parameter `[d]` (bf16 or f32); `x` back when it does not apply.
#[allow(clippy::result_large_err)]
fn try_row_norm<const D: usize>(
    x: Tensor<D>,
    params: &[&Tensor<1>],
    norm: impl Fn(&mut [f32], &mut [bf16], &[Vec<f32>]) + Sync,
) -> Result<Tensor<D>, Tensor<D>> {
    let dims = x.dims();
    let d = dims[D - 1];
    if !enabled() || x.dtype() != DType::BF16 || params.iter().any(|p| p.dims() != [d]) || d == 0 {
        return Err(x);
    }
    let Some(origin) = origin_of(&x) else { return Err(x) };
    let Some(pf) = params.iter().map(|p| flex_for((*p).clone(), &origin)).collect::<Option<Vec<_>>>() else {
        return Err(x);
    };
    let (xf, origin) = match flex_value(x.into_dispatch()) {
        Ok(t) => t,
        Err(other) => return Err(Tensor::from_dispatch(other)),
    };
    let xc = if xf.is_contiguous() { xf } else { xf.to_contiguous() };
    let as_f32 = |t: FlexTensor| -> Vec<f32> {
        let t = t.to_contiguous();
        match t.dtype() {
            DType::BF16 => t.as_slice::<bf16>().expect("contiguous bf16").iter().map(|v| v.to_f32()).collect(),
            DType::F32 => t.as_slice::<f32>().expect("contiguous f32").to_vec(),
            _ => Vec::new(),
        }
    };
    let p: Vec<Vec<f32>> = pf.into_iter().map(as_f32).collect();
    if p.iter().any(|p| p.len() != d) {
        return Err(Tensor::from_dispatch(dispatch_as(xc, &origin)));
    }
    let src = xc.as_slice::<bf16>().expect("contiguous bf16");
    let mut out = vec![bf16::ZERO; src.len()];
    out.par_chunks_mut(d).zip(src.par_chunks(d)).for_each_init(
        || vec![0f32; d],
        |row, (o, x)| {
            x.iter().zip(row.iter_mut()).for_each(|(&x, r)| *r = widen(x));
            norm(row, o, &p);
        },
    );
    let t = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::from(dims)), DType::BF16);
    Ok(Tensor::from_dispatch(dispatch_as(t, &origin)))
}

/// `Linear::forward`, through [`try_matmul`] when it applies (bias added in f32 before rounding),
/// or, for a tracked input and a frozen bf16 weight (LoRA training's base layers), through our
/// own autodiff op on the same kernels (`cpu_bf16/frozen.rs`).
#[allow(clippy::result_large_err)]
pub fn linear<const D: usize>(l: &Linear, x: Tensor<D>) -> Tensor<D> {
    let w = l.weight.val();
    let b = l.bias.as_ref().map(|b| b.val());
    match try_matmul(x, &w, b.as_ref(), false).or_else(|x| try_frozen(x, &w, b.as_ref(), false)) {
        Ok(y) => y,
        Err(x) => l.forward(x),
    }
}

/// Marks `l`'s weight as frozen for good (the vision tower's): where it is bf16 on flex and the
/// CPU has AVX512-BF16, products with many rows then read it from panels packed at its first such
/// product and kept while the weight lives, instead of packing them on every call (`packed.rs`).
/// Does nothing elsewhere.
pub fn keep_packed(l: &Linear) {
    #[cfg(target_arch = "x86_64")]
    {
        let w = l.weight.val();
        if !enabled() || !dpbf16::available() || w.dtype() != DType::BF16 {
            return;
        }
        // A parameter is still tracked when its model is loaded (training freezes it later, on
        // the same storage), so its value is read past autodiff's graph node.
        let value = match flex(w.clone()) {
            Some(wf) => Some(wf),
            None => {
                use burn::backend::AutodiffBackend;
                lora::autodiff_parts(w).map(|(a, _)| burn_autodiff::Autodiff::<burn::backend::flex::Flex>::inner(a))
            }
        };
        let Some(wf) = value else { return };
        let k = wf.layout().shape()[0];
        if let Some((layout, n, off)) = weight_layout(&wf, k).filter(|&(layout, ..)| use_dp(usize::MAX, k, layout)) {
            packed::keep(&wf, (off, k, n, layout));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = l;
}

/// How many weights [`keep_packed`] holds, and how many of them have been packed so far.
pub fn kept_packed() -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    return packed::counts();
    #[cfg(not(target_arch = "x86_64"))]
    (0, 0)
}

/// A LoRA projection `x W (+ b) + s (drop(x) A) B` under autodiff with a frozen bf16 weight and
/// f32 adapters, as one op of our own (`cpu_bf16/lora.rs`) on x86-64; `x` back when that path
/// does not apply.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::result_large_err)]
pub fn try_lora_linear<const D: usize>(l: &Linear, x: Tensor<D>, adapter: &Adapter) -> Result<Tensor<D>, Tensor<D>> {
    if !enabled() {
        return Err(x);
    }
    let b = l.bias.as_ref().map(|b| b.val());
    lora::try_lora_product(x, &l.weight.val(), b.as_ref(), adapter)
}

/// Under autodiff with a frozen bf16 weight: [`frozen::try_product`] on x86-64.
#[allow(clippy::result_large_err)]
fn try_frozen<const D: usize>(
    x: Tensor<D>,
    w: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    f32_out: bool,
) -> Result<Tensor<D>, Tensor<D>> {
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        return frozen::try_product(x, w, bias, f32_out);
    }
    let _ = (w, bias, f32_out);
    Err(x)
}

/// `act(Linear::forward(x))`, with `act` fused into [`try_matmul_then`] as `epilogue` when that
/// path applies; `act` must compute the same function (it is burn's path otherwise).
pub fn linear_then<const D: usize>(
    l: &Linear,
    x: Tensor<D>,
    epilogue: Epilogue,
    act: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let w = l.weight.val();
    let b = l.bias.as_ref().map(|b| b.val());
    match try_matmul_then(x, &w, b.as_ref(), false, epilogue) {
        Ok(y) => y,
        Err(x) => match epilogue_in_place(l.forward(x), epilogue) {
            Ok(y) => y,
            Err(y) => act(y),
        },
    }
}

/// `epilogue` applied in place, in parallel, to an f32 flex product outside autodiff (or
/// untracked) that nothing else holds; `y` back otherwise. burn's f32 quick GELU (three tensor
/// ops, the sigmoid on one thread) took ~27 ms of a vision fc1 at 1,024 x 5,120.
#[allow(clippy::result_large_err)]
fn epilogue_in_place<const D: usize>(y: Tensor<D>, epilogue: Epilogue) -> Result<Tensor<D>, Tensor<D>> {
    if epilogue == Epilogue::None || y.dtype() != DType::F32 || !enabled() || origin_of(&y).is_none() {
        return Err(y);
    }
    let (mut t, origin) = match flex_value(y.into_dispatch()) {
        Ok(t) => t,
        Err(other) => return Err(Tensor::from_dispatch(other)),
    };
    if !t.is_contiguous() {
        t = t.to_contiguous();
    }
    match t.try_storage_mut::<f32>() {
        Some(v) => v.par_chunks_mut(4096).for_each(|c| epilogue.apply(c)),
        None => return Err(Tensor::from_dispatch(dispatch_as(t, &origin))),
    }
    Ok(Tensor::from_dispatch(dispatch_as(t, &origin)))
}

/// The LM head `x @ w` (`w` frozen): [`matmul_last`], except that under autodiff with f32 values
/// on flex the backward multiplies only the rows of the logits' gradient that are non-zero (the
/// positions the loss reads), where burn's computes `dy W^T` for every position.
pub fn head_last<const D: usize>(x: Tensor<D>, w: Tensor<2>, f32_out: bool) -> Tensor<D> {
    #[cfg(target_arch = "x86_64")]
    let x = if enabled() {
        match frozen::try_head_f32(x, &w) {
            Ok(y) => return y,
            Err(x) => x,
        }
    } else {
        x
    };
    matmul_last(x, w, f32_out)
}

/// [`crate::nn::matmul_last`], through [`try_matmul`] when it applies (see there for `f32_out`),
/// or the frozen-weight autodiff op as in [`linear`].
#[allow(clippy::result_large_err)]
pub fn matmul_last<const D: usize>(x: Tensor<D>, w: Tensor<2>, f32_out: bool) -> Tensor<D> {
    match try_matmul(x, &w, None, f32_out).or_else(|x| try_frozen(x, &w, None, f32_out)) {
        Ok(y) => y,
        Err(x) => crate::nn::matmul_last(x, w),
    }
}

/// `VLDAC_FLEX_BF16=0` leaves bf16 to burn's own matmul, `=widen` keeps this module but never
/// uses `vdpbf16ps` (both for A/B timing).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("VLDAC_FLEX_BF16").map_or(true, |v| v != "0"))
}

/// Whether the bf16 dot-product kernels take this product: the CPU has them and `k` is even.
fn use_dp(m: usize, k: usize, layout: WeightLayout) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let widen = *WIDEN.get_or_init(|| std::env::var("VLDAC_FLEX_BF16").is_ok_and(|v| v == "widen"));
        let _ = (m, layout);
        !widen && dpbf16::available() && k.is_multiple_of(2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k, layout);
        false
    }
}

/// The flex tensor inside `d` when it is one outside autodiff; `d` back otherwise.
#[allow(clippy::result_large_err)]
fn flex_of(d: DispatchTensor) -> Result<FlexTensor, DispatchTensor> {
    match d {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        } => Ok(t),
        other => Err(other),
    }
}

/// Where an input's flex value came from, so the result goes back in the same form.
#[derive(Clone, Debug)]
enum Origin {
    Plain,
    /// An autodiff tensor that is not tracked (the frozen vision tower and embeddings during
    /// LoRA training): no gradient can flow through it, so the inference kernels may compute it
    /// and the result is a fresh untracked leaf.
    Untracked(DispatchAutodiffContext),
}

/// The flex value of `d` outside autodiff or untracked inside it; `d` back otherwise.
#[allow(clippy::result_large_err)]
fn flex_value(d: DispatchTensor) -> Result<(FlexTensor, Origin), DispatchTensor> {
    use burn::backend::AutodiffBackend;
    match d {
        DispatchTensor { kind: DispatchTensorKind::Autodiff(inner), autodiff } => match *inner {
            DispatchTensorKind::Flex(BackendTensor::Autodiff(a)) if !a.is_tracked() => {
                Ok((burn_autodiff::Autodiff::<burn::backend::flex::Flex>::inner(a), Origin::Untracked(autodiff)))
            }
            other => Err(DispatchTensor { kind: DispatchTensorKind::Autodiff(Box::new(other)), autodiff }),
        },
        other => flex_of(other).map(|t| (t, Origin::Plain)),
    }
}

/// `t` as a tensor of `origin`'s kind.
fn dispatch_as(t: FlexTensor, origin: &Origin) -> DispatchTensor {
    use burn::backend::AutodiffBackend;
    match origin {
        Origin::Plain => flex_dispatch(t),
        Origin::Untracked(autodiff) => DispatchTensor {
            kind: DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(BackendTensor::Autodiff(
                burn_autodiff::Autodiff::<burn::backend::flex::Flex>::from_inner(t),
            )))),
            autodiff: *autodiff,
        },
    }
}

/// The flex value of a frozen tensor (plain, or autodiff and untracked).
fn flex<const D: usize>(t: Tensor<D>) -> Option<FlexTensor> {
    flex_value(t.into_dispatch()).ok().map(|(t, _)| t)
}

/// Whether `dev` is flex (plain or under autodiff), where the kernels here read a weight stored
/// `[in, out]` or `[out, in]` alike.
pub fn on_flex(dev: &burn::tensor::Device) -> bool {
    flex(Tensor::<1>::zeros([0], (dev, DType::F32))).is_some()
}

/// Whether `x` can be read by our kernels, and as which kind its result goes back.
fn origin_of<const D: usize>(x: &Tensor<D>) -> Option<Origin> {
    flex_value(x.clone().into_dispatch()).ok().map(|(_, o)| o)
}

/// The flex value of a weight used with an input of `origin`: plain with a plain input, plain or
/// untracked autodiff with an autodiff one (a plain input never gets an autodiff weight's
/// result back as plain).
fn flex_for<const D: usize>(t: Tensor<D>, origin: &Origin) -> Option<FlexTensor> {
    match origin {
        Origin::Plain => flex_of(t.into_dispatch()).ok(),
        Origin::Untracked(_) => flex(t),
    }
}

fn flex_dispatch(t: FlexTensor) -> DispatchTensor {
    DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: DispatchAutodiffContext::Disabled,
    }
}

/// The gradient in bf16 (rounded to nearest even from f32, as a cast's backward does).
pub(crate) fn as_bf16(g: FlexTensor) -> FlexTensor {
    if g.dtype() == DType::BF16 {
        return g;
    }
    let g = g.to_contiguous();
    let dims = g.layout().shape().to_vec();
    let src = match g.dtype() {
        DType::F32 => g.as_slice::<f32>().expect("contiguous f32"),
        other => unreachable!("gradient of a bf16 product in {other:?}"),
    };
    let mut v: Vec<bf16> = Vec::with_capacity(src.len());
    round_into(&mut v.spare_capacity_mut()[..src.len()], src);
    // SAFETY: `round_into` wrote all src.len() elements.
    unsafe { v.set_len(src.len()) };
    FlexTensor::new(
        burn::tensor::Bytes::from_elems(v),
        burn::backend::flex::Layout::contiguous(burn::tensor::Shape::from(dims)),
        DType::BF16,
    )
}

#[inline(always)]
fn widen(v: bf16) -> f32 {
    f32::from_bits(u32::from(v.to_bits()) << 16)
}

/// f32 -> bf16, round to nearest even ([`round_bits`]).
#[inline(always)]
fn to_bf16(f: f32) -> bf16 {
    bf16::from_bits(round_bits(f))
}

/// `f` rounded to the nearest bf16 value, kept in f32 (where torch's bf16 ops round between
/// steps that we fuse).
#[inline(always)]
fn round_f32(f: f32) -> f32 {
    widen(to_bf16(f))
}

/// `dst = bf16(src)`, in parallel (`dst` may be uninitialised; all of it is written).
fn round_into(dst: &mut [MaybeUninit<bf16>], src: &[f32]) {
    dst.par_chunks_mut(4096).zip(src.par_chunks(4096)).for_each(|(d, s)| kernels::round_row(s, d));
}

/// f32 -> bf16 bits, round to nearest even (NaN stays NaN), branch-free so it vectorises.
#[inline(always)]
fn round_bits(f: f32) -> u16 {
    let b = f.to_bits();
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    if f.is_nan() { ((b >> 16) as u16) | 0x40 } else { rounded }
}

/// `out[m, n] = x[m, k] @ W (+ bias)` in f32 (not rounded), `W` bf16 in `layout`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32_out(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[bf16]>,
    out: &mut [f32],
) {
    assert_eq!(x.len(), m * k);
    assert_eq!(w.len(), k * n);
    assert_eq!(out.len(), m * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in out.chunks_mut(n) {
            row.iter_mut().enumerate().for_each(|(j, v)| *v = bias.map_or(0.0, |b| widen(b[j])));
        }
        return;
    }
    match (m > SMALL_M, layout) {
        (true, _) => gemm_panels(x, m, k, w, n, layout, bias, SharedOut(out.as_mut_ptr())),
        (false, WeightLayout::InOut) if m <= SPLIT_K_M => stream_in_out(x, m, k, w, n, bias, out),
        (false, WeightLayout::InOut) => tiles_in_out(x, m, k, w, n, bias, SharedOut(out.as_mut_ptr())),
        (false, WeightLayout::OutIn) => stream_out_in(x, m, k, w, n, bias, SharedOut(out.as_mut_ptr())),
    }
}

/// An output buffer shared by tasks that write disjoint parts (columns, rows) of it.
pub(crate) struct SharedOut<T = f32>(pub(crate) *mut T);
impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedOut<T> {}
// SAFETY: every task writes its own part only; the buffer outlives the parallel loop.
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}
impl<T> SharedOut<T> {
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}

/// Called by the many-rows bf16 kernel once all of `k` is summed, for each row `i` of a task's
/// columns `j0 .. j0 + sums.len()` while they are still in cache: the caller's activation and
/// rounding to bf16, instead of later passes over the whole output.
pub(crate) type Finish<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// What [`Operands::sums`] left in its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sums {
    /// f32 sums.
    Plain,
    /// f32 holding bf16-rounded values.
    Rounded,
    /// Every row was handed to the `finish` callback.
    Finished,
}

/// The dot kernels' block for `m` activation rows: up to 8 rows by 2 weight rows, or up to 4 by
/// 4 when there are at most 4 (more weight rows in flight for the head at batch 1). 16 sums
/// either way: with 24 (6 x 4) LLVM kept some of them on the stack in the inner loop, and the
/// bf16 head at 8 rows ran 19-20 instead of 15 ms.
pub(crate) fn dot_block_shape(m: usize) -> (usize, usize) {
    if m <= 4 { (4, 4) } else { (8, 2) }
}

/// Few rows against a weight stored `[n, k]` (each output a dot product of two rows): tasks of
/// 64 weight rows over rayon's pool; inside a task, blocks of `jr` (or, at the end, single)
/// weight rows by at most `rows` activation rows. `block(i0, rows, j, jr)` computes outputs
/// `(i0.., j..j + jr)`, which no other task touches.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn dot_blocks(
    m: usize,
    n: usize,
    rows: usize,
    jr: usize,
    block: impl Fn(usize, usize, usize, usize) + Sync,
) {
    const TASK: usize = 64;
    (0..n.div_ceil(TASK)).into_par_iter().for_each(|t| {
        let j1 = ((t + 1) * TASK).min(n);
        let mut j = t * TASK;
        while j < j1 {
            let js = if j1 - j >= jr { jr } else { 1 };
            for i0 in (0..m).step_by(rows) {
                block(i0, rows.min(m - i0), j, js);
            }
            j += js;
        }
    });
}

/// Many rows: widen a `KB x NB` panel of W into a per-thread buffer and let gemm (one thread per
/// panel, panels spread over rayon's pool) accumulate into the output's columns.
#[allow(clippy::too_many_arguments)]
fn gemm_panels(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[bf16]>,
    dst: SharedOut,
) {
    let panels = n.div_ceil(NB);
    (0..panels).into_par_iter().for_each_init(
        || vec![0f32; NB * KB],
        |buf, p| {
            let j0 = p * NB;
            let nb = NB.min(n - j0);
            let out = dst.ptr();
            if let Some(b) = bias {
                for i in 0..m {
                    for jj in 0..nb {
                        // SAFETY: row i, column j0 + jj < n of the m x n output; this panel's columns.
                        unsafe { *out.add(i * n + j0 + jj) = widen(b[j0 + jj]) };
                    }
                }
            }
            for k0 in (0..k).step_by(KB) {
                let kb = KB.min(k - k0);
                let (rhs_cs, rhs_rs) = match layout {
                    WeightLayout::InOut => {
                        for kk in 0..kb {
                            let src = &w[(k0 + kk) * n + j0..][..nb];
                            widen_into(&mut buf[kk * nb..][..nb], src);
                        }
                        (1, nb as isize)
                    }
                    WeightLayout::OutIn => {
                        for jj in 0..nb {
                            let src = &w[(j0 + jj) * k + k0..][..kb];
                            widen_into(&mut buf[jj * kb..][..kb], src);
                        }
                        (kb as isize, 1)
                    }
                };
                // SAFETY: dst covers m x n with row stride n; the panel's columns j0..j0+nb are
                // only touched by this task; lhs is m x k (row stride k), rhs is the kb x nb panel.
                unsafe {
                    gemm::gemm(
                        m,
                        nb,
                        kb,
                        out.add(j0),
                        1,
                        n as isize,
                        bias.is_some() || k0 > 0,
                        x.as_ptr().add(k0),
                        1,
                        k as isize,
                        buf.as_ptr(),
                        rhs_cs,
                        rhs_rs,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        },
    );
}

fn widen_into(dst: &mut [f32], src: &[bf16]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = widen(s));
}

/// Few rows, W as `[k, n]`: each thread takes a contiguous block of W's rows and reads it
/// front to back (the prefetcher's best case; column tiles would jump a row per step), keeping
/// `m x n` f32 partial sums; the threads' partials are then added in a fixed order.
fn stream_in_out(x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, bias: Option<&[bf16]>, out: &mut [f32]) {
    for row in out.chunks_mut(n) {
        row.iter_mut().enumerate().for_each(|(j, v)| *v = bias.map_or(0.0, |b| widen(b[j])));
    }
    split_k(k, 64, m, n, out, |r, part| kernels::in_out_rows(x, m, k, r.start, r.end, w, n, part));
}

/// Few-row products over a weight stored `[k, n]`: splits the `units` of the summed dimension
/// (rows, or pairs of rows) into one contiguous range per thread (at least `min_block` units
/// each), so every thread reads its share of the weight front to back; `f(range, partial)` adds
/// that range's `m x n` products into its own zeroed partial sums, which are then added to `out`
/// in a fixed order.
pub(crate) fn split_k(
    units: usize,
    min_block: usize,
    m: usize,
    n: usize,
    out: &mut [f32],
    f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let tasks = rayon::current_num_threads().clamp(1, units.div_ceil(min_block).max(1));
    let per = units.div_ceil(tasks);
    let mut parts = vec![0f32; tasks * m * n];
    parts.par_chunks_mut(m * n).enumerate().for_each(|(t, part)| {
        f((t * per).min(units)..((t + 1) * per).min(units), part);
    });
    out.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for part in parts.chunks(m * n) {
            row.iter_mut().zip(&part[i * n..][..n]).for_each(|(v, p)| *v += p);
        }
    });
}

/// Blocks of weight rows the dot kernels prefetch ahead, into L2 (`_MM_HINT_T1`): at 8 rows the
/// bf16 head streamed at ~16 GB/s with just the next block fetched into L1, at 30-40 GB/s this
/// way (the L1 hint this far ahead was as slow as the next block).
const DOT_AHEAD: usize = 4;

/// Element offset, from the start of a dot kernel's block of `jr` weight rows (`k` long), of
/// line `q` of its step at `off` along `k` (`lanes` elements a line): J lines a step cover the
/// block [`DOT_AHEAD`] blocks on by the time this one ends. Only ever a prefetch address.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn dot_prefetch_index(jr: usize, k: usize, off: usize, q: usize, lanes: usize) -> usize {
    DOT_AHEAD * jr * k + off * jr + q * lanes
}

/// Element index of a streamed weight's prefetch target: column `col` of `row` while it is inside
/// the row (`n` wide), else the part past the end continues on `next_row` (the same row of the
/// next streamed block). Only ever used as a prefetch address, which may lie past the weight.
pub(crate) fn prefetch_index(row: usize, next_row: usize, col: usize, n: usize) -> usize {
    if col < n { row * n + col } else { next_row * n + col - n }
}

/// Output columns per task: enough tasks to balance the pool, each tile at most `NT_MAX` wide and
/// a multiple of 16 lanes.
fn tile_width(n: usize) -> usize {
    let tasks = rayon::current_num_threads().max(1) * 4;
    n.div_ceil(tasks).next_multiple_of(16).clamp(16, NT_MAX)
}

/// A few more rows, W as `[k, n]`: each task owns a column tile, walks W's rows once and keeps the
/// `m x tile` f32 sums in L1.
fn tiles_in_out(x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, bias: Option<&[bf16]>, dst: SharedOut) {
    let nt = tile_width(n);
    (0..n.div_ceil(nt)).into_par_iter().for_each(|t| {
        let j0 = t * nt;
        let width = nt.min(n - j0);
        let mut acc = [0f32; SMALL_M * NT_MAX];
        kernels::in_out_tile(x, m, k, w, n, j0, width, &mut acc);
        let out = dst.ptr();
        for i in 0..m {
            for jj in 0..width {
                let v = acc[i * NT_MAX + jj] + bias.map_or(0.0, |b| widen(b[j0 + jj]));
                // SAFETY: row i < m, column j0 + jj < n; this task's columns only.
                unsafe { *out.add(i * n + j0 + jj) = v };
            }
        }
    });
}

/// Few rows, W stored `[n, k]` (transposed use): each output is a dot product of an x row with a
/// contiguous W row, so the tied LM head is read once, in order, without a transposed copy.
fn stream_out_in(x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, bias: Option<&[bf16]>, dst: SharedOut) {
    const ROWS: usize = 64;
    (0..n.div_ceil(ROWS)).into_par_iter().for_each_init(
        || vec![0f32; k],
        |buf, t| {
            let out = dst.ptr();
            for j in t * ROWS..((t + 1) * ROWS).min(n) {
                widen_into(buf, &w[j * k..][..k]);
                let b = bias.map_or(0.0, |b| widen(b[j]));
                for i in 0..m {
                    let v = kernels::dot(buf, &x[i * k..][..k]) + b;
                    // SAFETY: row i < m, column j < n; this task's columns only.
                    unsafe { *out.add(i * n + j) = v };
                }
            }
        },
    );
}

/// The inner loops, compiled for AVX-512 and AVX2+FMA (picked at run time) with a portable
/// fallback; the bodies are plain loops over fixed-width lanes that LLVM vectorises.
mod kernels {
    use super::{NT_MAX, round_f32, to_bf16, widen};
    use burn::tensor::bf16;
    use std::mem::MaybeUninit;

    #[inline(always)]
    fn fma<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FUSED { a.mul_add(b, c) } else { a * b + c }
    }

    /// `acc[i * n + j] += sum_{k0 <= kk < k1} x[i, kk] W[kk, j]`: four W rows at a time, swept
    /// left to right in `NT_MAX`-wide chunks widened once and used for all `m` rows, so each
    /// accumulator is loaded and stored once per four products.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn in_out_rows_body<const FUSED: bool>(
        x: &[f32],
        m: usize,
        k: usize,
        k0: usize,
        k1: usize,
        w: &[bf16],
        n: usize,
        acc: &mut [f32],
    ) {
        let mut wf = [[0f32; NT_MAX]; 4];
        let mut kk = k0;
        while kk < k1 {
            let r = (k1 - kk).min(4);
            let mut j0 = 0;
            while j0 < n {
                let width = NT_MAX.min(n - j0);
                for (q, row) in wf.iter_mut().enumerate() {
                    if q < r {
                        let src = &w[(kk + q) * n + j0..][..width];
                        row[..width].iter_mut().zip(src).for_each(|(d, &s)| *d = widen(s));
                    } else {
                        // Padding rows: 0 x 0, never 0 x a real (maybe infinite) input.
                        row[..width].fill(0.0);
                    }
                }
                let (w0, w1, w2, w3) = (&wf[0][..width], &wf[1][..width], &wf[2][..width], &wf[3][..width]);
                for i in 0..m {
                    let xs: [f32; 4] = std::array::from_fn(|q| if q < r { x[i * k + kk + q] } else { 0.0 });
                    let a = &mut acc[i * n + j0..][..width];
                    for jj in 0..width {
                        let mut v = a[jj];
                        v = fma::<FUSED>(xs[0], w0[jj], v);
                        v = fma::<FUSED>(xs[1], w1[jj], v);
                        v = fma::<FUSED>(xs[2], w2[jj], v);
                        v = fma::<FUSED>(xs[3], w3[jj], v);
                        a[jj] = v;
                    }
                }
                j0 += width;
            }
            kk += r;
        }
    }

    /// `acc[i * NT_MAX + jj] = sum_k x[i, k] W[k, j0 + jj]` for `jj < width`, four W rows at a
    /// time so each accumulator is loaded and stored once per four products.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn in_out_tile_body<const FUSED: bool>(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[bf16],
        n: usize,
        j0: usize,
        width: usize,
        acc: &mut [f32],
    ) {
        let mut wf = [[0f32; NT_MAX]; 4];
        let mut k0 = 0;
        while k0 + 4 <= k {
            for (r, row) in wf.iter_mut().enumerate() {
                let src = &w[(k0 + r) * n + j0..][..width];
                row[..width].iter_mut().zip(src).for_each(|(d, &s)| *d = widen(s));
            }
            for i in 0..m {
                let xs = &x[i * k + k0..][..4];
                let a = &mut acc[i * NT_MAX..][..width];
                let (w0, w1, w2, w3) = (&wf[0][..width], &wf[1][..width], &wf[2][..width], &wf[3][..width]);
                for jj in 0..width {
                    let mut v = a[jj];
                    v = fma::<FUSED>(xs[0], w0[jj], v);
                    v = fma::<FUSED>(xs[1], w1[jj], v);
                    v = fma::<FUSED>(xs[2], w2[jj], v);
                    v = fma::<FUSED>(xs[3], w3[jj], v);
                    a[jj] = v;
                }
            }
            k0 += 4;
        }
        for kk in k0..k {
            let src = &w[kk * n + j0..][..width];
            wf[0][..width].iter_mut().zip(src).for_each(|(d, &s)| *d = widen(s));
            for i in 0..m {
                let xi = x[i * k + kk];
                let a = &mut acc[i * NT_MAX..][..width];
                a.iter_mut().zip(&wf[0][..width]).for_each(|(v, &wv)| *v = fma::<FUSED>(xi, wv, *v));
            }
        }
    }

    /// Dot product with 32 independent lanes (vectorisable; the order differs from a serial sum
    /// only by f32 rounding).
    #[inline(always)]
    fn dot_body<const FUSED: bool>(a: &[f32], b: &[f32]) -> f32 {
        const L: usize = 32;
        let mut acc = [0f32; L];
        let (ac, at) = a.split_at(a.len() / L * L);
        let (bc, bt) = b.split_at(ac.len());
        for (ca, cb) in ac.chunks_exact(L).zip(bc.chunks_exact(L)) {
            for l in 0..L {
                acc[l] = fma::<FUSED>(ca[l], cb[l], acc[l]);
            }
        }
        for (l, (&p, &q)) in at.iter().zip(bt).enumerate() {
            acc[l] = fma::<FUSED>(p, q, acc[l]);
        }
        let mut width = L;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                acc[l] += acc[l + width];
            }
        }
        acc[0]
    }

    /// `out[j] = x . rows[j * n ..][..n]` for every `j < out.len()` (`n = x.len()`): four rows per
    /// pass over `x`, 16 lanes each, so `x` is read once per four dot products.
    #[inline(always)]
    fn dots_body<const FUSED: bool>(x: &[f32], rows: &[f32], out: &mut [f32]) {
        const L: usize = 16;
        let (n, r) = (x.len(), out.len());
        let body = n / L * L;
        let mut j = 0;
        while j < r {
            // Rows past the end repeat the last one; their sums are dropped.
            let idx: [usize; 4] = std::array::from_fn(|t| (j + t).min(r - 1) * n);
            let mut acc = [[0f32; L]; 4];
            let mut c = 0;
            while c < body {
                let xs = &x[c..c + L];
                for (t, a) in acc.iter_mut().enumerate() {
                    let w = &rows[idx[t] + c..][..L];
                    for l in 0..L {
                        a[l] = fma::<FUSED>(xs[l], w[l], a[l]);
                    }
                }
                c += L;
            }
            for (t, a) in acc.iter_mut().enumerate() {
                for (l, q) in (body..n).enumerate() {
                    a[l] = fma::<FUSED>(x[q], rows[idx[t] + q], a[l]);
                }
                if j + t < r {
                    let mut width = L;
                    while width > 1 {
                        width /= 2;
                        for l in 0..width {
                            a[l] += a[l + width];
                        }
                    }
                    out[j + t] = a[0];
                }
            }
            j += 4;
        }
    }

    /// `acc[c] += sum_j coef[j] rows[j * n + c]` for `n = acc.len()`: a few f32 rows mixed into
    /// an accumulator, 64 columns at a time so the partial sums stay in registers.
    #[inline(always)]
    fn mix_rows_body<const FUSED: bool>(coef: &[f32], rows: &[f32], acc: &mut [f32]) {
        const C: usize = 64;
        let n = acc.len();
        let mut c0 = 0;
        while c0 < n {
            let w = C.min(n - c0);
            let mut t = [0f32; C];
            t[..w].copy_from_slice(&acc[c0..c0 + w]);
            for (j, &cj) in coef.iter().enumerate() {
                let src = &rows[j * n + c0..][..w];
                for q in 0..w {
                    t[q] = fma::<FUSED>(cj, src[q], t[q]);
                }
            }
            acc[c0..c0 + w].copy_from_slice(&t[..w]);
            c0 += w;
        }
    }

    /// `acc[j * w + c] += coef[j] v[c]` for `w = v.len()`: a rank-one update of `[coef.len(), w]`.
    #[inline(always)]
    fn outer_add_body<const FUSED: bool>(coef: &[f32], v: &[f32], acc: &mut [f32]) {
        let w = v.len();
        for (j, &cj) in coef.iter().enumerate() {
            let a = &mut acc[j * w..][..w];
            for q in 0..w {
                a[q] = fma::<FUSED>(cj, v[q], a[q]);
            }
        }
    }

    /// `out = bf16(x cos + rotate_half(x) sin)` for every head of `hd = cos.len()` values in a
    /// row (f32 products and sum, as transformers' vision rotary on floats): the two halves as
    /// two straight loops, so they vectorise.
    #[inline(always)]
    fn rotary_row_body<const FUSED: bool>(x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]) {
        let half = cos.len() / 2;
        for (xh, oh) in x.chunks_exact(2 * half).zip(out.chunks_exact_mut(2 * half)) {
            let (x0, x1) = xh.split_at(half);
            let (o0, o1) = oh.split_at_mut(half);
            for d in 0..half {
                let (a, b) = (widen(x0[d]), widen(x1[d]));
                o0[d] = to_bf16(a * cos[d] - b * sin[d]);
                o1[d] = to_bf16(b * cos[half + d] + a * sin[half + d]);
            }
        }
    }

    /// [`rotary_row_body`] rounding each product and the sum to bf16, as transformers' text
    /// rotary does on bf16 tensors (`q cos`, `rotate_half(q) sin`, their sum).
    #[inline(always)]
    fn rotary_row_rounded_body<const FUSED: bool>(x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]) {
        let half = cos.len() / 2;
        for (xh, oh) in x.chunks_exact(2 * half).zip(out.chunks_exact_mut(2 * half)) {
            let (x0, x1) = xh.split_at(half);
            let (o0, o1) = oh.split_at_mut(half);
            for d in 0..half {
                let (a, b) = (widen(x0[d]), widen(x1[d]));
                o0[d] = to_bf16(round_f32(a * cos[d]) + round_f32(-b * sin[d]));
                o1[d] = to_bf16(round_f32(b * cos[half + d]) + round_f32(a * sin[half + d]));
            }
        }
    }

    /// `dst[i] = bf16(src[i])` (round to nearest even; `dst` may be uninitialised).
    #[inline(always)]
    fn round_row_body<const FUSED: bool>(src: &[f32], dst: &mut [MaybeUninit<bf16>]) {
        assert_eq!(src.len(), dst.len());
        dst.iter_mut().zip(src).for_each(|(d, &s)| {
            d.write(to_bf16(s));
        });
    }

    /// `dst[i] = round_f32(src[i])`: f32 values rounded to the nearest bf16 value.
    #[inline(always)]
    fn round_f32_row_body<const FUSED: bool>(src: &[f32], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = round_f32(s));
    }

    /// `dst[i] = bf16(round(a[i]) * round(b[i]))`: the product of two bf16-rounded values, as
    /// torch's bf16 `mul` gives it.
    #[inline(always)]
    fn mul_round_row_body<const FUSED: bool>(a: &[f32], b: &[f32], dst: &mut [MaybeUninit<bf16>]) {
        assert!(a.len() == dst.len() && b.len() == dst.len());
        for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
            d.write(to_bf16(round_f32(a) * round_f32(b)));
        }
    }

    macro_rules! dispatch {
        ($name:ident, $body:ident, ($($arg:ident : $ty:ty),*) $(-> $ret:ty)?) => {
            #[allow(clippy::too_many_arguments)]
            pub(super) fn $name($($arg: $ty),*) $(-> $ret)? {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { $body::<true>($($arg),*) }
                    #[target_feature(enable = "avx2,fma")]
                    #[allow(clippy::too_many_arguments)]
                    unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { $body::<true>($($arg),*) }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has the features the function was compiled for.
                        return unsafe { avx512($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                        // SAFETY: as above.
                        return unsafe { avx2($($arg),*) };
                    }
                }
                $body::<false>($($arg),*)
            }
        };
    }

    dispatch!(in_out_rows, in_out_rows_body, (x: &[f32], m: usize, k: usize, k0: usize, k1: usize, w: &[bf16], n: usize, acc: &mut [f32]));
    dispatch!(in_out_tile, in_out_tile_body, (x: &[f32], m: usize, k: usize, w: &[bf16], n: usize, j0: usize, width: usize, acc: &mut [f32]));
    dispatch!(dot, dot_body, (a: &[f32], b: &[f32]) -> f32);
    dispatch!(dots, dots_body, (x: &[f32], rows: &[f32], out: &mut [f32]));
    dispatch!(mix_rows, mix_rows_body, (coef: &[f32], rows: &[f32], acc: &mut [f32]));
    dispatch!(outer_add, outer_add_body, (coef: &[f32], v: &[f32], acc: &mut [f32]));
    dispatch!(rotary_row, rotary_row_body, (x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]));
    dispatch!(rotary_row_rounded, rotary_row_rounded_body, (x: &[bf16], cos: &[f32], sin: &[f32], out: &mut [bf16]));
    dispatch!(round_row, round_row_body, (src: &[f32], dst: &mut [MaybeUninit<bf16>]));
    dispatch!(round_f32_row, round_f32_row_body, (src: &[f32], dst: &mut [f32]));
    dispatch!(mul_round_row, mul_round_row_body, (a: &[f32], b: &[f32], dst: &mut [MaybeUninit<bf16>]));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Uniform values in [-1, 1) from a xorshift32 stream: the kernels' tests' inputs.
    pub(crate) fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
        }
    }

    /// `x @ W (+ bias)` in f64, element getters so every kernel's test can use it (`x[i * k + kk]`,
    /// `W` at `kk * n + j` (InOut) or `j * k + kk` (OutIn)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reference(
        m: usize,
        k: usize,
        n: usize,
        layout: WeightLayout,
        x: impl Fn(usize) -> f64,
        w: impl Fn(usize) -> f64,
        bias: Option<&dyn Fn(usize) -> f64>,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b(j));
                for kk in 0..k {
                    let at = match layout {
                        WeightLayout::InOut => kk * n + j,
                        WeightLayout::OutIn => j * k + kk,
                    };
                    s += x(i * k + kk) * w(at);
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    #[test]
    fn kernels_match_f64_reference() {
        let mut rnd = uniform(0x9E37_79B9);
        for &(m, k, n) in &[(1, 37, 53), (3, 129, 300), (8, 64, 17), (16, 5, 1000), (17, 600, 301), (40, 1100, 520)] {
            for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
                for with_bias in [false, true] {
                    let x: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                    let w: Vec<bf16> = (0..k * n).map(|_| bf16::from_f32(rnd())).collect();
                    let b: Vec<bf16> = (0..n).map(|_| bf16::from_f32(rnd())).collect();
                    let bias = with_bias.then_some(&b[..]);
                    let mut out = vec![f32::NAN; m * n];
                    matmul_f32_out(&x, m, k, &w, n, layout, bias, &mut out);
                    let bias_f = |j: usize| b[j].to_f64();
                    let want = reference(
                        m,
                        k,
                        n,
                        layout,
                        |i| f64::from(x[i]),
                        |i| w[i].to_f64(),
                        with_bias.then_some(&bias_f as &dyn Fn(usize) -> f64),
                    );
                    for (got, want) in out.iter().zip(&want) {
                        let tol = 1e-5 * (k as f64).sqrt() + 1e-6 * want.abs();
                        assert!((f64::from(*got) - want).abs() <= tol, "{m}x{k}x{n} {layout:?}: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn rounding_rows_match_half_bit_for_bit() {
        // Ties to even both ways, values one ulp either side of a tie, subnormals, infinities,
        // NaNs with payloads (quietened), then random values; lengths around the 16 lanes.
        let mut special: Vec<f32> = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE];
        for bits in [0x3F80_8000u32, 0x3F81_8000, 0xBF80_8000, 0x3F80_7FFF, 0x3F80_8001, 0x0000_8000, 0x0001_8000] {
            special.push(f32::from_bits(bits));
        }
        special.push(f32::from_bits(0x7F80_0001));
        special.push(f32::from_bits(0xFFC1_2345));
        special.push(f32::MAX);
        let mut rnd = uniform(0x1234_5678);
        for len in [0, 1, 15, 16, 17, 33, 100] {
            let src: Vec<f32> = special.iter().copied().chain((0..len).map(|_| rnd() * 1e3)).collect();
            let other: Vec<f32> = (0..src.len()).map(|_| rnd() * 7.0).collect();
            let mut got = vec![MaybeUninit::new(bf16::from_bits(0xDEAD)); src.len()];
            kernels::round_row(&src, &mut got);
            let mut got_f32 = vec![f32::NAN; src.len()];
            kernels::round_f32_row(&src, &mut got_f32);
            let mut got_mul = vec![MaybeUninit::new(bf16::ZERO); src.len()];
            kernels::mul_round_row(&src, &other, &mut got_mul);
            for i in 0..src.len() {
                // SAFETY: every element was initialised above.
                let (r, m) = unsafe { (got[i].assume_init(), got_mul[i].assume_init()) };
                let want = bf16::from_f32(src[i]);
                assert_eq!(r.to_bits(), want.to_bits(), "round {:#010x}", src[i].to_bits());
                assert_eq!(got_f32[i].to_bits(), want.to_f32().to_bits(), "round_f32 {:#010x}", src[i].to_bits());
                let want_mul = bf16::from_f32(want.to_f32() * bf16::from_f32(other[i]).to_f32());
                assert_eq!(m.to_bits(), want_mul.to_bits(), "mul {} x {}", src[i], other[i]);
            }
        }
    }

    #[test]
    fn rank_r_kernels_match_f64_reference() {
        let mut rnd = uniform(0x2545_F491);
        // Row counts around the four-row passes, lengths around the 16 lanes and 64-wide chunks.
        for &r in &[1, 3, 4, 5, 8, 13] {
            for &n in &[1, 15, 16, 37, 130, 1000] {
                let x: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let rows: Vec<f32> = (0..r * n).map(|_| rnd()).collect();
                let tol = 1e-5 * (n as f64).sqrt();
                let mut out = vec![f32::NAN; r];
                kernels::dots(&x, &rows, &mut out);
                for (j, &got) in out.iter().enumerate() {
                    let want: f64 = (0..n).map(|q| f64::from(x[q]) * f64::from(rows[j * n + q])).sum();
                    assert!((f64::from(got) - want).abs() <= tol, "dots r {r} n {n} row {j}: {got} vs {want}");
                }
                let coef: Vec<f32> = (0..r).map(|_| rnd()).collect();
                let start: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let mut acc = start.clone();
                kernels::mix_rows(&coef, &rows, &mut acc);
                for (c, &got) in acc.iter().enumerate() {
                    let want = f64::from(start[c])
                        + (0..r).map(|j| f64::from(coef[j]) * f64::from(rows[j * n + c])).sum::<f64>();
                    assert!((f64::from(got) - want).abs() <= 1e-5, "mix_rows r {r} n {n} col {c}: {got} vs {want}");
                }
                let mut outer = rows.clone();
                kernels::outer_add(&coef, &x, &mut outer);
                for (i, &got) in outer.iter().enumerate() {
                    let want = f64::from(rows[i]) + f64::from(coef[i / n]) * f64::from(x[i % n]);
                    assert!((f64::from(got) - want).abs() <= 1e-6, "outer_add r {r} n {n} at {i}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn rounding_is_nearest_even() {
        // Ties (1 + 2^-8 rounds down to even, 1 + 3 * 2^-8 up), overflow to infinity, subnormals.
        let ties = [f32::from_bits(0x3F80_8000), f32::from_bits(0x3F81_8000)];
        for v in [0.0f32, -0.0, 1.0, ties[0], ties[1], -std::f32::consts::PI, 65504.0, f32::INFINITY, f32::MAX, 1e-40] {
            assert_eq!(round_bits(v), bf16::from_f32(v).to_bits(), "{v}");
        }
        assert!(bf16::from_bits(round_bits(f32::NAN)).is_nan());
    }
}

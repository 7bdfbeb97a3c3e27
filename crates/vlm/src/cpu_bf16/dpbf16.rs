//! bf16 x bf16 products with AVX512-BF16's `vdpbf16ps`, which multiplies pairs of bf16 values
//! and adds both products to an f32 lane: twice the multiply-adds per instruction of an f32 FMA,
//! half the bytes per operand, and no widening pass. torch's CPU bf16 matmul uses the same
//! instruction (through oneDNN), which is why it was 2-4x ahead of our widening kernels.
//!
//! Both operands are read as 32-bit *pairs* along the summed dimension `k`: the activations are
//! row-major `[m, k]`, so a pair is two neighbours, broadcast to every lane; the weight is packed
//! panel by panel into `[pair][64 columns]` words (pairs interleaved) that feed 4 registers of 16
//! lanes. The microkernel keeps a `6 x 64` block of f32 sums in 24 registers. A weight stored
//! `[n, k]` (the tied LM head) with few rows is instead dotted row against row, unpacked.
//!
//! `k` must be even (every Qwen2-VL width is); the caller takes the widening path otherwise.
//! Denormal inputs and outputs are flushed to zero by the instruction, as in torch.

use super::{Finish, SharedOut as Shared, Sums, WeightLayout};
use burn::tensor::bf16;
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Rows of the microkernel's block (6 x 4 accumulators + 4 weight registers + 1 broadcast).
const MR: usize = 6;
/// Columns of the microkernel's block: 4 registers of 16 f32 lanes.
const NR: usize = 64;
/// Pairs of `k` per packed panel: a 64-column slice is 128 x 64 x 4 B = 32 KiB, in L1.
const KP: usize = 128;
/// Rows per pass over a packed panel, so the activation block (`MC x 2 KP` bf16 = 256 KiB) stays
/// in L2 while the panel is reused.
const MC: usize = 512;
/// Bytes of a [`panels`] task's f32 outputs that should stay in L2 between blocks of `k`.
const C_BYTES: usize = 512 << 10;
/// Up to this many rows a `[n, k]` weight is dotted in place rather than transposed into panels
/// (and a `[k, n]` one streamed rather than packed).
const DOT_M: usize = 16;

/// Whether this CPU has the instructions (AVX512-BF16, the BW loads/masks and VL's 256-bit masked
/// stores; every CPU with AVX512-BF16 so far has all three).
pub fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512bf16")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512f")
    })
}

/// `out[m, n] = x[m, k] @ W (+ bias)`, f32 sums (not rounded); `x` and `W` bf16, `k` even.
///
/// # Panics
/// If [`available`] is false, `k` is odd or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[bf16],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[bf16]>,
    out: &mut [f32],
) {
    matmul_into(x, m, k, w, n, layout, bias, out, false, None, None);
}

/// [`matmul`], where the kernel allows finishing the sums while they are still in cache:
/// - many rows, W stored `[k, n]`, `finish` given: each task hands its finished columns to
///   `finish` (the caller's activation and rounding) instead of leaving them in `out`;
/// - many rows, W stored `[n, k]` (the tied head over a prompt), no bias, `round`: the sums are
///   rounded to bf16 values inside each task instead of in a later pass over the whole output.
///
/// Returns which of the two happened, if either. `packed` is `w` as [`pack_all`] gives it; many
/// rows then read it instead of packing panels as they go.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_into(
    x: &[bf16],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[bf16]>,
    out: &mut [f32],
    round: bool,
    finish: Option<Finish>,
    packed: Option<&[u32]>,
) -> Sums {
    assert!(available(), "dpbf16::matmul needs AVX512-BF16");
    assert!(k.is_multiple_of(2), "dpbf16::matmul needs an even k, got {k}");
    assert_eq!(x.len(), m * k);
    assert_eq!(w.len(), k * n);
    assert_eq!(out.len(), m * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    assert!(packed.is_none_or(|p| p.len() == packed_len(k, n)), "packed panels for {k} x {n}");
    if m == 0 || n == 0 {
        return Sums::Plain;
    }
    let add_bias = |out: &mut [f32], fill: bool| {
        out.par_chunks_mut(n).for_each(|row| match bias {
            Some(b) if fill => row.iter_mut().zip(b).for_each(|(o, &b)| *o = b.to_f32()),
            Some(b) => row.iter_mut().zip(b).for_each(|(o, &b)| *o += b.to_f32()),
            None if fill => row.fill(0.0),
            None => {}
        })
    };
    if k > 0 && layout == WeightLayout::OutIn && m > DOT_M && finish.is_none() && packed.is_none() {
        // Stores every sum (all of `k` at once), so `out` needs no zeroing first: for the tied
        // head over a prompt that is a pass over 200 MB saved.
        let round = round && bias.is_none();
        transposed(x, m, k, w, n, Shared(out.as_mut_ptr()), round);
        add_bias(out, false);
        return if round { Sums::Rounded } else { Sums::Plain };
    }
    if k > 0 && m > DOT_M {
        // A projection loaded as a view of the checkpoint's `[n, k]` matrix packs from it; its
        // sums are finished in cache like those of a `[k, n]` one.
        panels(x, m, k, w, n, layout, bias, Shared(out.as_mut_ptr()), finish, packed);
        return if finish.is_some() { Sums::Finished } else { Sums::Plain };
    }
    add_bias(out, true);
    if k == 0 {
        return Sums::Plain;
    }
    let dst = Shared(out.as_mut_ptr());
    match layout {
        WeightLayout::OutIn if m <= DOT_M => dots_out_in(x, m, k, w, n, dst),
        WeightLayout::InOut if m <= DOT_M => stream_in_out(x, m, k, w, n, out),
        _ => unreachable!("taken above"),
    }
    Sums::Plain
}

/// Few rows, W stored `[k, n]` (decode): each thread reads a contiguous block of W's row pairs
/// front to back ([`super::split_k`]), `SP` pairs at a time (in L2), interleaving each pair of
/// rows in registers instead of packing.
fn stream_in_out(x: &[bf16], m: usize, k: usize, w: &[bf16], n: usize, out: &mut [f32]) {
    super::split_k(k / 2, SP, m, n, out, |r, part| {
        for pb in r.clone().step_by(SP) {
            let pe = (pb + SP).min(r.end);
            for j in (0..n).step_by(32) {
                for r0 in (0..m).step_by(8) {
                    // SAFETY: `available()` was asserted by `matmul`; rows 2 pb .. 2 pe <= k of
                    // W, columns j..j + 32 masked to < n, x rows r0.. < m, and this task's own
                    // partial sums.
                    unsafe {
                        let xs = x.as_ptr().add(r0 * k);
                        let c = part.as_mut_ptr().add(r0 * n + j);
                        stream_rows(8.min(m - r0), pb, pe, xs, k, w.as_ptr(), n, j, c);
                    }
                }
            }
        }
    });
}

/// W row pairs per streamed block (`2 SP` rows of up to 8,960 bf16: 0.56 MiB, two blocks in L2).
const SP: usize = 16;

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn stream_rows(
    rows: usize,
    pb: usize,
    pe: usize,
    x: *const bf16,
    k: usize,
    w: *const bf16,
    n: usize,
    j: usize,
    c: *mut f32,
) {
    // SAFETY (all arms): forwarded from the caller.
    unsafe {
        match rows {
            8 => stream_micro::<8>(pb, pe, x, k, w, n, j, c),
            7 => stream_micro::<7>(pb, pe, x, k, w, n, j, c),
            6 => stream_micro::<6>(pb, pe, x, k, w, n, j, c),
            5 => stream_micro::<5>(pb, pe, x, k, w, n, j, c),
            4 => stream_micro::<4>(pb, pe, x, k, w, n, j, c),
            3 => stream_micro::<3>(pb, pe, x, k, w, n, j, c),
            2 => stream_micro::<2>(pb, pe, x, k, w, n, j, c),
            1 => stream_micro::<1>(pb, pe, x, k, w, n, j, c),
            _ => unreachable!("stream rows {rows} > 8"),
        }
    }
}

/// `c[r, 0..32] += sum_{pb <= p < pe} x[r, 2p..2p+2] . W[2p..2p+2, j..j+32]` for R rows; the two W
/// rows of a pair are interleaved into (even, odd) words by two `vpermt2w`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn stream_micro<const R: usize>(
    pb: usize,
    pe: usize,
    x: *const bf16,
    k: usize,
    w: *const bf16,
    n: usize,
    j: usize,
    c: *mut f32,
) {
    let cols = 32.min(n - j);
    let mask: __mmask32 = if cols == 32 { u32::MAX } else { (1u32 << cols) - 1 };
    let (lo_idx, hi_idx) = pair_interleave();
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY: W rows 2 pb .. 2 pe and x's R rows are in bounds (caller); loads past `cols` are
    // masked off; c covers R rows of `cols` f32 at stride n.
    unsafe {
        for p in pb..pe {
            // 1 KiB further along both rows of the pair (past their end: the next block's
            // pair), so that each of the block's `2 SP` interleaved row streams has its lines in
            // flight; the hardware prefetcher does not keep up with this many. Into L2, as the
            // dot kernels (see [`super::dot_prefetch_index`]).
            let ahead = super::prefetch_index(2 * p, 2 * (p + SP), j + 512, n);
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead).cast::<i8>());
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead + n).cast::<i8>());
            let a = _mm512_maskz_loadu_epi16(mask, w.add(2 * p * n + j).cast::<i16>());
            let b = _mm512_maskz_loadu_epi16(mask, w.add((2 * p + 1) * n + j).cast::<i16>());
            let lo = as_bh(_mm512_permutex2var_epi16(a, lo_idx, b));
            let hi = as_bh(_mm512_permutex2var_epi16(a, hi_idx, b));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = as_bh(_mm512_set1_epi32(x.add(r * k + 2 * p).cast::<u32>().read_unaligned() as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], xv, lo);
                acc[1] = _mm512_dpbf16_ps(acc[1], xv, hi);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, &v) in acc.iter().enumerate() {
                let lanes = cols.saturating_sub(q * 16).min(16);
                if lanes == 0 {
                    break;
                }
                let m16: __mmask16 = if lanes == 16 { 0xFFFF } else { (1u16 << lanes) - 1 };
                let cp = c.add(r * n + q * 16);
                _mm512_mask_storeu_ps(cp, m16, _mm512_add_ps(_mm512_maskz_loadu_ps(m16, cp), v));
            }
        }
    }
}

/// Many rows, W stored `[n, k]` (the tied LM head over a whole prompt): computes `(W x^T)^T`, so
/// the big weight is the broadcast operand, read in place row by row, and only the small `x` is
/// packed (once, all of `k`); the sums are stored transposed, overwriting `dst`.
fn transposed(x: &[bf16], m: usize, k: usize, w: &[bf16], n: usize, dst: Shared, round: bool) {
    /// Weight rows per task (16 microkernel blocks; 96 x k bf16 stays in L2 across x's slices).
    const JB: usize = 16 * MR;
    let kp = k / 2;
    let slices = m.div_ceil(NR);
    let mut xb = vec![0u32; slices * kp * NR];
    // SAFETY: `available()` was asserted by `matmul`; x is m x k, as the pack reads it.
    unsafe { pack(&mut xb, x, k, WeightLayout::OutIn, 0, m, 0, kp) };
    (0..n.div_ceil(JB)).into_par_iter().for_each(|t| {
        let j1 = ((t + 1) * JB).min(n);
        for s in 0..slices {
            for r0 in (t * JB..j1).step_by(MR) {
                // SAFETY: weight rows r0..r0 + rows < n (k each), x's slice s (kp x NR words),
                // outputs (s * NR + col, r0 + row) with col < cols: this task's columns only.
                unsafe {
                    let a = w.as_ptr().add(r0 * k).cast::<u32>();
                    let b = xb.as_ptr().add(s * kp * NR);
                    let c = dst.ptr().add(s * NR * n + r0);
                    block::<STORE_T>(MR.min(j1 - r0), kp, a, kp, b, c, n, NR.min(m - s * NR), std::ptr::null());
                }
            }
        }
        if round {
            for i in 0..m {
                // SAFETY: row i's columns t * JB..j1 of the m x n output: this task's only.
                let part = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(i * n + t * JB), j1 - t * JB) };
                part.iter_mut().for_each(|v| *v = super::round_f32(*v));
            }
        }
    });
}

/// Whether a product with `m` rows reads its weight as packed panels (else it streams or dots it
/// in place).
pub(super) fn packs(m: usize) -> bool {
    m > DOT_M
}

/// Words of [`pack_all`]'s panels for a `k x n` weight.
pub(super) fn packed_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * (k / 2) * NR
}

/// All of `W` (`k x n`, `k` even) packed as [`panels`] reads it into `buf` ([`packed_len`]
/// words): `[n / NR slices][k / 2 pairs][NR]`, so that a frozen weight used by many products
/// packs once.
///
/// # Panics
/// If [`available`] is false, `k` is odd or a slice has the wrong length.
pub(super) fn pack_all(w: &[bf16], k: usize, n: usize, layout: WeightLayout, buf: &mut [u32]) {
    assert!(available(), "dpbf16::pack_all needs AVX512-BF16");
    assert!(k.is_multiple_of(2), "dpbf16::pack_all needs an even k, got {k}");
    assert_eq!(w.len(), k * n);
    assert_eq!(buf.len(), packed_len(k, n));
    let kp = k / 2;
    if kp == 0 {
        return;
    }
    let ld = if layout == WeightLayout::InOut { n } else { k };
    buf.par_chunks_mut(kp * NR).enumerate().for_each(|(s, slice)| {
        // SAFETY: `available()` was asserted; slice s covers columns s NR .. < n and all pairs.
        unsafe { pack(slice, w, ld, layout, s * NR, NR.min(n - s * NR), 0, kp) }
    });
}

/// Column panels of a weight (stored `[k, n]` or `[n, k]`) spread over rayon's pool; each task
/// packs `KP` pairs of its columns at a time (or reads them from `packed`, see [`pack_all`]) and
/// runs the microkernel over every row block, storing `sums + bias` for the first block of `k`
/// and adding the later ones; then hands its finished columns to `finish`.
#[allow(clippy::too_many_arguments)]
fn panels(
    x: &[bf16],
    m: usize,
    k: usize,
    w: &[bf16],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[bf16]>,
    dst: Shared,
    finish: Option<Finish>,
    packed: Option<&[u32]>,
) {
    let ld = if layout == WeightLayout::InOut { n } else { k };
    let bias: Option<Vec<f32>> = bias.map(|b| b.iter().map(|v| v.to_f32()).collect());
    let bias = bias.as_deref();
    // Enough panels for every thread to get several (balance), each a whole number of NR, and
    // narrow enough that a task's outputs (m x nb f32, revisited once per block of k) stay in L2:
    // at the vision tower's 1,024 rows, 256 columns (1 MiB) spilled every pass.
    let threads = rayon::current_num_threads().max(1);
    let fit = (C_BYTES / (4 * m.max(1))) / NR * NR;
    let nb = n.div_ceil(threads * 4).next_multiple_of(NR).clamp(NR, 4 * NR).min(fit.max(NR));
    (0..n.div_ceil(nb)).into_par_iter().for_each_init(
        || if packed.is_some() { Vec::new() } else { vec![0u32; KP * nb] },
        |buf, t| {
            let j0 = t * nb;
            let cols = nb.min(n - j0);
            let kpairs = k / 2;
            for p0 in (0..kpairs).step_by(KP) {
                let kp = KP.min(kpairs - p0);
                // SAFETY: `available()` was asserted by `matmul`; indices are within the slices
                // (k, n, j0 + cols <= n, p0 + kp <= k / 2; `packed` holds every slice's pairs)
                // and `dst` is m x n with this task's columns j0..j0 + cols written by nobody
                // else.
                unsafe {
                    let (panels, stride, first) = match packed {
                        Some(p) => (p.as_ptr(), kpairs * NR, (j0 / NR) * kpairs * NR + p0 * NR),
                        None => {
                            pack(buf, w, ld, layout, j0, cols, p0, kp);
                            (buf.as_ptr(), kp * NR, 0)
                        }
                    };
                    for i0 in (0..m).step_by(MC) {
                        let i1 = (i0 + MC).min(m);
                        for s in 0..cols.div_ceil(NR) {
                            let panel = panels.add(first + s * stride);
                            let c_cols = NR.min(cols - s * NR);
                            let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr().add(j0 + s * NR));
                            for r0 in (i0..i1).step_by(MR) {
                                let a = x.as_ptr().add(r0 * k + 2 * p0).cast::<u32>();
                                let c = dst.ptr().add(r0 * n + j0 + s * NR);
                                let rows = MR.min(i1 - r0);
                                if p0 == 0 {
                                    block::<STORE>(rows, kp, a, k / 2, panel, c, n, c_cols, bias);
                                } else {
                                    block::<ADD>(rows, kp, a, k / 2, panel, c, n, c_cols, bias);
                                }
                            }
                        }
                    }
                }
            }
            if let Some(finish) = finish {
                for i in 0..m {
                    // SAFETY: row i's columns j0..j0 + cols of the m x n output: this task's only.
                    let row = unsafe { std::slice::from_raw_parts_mut(dst.ptr().add(i * n + j0), cols) };
                    finish(i, j0, row);
                }
            }
        },
    );
}

/// Packs `W[2 p0 .. 2 (p0 + kp), j0 .. j0 + cols]` as `[slice][pair][NR]` words (low half = the
/// even `k`), zero beyond `cols`; `ld` is the stride between W's stored rows (`k` rows for
/// `InOut`, `j` rows for `OutIn`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack(
    buf: &mut [u32],
    w: &[bf16],
    ld: usize,
    layout: WeightLayout,
    j0: usize,
    cols: usize,
    p0: usize,
    kp: usize,
) {
    let slices = cols.div_ceil(NR);
    assert!(buf.len() >= slices * kp * NR, "pack buffer of {} words for {slices} x {kp} x {NR}", buf.len());
    match layout {
        WeightLayout::InOut => {
            // Row by row, all of this task's columns at once: a big weight comes from memory,
            // and these loads (each row's `cols` contiguous) are what the packing waits on.
            // Two rows' 32 columns interleave into two registers of words by two `vpermt2w`;
            // masked loads leave the words past `cols` zero and read nothing beyond them.
            let last = (2 * (p0 + kp) - 1) * ld + j0 + cols;
            assert!(last <= w.len(), "pack reads {last} of {} weights", w.len());
            let (lo_idx, hi_idx) = pair_interleave();
            for p in 0..kp {
                // SAFETY: rows 2 (p0 + p) and the next, columns j0 .. j0 + cols, are in bounds
                // (asserted above; the prefetch hint may point past them, which is harmless);
                // `buf` holds slices x kp x NR words (asserted).
                unsafe {
                    let r0 = w.as_ptr().add((2 * (p0 + p)) * ld + j0).cast::<i16>();
                    let r1 = r0.add(ld);
                    if p + PACK_AHEAD < kp {
                        for l in (0..cols).step_by(32) {
                            _mm_prefetch::<_MM_HINT_T0>(r0.wrapping_add(2 * PACK_AHEAD * ld + l).cast::<i8>());
                            _mm_prefetch::<_MM_HINT_T0>(r1.wrapping_add(2 * PACK_AHEAD * ld + l).cast::<i8>());
                        }
                    }
                    for c in (0..cols).step_by(32) {
                        let n = (cols - c).min(32);
                        let mask: __mmask32 = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
                        let a = _mm512_maskz_loadu_epi16(mask, r0.add(c));
                        let b = _mm512_maskz_loadu_epi16(mask, r1.add(c));
                        let d = buf.as_mut_ptr().add((c / NR) * kp * NR + p * NR + c % NR).cast::<__m512i>();
                        _mm512_storeu_si512(d, _mm512_permutex2var_epi16(a, lo_idx, b));
                        _mm512_storeu_si512(d.add(1), _mm512_permutex2var_epi16(a, hi_idx, b));
                    }
                    // The last slice's columns past `cols`, in whole registers of 16 words.
                    let tail = cols.next_multiple_of(32);
                    for c in (tail..slices * NR).step_by(16) {
                        let d = buf.as_mut_ptr().add((c / NR) * kp * NR + p * NR + c % NR);
                        _mm512_storeu_si512(d.cast(), _mm512_setzero_si512());
                    }
                }
            }
        }
        WeightLayout::OutIn => {
            // Each stored row is one column's pairs, contiguous: a gather of one word from each
            // of 16 rows fills a register of the panel (masked past `cols`, zero there).
            assert!(ld.is_multiple_of(2) && ld < (1 << 26), "pack needs an even row length below 2^26, got {ld}");
            if cols > 0 {
                let last = (j0 + cols - 1) * ld + 2 * (p0 + kp);
                assert!(last <= w.len(), "pack reads {last} of {} weights", w.len());
            }
            let step = _mm512_set1_epi32((ld / 2) as i32);
            let lanes =
                _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), step);
            for c in (0..slices * NR).step_by(16) {
                let live = cols.saturating_sub(c).min(16);
                let mask: __mmask16 = if live == 16 { u16::MAX } else { (1u16 << live) - 1 };
                let d = buf.as_mut_ptr().wrapping_add((c / NR) * kp * NR + c % NR);
                if live == 0 {
                    for p in 0..kp {
                        // SAFETY: `buf` holds slices x kp x NR words (asserted).
                        unsafe { _mm512_storeu_si512(d.add(p * NR).cast(), _mm512_setzero_si512()) };
                    }
                    continue;
                }
                // SAFETY: rows j0 + c .. j0 + c + live hold pairs p0 .. p0 + kp (asserted above);
                // masked-off lanes read nothing; `buf` holds slices x kp x NR words (asserted).
                unsafe {
                    let base = w.as_ptr().add((j0 + c) * ld + 2 * p0);
                    for p in 0..kp {
                        let idx = _mm512_add_epi32(lanes, _mm512_set1_epi32(p as i32));
                        let v = _mm512_mask_i32gather_epi32::<4>(_mm512_setzero_si512(), mask, idx, base.cast());
                        _mm512_storeu_si512(d.add(p * NR).cast(), v);
                    }
                }
            }
        }
    }
}

/// Pairs of W rows [`pack`] fetches ahead of the pair it interleaves.
const PACK_AHEAD: usize = 4;

/// How a block's sums reach `c`: added to it (`c[r * ldc + col] += sum`), stored
/// (`c[r * ldc + col] = sum`: the caller passes all of `k` at once) or stored transposed
/// (`c[col * ldc + r] = sum`, likewise).
const ADD: u8 = 0;
const STORE: u8 = 1;
const STORE_T: u8 = 2;

/// `a[rows x kp pairs] @ panel[kp x NR]` into `c` as `MODE` says, for the first `cols` columns;
/// only the 16-lane registers that hold those columns are computed (a 16-wide tail, like the
/// last 16 of the vision tower's head size 80, costs a quarter of a full block).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn block<const MODE: u8>(
    rows: usize,
    kp: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    bias: *const f32,
) {
    macro_rules! arms {
        ($($r:literal)*) => {
            match (rows, cols.div_ceil(16)) {
                (_, 0) => {}
                $(($r, 1) => micro::<$r, 1, MODE>(kp, a, lda, b, c, ldc, cols, bias),
                  ($r, 2) => micro::<$r, 2, MODE>(kp, a, lda, b, c, ldc, cols, bias),
                  ($r, 3) => micro::<$r, 3, MODE>(kp, a, lda, b, c, ldc, cols, bias),
                  ($r, 4) => micro::<$r, 4, MODE>(kp, a, lda, b, c, ldc, cols, bias),)*
                _ => unreachable!("block {rows} x {cols} > {MR} x {NR}"),
            }
        };
    }
    // SAFETY (all arms): forwarded from the caller.
    unsafe { arms!(1 2 3 4 5 6) }
}

/// The `R x 16 Q` microkernel: `R x Q` accumulators, `Q` panel loads and `R` broadcasts per pair.
/// `bias` (null for none) is added to the sums in `STORE` mode.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn micro<const R: usize, const Q: usize, const MODE: u8>(
    kp: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    bias: *const f32,
) {
    let mut acc = [[_mm512_setzero_ps(); Q]; R];
    // SAFETY: a covers R rows of kp pairs (row stride lda), b covers kp x NR words, c covers the
    // R x cols outputs at the strides above; loads are unaligned.
    unsafe {
        // The sums are added to `c` only after the loop; fetching its lines now hides a miss
        // (a large output is read once per KP block and does not stay in cache).
        if MODE == ADD {
            for r in 0..R {
                for q in 0..Q {
                    _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + q * 16).cast::<i8>());
                }
            }
        }
        for p in 0..kp {
            let bp = b.add(p * NR).cast::<__m512i>();
            let bv: [__m512bh; Q] = std::array::from_fn(|q| as_bh(_mm512_loadu_si512(bp.add(q))));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = as_bh(_mm512_set1_epi32(a.add(r * lda + p).read_unaligned() as i32));
                for q in 0..Q {
                    acc[q] = _mm512_dpbf16_ps(acc[q], bv[q], av);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, &v) in acc.iter().enumerate() {
                let lanes = cols.saturating_sub(q * 16).min(16);
                if lanes == 0 {
                    break;
                }
                if MODE == STORE_T {
                    let mut lane = [0f32; 16];
                    _mm512_storeu_ps(lane.as_mut_ptr(), v);
                    for (l, &v) in lane[..lanes].iter().enumerate() {
                        *c.add((q * 16 + l) * ldc + r) = v;
                    }
                    continue;
                }
                let mask: __mmask16 = if lanes == 16 { 0xFFFF } else { (1u16 << lanes) - 1 };
                let cp = c.add(r * ldc + q * 16);
                let v = if MODE == ADD {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, cp), v)
                } else if bias.is_null() {
                    v
                } else {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, bias.add(q * 16)), v)
                };
                _mm512_mask_storeu_ps(cp, mask, v);
            }
        }
    }
}

/// `vpermt2w` indices that interleave two rows of 32 bf16 `(a, b)` into words `a[c] | b[c] << 16`:
/// the first for columns 0..16, the second for 16..32 (word i of the first is `a`'s element
/// i / 2 for even i, `b`'s for odd i).
#[inline]
#[target_feature(enable = "avx512f")]
fn pair_interleave() -> (__m512i, __m512i) {
    let lo: [i16; 32] = std::array::from_fn(|i| ((i / 2) + 32 * (i % 2)) as i16);
    let hi: [i16; 32] = std::array::from_fn(|i| (16 + (i / 2) + 32 * (i % 2)) as i16);
    // SAFETY: both arrays are 64 bytes; unaligned loads.
    unsafe { (_mm512_loadu_si512(lo.as_ptr().cast()), _mm512_loadu_si512(hi.as_ptr().cast())) }
}

#[inline(always)]
fn as_bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 plain bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// Few rows, W stored `[n, k]`: every output is a dot product of an activation row with a
/// contiguous weight row, so the tied LM head is read once, in order, with no packing.
fn dots_out_in(x: &[bf16], m: usize, k: usize, w: &[bf16], n: usize, dst: Shared) {
    let (dr, dj) = super::dot_block_shape(m);
    super::dot_blocks(m, n, dr, dj, |i0, rows, j, jr| {
        // SAFETY: `available()` was asserted by `matmul`; rows j..j + jr < n of W and i0..i0 +
        // rows <= m of x, each k long; outputs (i, j..j + jr) are this task's columns.
        unsafe {
            let c = dst.ptr().add(i0 * n + j);
            dots(rows, jr, k, x.as_ptr().add(i0 * k), w.as_ptr().add(j * k), c, n);
        }
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn dots(rows: usize, jr: usize, k: usize, x: *const bf16, w: *const bf16, c: *mut f32, ldc: usize) {
    macro_rules! arms {
        ($($w:literal)*; $($r:literal)*) => {
            match (rows, jr) {
                $(($w, 4) => dot::<$w, 4>(k, x, w, c, ldc),)*
                $(($r, 2) => dot::<$r, 2>(k, x, w, c, ldc),)*
                $(($r, 1) => dot::<$r, 1>(k, x, w, c, ldc),)*
                _ => unreachable!("dots {rows} x {jr}"),
            }
        };
    }
    // SAFETY (all arms): forwarded from the caller.
    unsafe { arms!(1 2 3 4; 1 2 3 4 5 6 7 8) }
}

/// `c[r, q] += sum_k x[r, k] w[q, k]` for R activation rows and J weight rows (both stride k).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn dot<const R: usize, const J: usize>(k: usize, x: *const bf16, w: *const bf16, c: *mut f32, ldc: usize) {
    let mut acc = [[_mm512_setzero_ps(); J]; R];
    // SAFETY: x covers R rows and w J rows of k bf16 each; the tail uses masked loads, which
    // touch no element past the mask.
    unsafe {
        let full = k / 32 * 32;
        let mut step = |off: usize, mask: __mmask32| {
            // The rows a few blocks on (contiguous after these), into L2.
            for q in 0..J {
                let ahead = super::dot_prefetch_index(J, k, off, q, 32);
                _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead).cast::<i8>());
            }
            let wv: [__m512bh; J] =
                std::array::from_fn(|q| as_bh(_mm512_maskz_loadu_epi16(mask, w.add(q * k + off).cast::<i16>())));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = as_bh(_mm512_maskz_loadu_epi16(mask, x.add(r * k + off).cast::<i16>()));
                for q in 0..J {
                    acc[q] = _mm512_dpbf16_ps(acc[q], xv, wv[q]);
                }
            }
        };
        for off in (0..full).step_by(32) {
            step(off, u32::MAX);
        }
        if full < k {
            step(full, (1u32 << (k - full)) - 1);
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, &v) in acc.iter().enumerate() {
                *c.add(r * ldc + q) += _mm512_reduce_add_ps(v);
            }
        }
    }
}

/// Full (unmasked) attention of one image's patches, all heads: `out[i, h, :] = softmax(scale
/// q_h k_h^T)[i] v_h` with `q`, `k`, `v` and `out` stored `[n, heads, hd]` (token-major, as the
/// qkv projection makes them and the output projection reads them). See [`attention_gqa`].
///
/// # Panics
/// As [`attention_gqa`].
#[allow(clippy::too_many_arguments)]
pub fn attention(q: &[bf16], k: &[bf16], v: &[bf16], n: usize, heads: usize, hd: usize, scale: f32, out: &mut [bf16]) {
    let shape = AttentionShape { queries: n, keys: n, heads, kv_heads: heads, head_dim: hd };
    attention_gqa(q, k, v, shape, scale, None, out);
}

/// Sizes of an [`attention_gqa`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub queries: usize,
    pub keys: usize,
    pub heads: usize,
    /// Query head `h` reads key/value head `h / (heads / kv_heads)` (grouped-query attention).
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// `out[i, h, :] = softmax(scale q_h k_g^T + mask)[i] v_g` (`g` the key/value head of query head
/// `h`), with `q` and `out` stored `[queries, heads, hd]` and `k`, `v` `[keys, kv_heads, hd]`
/// (token-major). `allowed`, when given, is `[queries, keys]`: false keys get no weight (the text
/// model's causal and padding mask); a query with no allowed key gets zeros.
///
/// Like torch's CPU flash attention for bf16: scores, the running max and the row sums are f32,
/// the probabilities are rounded to bf16 for the second product, and the output is rounded once.
/// Tasks are (head, block of 64 queries); K and V are packed once per key/value head.
///
/// # Panics
/// If [`available`] is false, `keys` or `hd` is odd, `heads` is not a multiple of `kv_heads`,
/// or a slice has the wrong length.
pub fn attention_gqa(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    shape: AttentionShape,
    scale: f32,
    allowed: Option<&[bool]>,
    out: &mut [bf16],
) {
    const QB: usize = 64;
    let AttentionShape { queries: nq, keys: n, heads, kv_heads, head_dim: hd } = shape;
    assert!(available(), "dpbf16::attention needs AVX512-BF16");
    assert!(
        n.is_multiple_of(2) && hd.is_multiple_of(2),
        "dpbf16::attention needs an even key count and head size ({n}, {hd})"
    );
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads), "{heads} query heads over {kv_heads} kv heads");
    let (e, ekv) = (heads * hd, kv_heads * hd);
    assert!(q.len() == nq * e && out.len() == nq * e && k.len() == n * ekv && v.len() == n * ekv);
    assert!(allowed.is_none_or(|a| a.len() == nq * n));
    if nq == 0 || e == 0 {
        return;
    }
    if n == 0 {
        out.fill(bf16::ZERO);
        return;
    }
    let rep = heads / kv_heads;
    let (kslices, vslices) = (n.div_ceil(NR), hd.div_ceil(NR));
    let (ksize, vsize) = (kslices * (hd / 2) * NR, vslices * (n / 2) * NR);
    // Per key/value head: K as the "weight" of q k^T (stored [keys, hd] = OutIn), V as that of
    // p v (stored [keys, hd] = InOut with keys summed).
    let mut kb = vec![0u32; kv_heads * ksize];
    let mut vb = vec![0u32; kv_heads * vsize];
    kb.par_chunks_mut(ksize).zip(vb.par_chunks_mut(vsize)).enumerate().for_each(|(g, (kb, vb))| {
        // SAFETY: `available()` was asserted; head g's rows are at g * hd + (token) * ekv.
        unsafe {
            pack(kb, &k[g * hd..], ekv, WeightLayout::OutIn, 0, n, 0, hd / 2);
            pack(vb, &v[g * hd..], ekv, WeightLayout::InOut, 0, hd, 0, n / 2);
        }
    });
    let dst = Shared(out.as_mut_ptr());
    let hd_pad = vslices * NR;
    (0..heads * nq.div_ceil(QB)).into_par_iter().for_each_init(
        || (vec![0f32; QB * n], vec![bf16::ZERO; QB * n], vec![0f32; QB * hd_pad]),
        |(sc, pr, o), t| {
            let (h, i0) = (t % heads, t / heads * QB);
            let g = h / rep;
            let rows = QB.min(nq - i0);
            let (kb, vb) = (&kb[g * ksize..][..ksize], &vb[g * vsize..][..vsize]);
            // Keys after the last one any of these queries may see (the causal mask's upper
            // triangle: half the work over a prompt) are skipped, not computed and masked.
            let nk = allowed.map_or(n, |a| {
                let last = |r: usize| a[(i0 + r) * n..][..n].iter().rposition(|&ok| ok).map_or(0, |p| p + 1);
                (0..rows).map(last).max().unwrap_or(0).next_multiple_of(2).min(n)
            });
            // Both products take all of their `k` in one block and store their sums, so neither
            // buffer is zeroed first (scores past `nk` and columns past `hd` are never read).
            // SAFETY: `available()` was asserted; every pointer below stays inside its buffer:
            // q rows i0..i0 + rows (hd each, stride e), the packed K/V of head g, the score and
            // probability rows (n each), the output rows (hd_pad each); this task alone writes
            // out's rows i0..i0 + rows of head h.
            unsafe {
                for s in 0..nk.div_ceil(NR) {
                    for r0 in (0..rows).step_by(MR) {
                        let a = q.as_ptr().add((i0 + r0) * e + h * hd).cast::<u32>();
                        let b = kb.as_ptr().add(s * (hd / 2) * NR);
                        let c = sc.as_mut_ptr().add(r0 * n + s * NR);
                        block::<STORE>(
                            MR.min(rows - r0),
                            hd / 2,
                            a,
                            e / 2,
                            b,
                            c,
                            n,
                            NR.min(nk - s * NR),
                            std::ptr::null(),
                        );
                    }
                }
                if let Some(allowed) = allowed {
                    for r in 0..rows {
                        let ok = &allowed[(i0 + r) * n..][..nk];
                        sc[r * n..][..nk].iter_mut().zip(ok).filter(|(_, ok)| !**ok).for_each(|(s, _)| {
                            *s = f32::NEG_INFINITY;
                        });
                    }
                }
                let mut sums = [0f32; QB];
                for (r, sum) in sums[..rows].iter_mut().enumerate() {
                    *sum = softmax_row(&mut sc[r * n..][..nk], &mut pr[r * n..][..nk], scale);
                }
                for s in 0..vslices {
                    for r0 in (0..rows).step_by(MR) {
                        let a = pr.as_ptr().add(r0 * n).cast::<u32>();
                        let b = vb.as_ptr().add(s * (n / 2) * NR);
                        let c = o.as_mut_ptr().add(r0 * hd_pad + s * NR);
                        block::<STORE>(
                            MR.min(rows - r0),
                            nk / 2,
                            a,
                            n / 2,
                            b,
                            c,
                            hd_pad,
                            NR.min(hd - s * NR),
                            std::ptr::null(),
                        );
                    }
                }
                for (r, &sum) in sums[..rows].iter().enumerate() {
                    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                    scale_to_bf16(&o[r * hd_pad..][..hd], inv, dst.ptr().add((i0 + r) * e + h * hd));
                }
            }
        },
    );
}

/// `out[i] = bf16(x[i] * f)`, rounded to nearest even, 16 lanes at a time.
///
/// # Safety
/// The CPU has [`available`]'s features; `out` holds `x.len()` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn scale_to_bf16(x: &[f32], f: f32, out: *mut bf16) {
    let fv = _mm512_set1_ps(f);
    for i in (0..x.len()).step_by(16) {
        let lanes = (x.len() - i).min(16);
        let mask: __mmask16 = if lanes == 16 { 0xFFFF } else { (1u16 << lanes) - 1 };
        // SAFETY: masked loads and stores of lanes i..i + lanes < x.len() (caller: out as long).
        unsafe {
            let y = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x.as_ptr().add(i)), fv);
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(y));
            _mm256_mask_storeu_epi16(out.add(i).cast::<i16>(), mask, b);
        }
    }
}

/// `p = bf16(exp(scale s - max))` over a row of scores; returns the f32 sum of the exponentials
/// (0, with every `p` 0, for a row whose scores are all minus infinity).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn softmax_row(s: &mut [f32], p: &mut [bf16], scale: f32) -> f32 {
    let n = s.len();
    let full = n / 16 * 16;
    let tail: __mmask16 = ((1u32 << (n - full)) - 1) as u16;
    // SAFETY: full loads/stores below `full`, masked ones for the tail, all within s and p.
    unsafe {
        let sv = _mm512_set1_ps(scale);
        let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..full).step_by(16) {
            mx = _mm512_max_ps(mx, _mm512_loadu_ps(s.as_ptr().add(i)));
        }
        if tail != 0 {
            mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s.as_ptr().add(full)));
        }
        // scale > 0, so the scaled maximum is the maximum of the scaled scores.
        let top = _mm512_reduce_max_ps(mx);
        if top == f32::NEG_INFINITY {
            p.fill(bf16::ZERO);
            return 0.0;
        }
        let m = _mm512_set1_ps(top * scale);
        let mut sum = _mm512_setzero_ps();
        let mut one = |i: usize, mask: __mmask16| {
            let x = _mm512_maskz_loadu_ps(mask, s.as_ptr().add(i));
            let y = _mm512_maskz_mov_ps(mask, exp_ps(_mm512_fmsub_ps(x, sv, m)));
            sum = _mm512_add_ps(sum, y);
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(y));
            _mm256_mask_storeu_epi16(p.as_mut_ptr().add(i).cast::<i16>(), mask, b);
        };
        for i in (0..full).step_by(16) {
            one(i, 0xFFFF);
        }
        if tail != 0 {
            one(full, tail);
        }
        _mm512_reduce_add_ps(sum)
    }
}

/// `softmax(scale s)` in place over each row of `n` (f32 probabilities; `scale > 0`, rows not
/// all minus infinity): the f32 attention's softmax, on [`exp_ps`].
///
/// # Panics
/// If the CPU lacks AVX-512F or `s.len()` is not a multiple of `n`.
pub fn softmax_f32_rows(s: &mut [f32], n: usize, scale: f32) {
    assert!(super::small_f32::available(), "softmax_f32_rows needs AVX-512F");
    assert!(n > 0 && s.len().is_multiple_of(n), "softmax_f32_rows: {} values in rows of {n}", s.len());
    for row in s.chunks_mut(n) {
        // SAFETY: the CPU has AVX-512F (asserted).
        unsafe { softmax_f32_row(row, scale) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn softmax_f32_row(s: &mut [f32], scale: f32) {
    let n = s.len();
    let full = n / 16 * 16;
    let tail: __mmask16 = ((1u32 << (n - full)) - 1) as u16;
    // SAFETY: full loads/stores below `full`, masked ones for the tail, all within s.
    unsafe {
        let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..full).step_by(16) {
            mx = _mm512_max_ps(mx, _mm512_loadu_ps(s.as_ptr().add(i)));
        }
        if tail != 0 {
            mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s.as_ptr().add(full)));
        }
        let m = _mm512_set1_ps(_mm512_reduce_max_ps(mx) * scale);
        let sv = _mm512_set1_ps(scale);
        let mut sum = _mm512_setzero_ps();
        for i in (0..full).step_by(16) {
            let p = s.as_mut_ptr().add(i);
            let y = exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(p), sv, m));
            sum = _mm512_add_ps(sum, y);
            _mm512_storeu_ps(p, y);
        }
        if tail != 0 {
            let p = s.as_mut_ptr().add(full);
            let y = _mm512_maskz_mov_ps(tail, exp_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, p), sv, m)));
            sum = _mm512_add_ps(sum, y);
            _mm512_mask_storeu_ps(p, tail, y);
        }
        let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
        for i in (0..full).step_by(16) {
            let p = s.as_mut_ptr().add(i);
            _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_loadu_ps(p), inv));
        }
        if tail != 0 {
            let p = s.as_mut_ptr().add(full);
            _mm512_mask_storeu_ps(p, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, p), inv));
        }
    }
}

/// `v * sigmoid(a v)` in place: quick GELU (`a` = 1.702, the vision MLP) and SiLU (`a` = 1, the
/// text MLP), fused after their products.
pub fn sigmoid_mul(v: &mut [f32], a: f32) {
    assert!(available(), "dpbf16::sigmoid_mul needs AVX-512");
    // SAFETY: the CPU has AVX-512 (asserted).
    unsafe { sigmoid_avx512::<true>(v, a) }
}

/// `sigmoid(v)` in place (SiLU's backward).
pub fn sigmoid(v: &mut [f32]) {
    assert!(available(), "dpbf16::sigmoid needs AVX-512");
    // SAFETY: the CPU has AVX-512 (asserted).
    unsafe { sigmoid_avx512::<false>(v, 1.0) }
}

/// `(MUL ? v : 1) / (1 + e^(-a v))`.
#[target_feature(enable = "avx512f")]
unsafe fn sigmoid_avx512<const MUL: bool>(v: &mut [f32], a: f32) {
    let full = v.len() / 16 * 16;
    let one = _mm512_set1_ps(1.0);
    let a = _mm512_set1_ps(-a);
    let f = |x: __m512| _mm512_div_ps(if MUL { x } else { one }, _mm512_add_ps(one, exp_ps(_mm512_mul_ps(x, a))));
    // SAFETY: full-width loads and stores below `full`, masked ones for the tail.
    unsafe {
        for i in (0..full).step_by(16) {
            let p = v.as_mut_ptr().add(i);
            _mm512_storeu_ps(p, f(_mm512_loadu_ps(p)));
        }
        if full < v.len() {
            let mask: __mmask16 = ((1u32 << (v.len() - full)) - 1) as u16;
            let p = v.as_mut_ptr().add(full);
            _mm512_mask_storeu_ps(p, mask, f(_mm512_maskz_loadu_ps(mask, p)));
        }
    }
}

/// `e^x` for `x <= 88` (0 below -104), relative error below 1e-5 (bf16 rounding is 4e-3):
/// `2^round(t) * e^r` with `t = x log2(e)`, `r` the
/// remainder times ln 2 (|r| <= 0.35) by a degree-6 Taylor polynomial, and `vscalefps` for the
/// power of two (which also takes very negative inputs to 0).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_ps(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
    let t = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
    let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let r = _mm512_mul_ps(_mm512_sub_ps(t, k), _mm512_set1_ps(std::f32::consts::LN_2));
    let mut p = _mm512_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        let xs: Vec<f32> = (0..=4000)
            .map(|i| -(i as f32) * 0.03)
            .chain([-1e-7, -87.0, -103.9, -200.0, f32::MIN, 1e-7, 0.5, 3.3, 20.0, 80.0])
            .collect();
        for chunk in xs.chunks(16) {
            let mut lanes = [0f32; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let mut got = [0f32; 16];
            // SAFETY: checked above that the CPU has AVX-512.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp_ps(_mm512_loadu_ps(lanes.as_ptr()))) };
            for (&x, &g) in chunk.iter().zip(&got) {
                let want = f64::from(x).exp();
                let err = (f64::from(g) - want).abs();
                assert!(err <= 1e-5 * want + 1e-38, "exp({x}) = {g}, want {want}");
            }
        }
    }

    #[test]
    fn sigmoid_mul_matches_f64() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        for a in [1.702f32, 1.0] {
            let mut v: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.037).chain([-90.0, 90.0, 0.0]).collect();
            let want: Vec<f64> =
                v.iter().map(|&x| f64::from(x) / (1.0 + (-f64::from(a) * f64::from(x)).exp())).collect();
            let mut plain = v.clone();
            sigmoid_mul(&mut v, a);
            for (g, w) in v.iter().zip(&want) {
                assert!((f64::from(*g) - w).abs() <= 1e-5 * w.abs() + 1e-7, "a = {a}: {g} vs {w}");
            }
            if a == 1.0 {
                let want: Vec<f64> = plain.iter().map(|&x| 1.0 / (1.0 + (-f64::from(x)).exp())).collect();
                sigmoid(&mut plain);
                for (g, w) in plain.iter().zip(&want) {
                    assert!((f64::from(*g) - w).abs() <= 1e-5 * w + 1e-7, "sigmoid: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn attention_matches_f64_reference() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        let mut uniform = super::super::tests::uniform(0x1234_5677);
        let mut rnd = move |amp: f32| bf16::from_f32(uniform() * amp);
        // Lengths across the 64-query blocks and 64-key slices, head sizes below and above NR.
        for &(n, heads, hd) in &[(2, 1, 2), (70, 3, 80), (130, 2, 128), (256, 4, 16)] {
            let e = heads * hd;
            let q: Vec<bf16> = (0..n * e).map(|_| rnd(2.0)).collect();
            let k: Vec<bf16> = (0..n * e).map(|_| rnd(2.0)).collect();
            let v: Vec<bf16> = (0..n * e).map(|_| rnd(1.0)).collect();
            let scale = 1.0 / (hd as f32).sqrt();
            let mut out = vec![bf16::NAN; n * e];
            attention(&q, &k, &v, n, heads, hd, scale, &mut out);
            for h in 0..heads {
                for i in 0..n {
                    let at = |t: &[bf16], j: usize, d: usize| t[(j * heads + h) * hd + d].to_f64();
                    let s: Vec<f64> = (0..n)
                        .map(|j| (0..hd).map(|d| at(&q, i, d) * at(&k, j, d)).sum::<f64>() * f64::from(scale))
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let p: Vec<f64> = s.iter().map(|s| (s - mx).exp()).collect();
                    let sum: f64 = p.iter().sum();
                    for d in 0..hd {
                        let want = (0..n).map(|j| p[j] * at(&v, j, d)).sum::<f64>() / sum;
                        let got = out[(i * heads + h) * hd + d].to_f64();
                        // bf16 probabilities and output: a few parts in 2^8 of the values' scale.
                        assert!(
                            (got - want).abs() <= 0.01 * want.abs() + 0.003,
                            "n {n} h {h} i {i} d {d}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Asserts that `got` (`m x n`) is `x @ W (+ bias)` to f64 within the f32 summation's error.
    #[allow(clippy::too_many_arguments)]
    fn assert_matches_reference(
        m: usize,
        k: usize,
        n: usize,
        layout: WeightLayout,
        x: &[bf16],
        w: &[bf16],
        bias: Option<&[bf16]>,
        got: impl Iterator<Item = f64>,
        what: &str,
    ) {
        let bias_f = |j: usize| bias.map_or(0.0, |b| b[j].to_f64());
        let want = super::super::tests::reference(
            m,
            k,
            n,
            layout,
            |i| x[i].to_f64(),
            |i| w[i].to_f64(),
            bias.is_some().then_some(&bias_f as &dyn Fn(usize) -> f64),
        );
        for (idx, (got, want)) in got.zip(&want).enumerate() {
            let tol = 1e-5 * (k as f64).sqrt() + 1e-6 * want.abs();
            assert!((got - want).abs() <= tol, "{m}x{k}x{n} {layout:?} {what} at {idx}: {got} vs {want}");
        }
    }

    #[test]
    fn finished_columns_agree_for_both_weight_layouts() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        let mut uniform = super::super::tests::uniform(0x9E37_79B9);
        let mut rnd = move || bf16::from_f32(uniform());
        // Many rows (the panel kernel), widths with a gather tail, k across KP blocks.
        for &(m, k, n) in &[(17, 6, 5), (40, 300, 70), (100, 1100, 130), (530, 260, 33)] {
            let x: Vec<bf16> = (0..m * k).map(|_| rnd()).collect();
            let w: Vec<bf16> = (0..k * n).map(|_| rnd()).collect();
            let b: Vec<bf16> = (0..n).map(|_| rnd()).collect();
            for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
                let done = std::sync::Mutex::new(vec![f64::NAN; m * n]);
                let finish = |i: usize, j0: usize, sums: &mut [f32]| {
                    let mut d = done.lock().unwrap();
                    for (j, v) in sums.iter().enumerate() {
                        d[i * n + j0 + j] = f64::from(*v);
                    }
                };
                let mut out = vec![f32::NAN; m * n];
                let how = matmul_into(&x, m, k, &w, n, layout, Some(&b), &mut out, false, Some(&finish), None);
                assert_eq!(how, Sums::Finished, "{m}x{k}x{n} {layout:?}");
                let done = done.into_inner().unwrap();
                assert_matches_reference(m, k, n, layout, &x, &w, Some(&b), done.into_iter(), "finished");
            }
        }
    }

    #[test]
    fn weights_packed_once_give_the_same_sums() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        let mut uniform = super::super::tests::uniform(0x51_7CC1);
        let mut rnd = move || bf16::from_f32(uniform());
        // Widths with a partial last slice, k across KP blocks, rows across MC; with and without
        // a finishing closure (the [n, k] layout without one takes another kernel unpacked).
        for &(m, k, n) in &[(17, 6, 5), (40, 300, 70), (530, 260, 200), (100, 1100, 130)] {
            let x: Vec<bf16> = (0..m * k).map(|_| rnd()).collect();
            let w: Vec<bf16> = (0..k * n).map(|_| rnd()).collect();
            let b: Vec<bf16> = (0..n).map(|_| rnd()).collect();
            for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
                let mut packed = vec![0u32; packed_len(k, n)];
                pack_all(&w, k, n, layout, &mut packed);
                let finished = |kept: Option<&[u32]>| {
                    let sink = std::sync::Mutex::new(vec![f32::NAN; m * n]);
                    let keep = |i: usize, j0: usize, sums: &mut [f32]| {
                        sink.lock().unwrap()[i * n + j0..][..sums.len()].copy_from_slice(sums)
                    };
                    let mut scratch = vec![0f32; m * n];
                    matmul_into(&x, m, k, &w, n, layout, Some(&b), &mut scratch, false, Some(&keep), kept);
                    sink.into_inner().unwrap()
                };
                let (want, got) = (finished(None), finished(Some(&packed)));
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n} {layout:?} finished");
                let (mut plain, mut from_packed) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
                matmul_into(&x, m, k, &w, n, layout, None, &mut plain, false, None, None);
                matmul_into(&x, m, k, &w, n, layout, None, &mut from_packed, false, None, Some(&packed));
                let what = format!("{layout:?} from packed panels");
                let sums = from_packed.iter().map(|v| f64::from(*v));
                assert_matches_reference(m, k, n, layout, &x, &w, None, sums, &what);
                if layout == WeightLayout::InOut {
                    assert_eq!(bits(&from_packed), bits(&plain), "{m}x{k}x{n} {layout:?} plain");
                }
            }
        }
    }

    #[test]
    fn dp_matches_f64_reference() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
            return;
        }
        let mut uniform = super::super::tests::uniform(0x2545_F491);
        let mut rnd = move || bf16::from_f32(uniform());
        // Row counts on both sides of MR, DOT_M and MC; widths not a multiple of NR; k across
        // several KP blocks and with a masked tail in the dot kernel.
        for &(m, k, n) in &[
            (1, 2, 1),
            (1, 38, 53),
            (3, 130, 300),
            (7, 64, 17),
            (16, 6, 1000),
            (17, 600, 301),
            (40, 1100, 130),
            (530, 260, 70),
        ] {
            for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
                for with_bias in [false, true] {
                    let x: Vec<bf16> = (0..m * k).map(|_| rnd()).collect();
                    let w: Vec<bf16> = (0..k * n).map(|_| rnd()).collect();
                    let b: Vec<bf16> = (0..n).map(|_| rnd()).collect();
                    let bias = with_bias.then_some(&b[..]);
                    let mut out = vec![f32::NAN; m * n];
                    matmul(&x, m, k, &w, n, layout, bias, &mut out);
                    let what = format!("bias {with_bias}");
                    assert_matches_reference(m, k, n, layout, &x, &w, bias, out.iter().map(|v| f64::from(*v)), &what);
                }
            }
        }
    }
}

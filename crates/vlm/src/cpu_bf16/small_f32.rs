//! f32 weights times a few activation rows (decode) on AVX-512: the weight is streamed once per
//! product at memory speed. gemm's f32 kernel is built for many rows; at 8 rows it ran the 2B
//! decode step far below the memory bound (about 45 tok/s at 2b:4 against ~140 for the bytes).
//!
//! The same two shapes as [`super::dpbf16`]'s few-row paths, with f32 FMAs instead of bf16 pair
//! products: an `[in, out]` weight is read front to back by blocks of rows, one block ahead in
//! the prefetcher; an `[out, in]` one (the tied head) is dotted row against row.

use super::{SharedOut, WeightLayout};
use std::arch::x86_64::*;

/// Most activation rows this path takes (more go to gemm).
pub const MAX_M: usize = 16;
/// Weight rows per streamed block (`SR` rows of up to 8,960 f32: 0.57 MiB, two blocks in L2).
const SR: usize = 16;

/// Whether this CPU has AVX-512F.
pub fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// `out[m, n] = x[m, k] @ W (+ bias)` for `m <= MAX_M`, all f32.
///
/// # Panics
/// If [`available`] is false, `m > MAX_M` or a slice has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    layout: WeightLayout,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert!(available(), "small_f32::matmul needs AVX-512F");
    assert!(m <= MAX_M, "small_f32::matmul takes at most {MAX_M} rows, got {m}");
    assert_eq!(x.len(), m * k);
    assert_eq!(w.len(), k * n);
    assert_eq!(out.len(), m * n);
    assert!(bias.is_none_or(|b| b.len() == n));
    if m == 0 || n == 0 {
        return;
    }
    out.chunks_mut(n).for_each(|row| match bias {
        Some(b) => row.copy_from_slice(b),
        None => row.fill(0.0),
    });
    if k == 0 {
        return;
    }
    match layout {
        WeightLayout::InOut => stream(x, m, k, w, n, out),
        WeightLayout::OutIn => dots(x, m, k, w, n, out),
    }
}

/// `[k, n]` weight: each thread reads a contiguous block of its rows ([`super::split_k`]).
fn stream(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    super::split_k(k, SR, m, n, out, |r, part| {
        for kb in r.clone().step_by(SR) {
            let ke = (kb + SR).min(r.end);
            for j in (0..n).step_by(32) {
                for r0 in (0..m).step_by(8) {
                    // SAFETY: AVX-512F asserted by `matmul`; W rows kb..ke < k, columns masked
                    // to < n, x rows r0.. < m, this task's own partial sums.
                    unsafe {
                        let xs = x.as_ptr().add(r0 * k);
                        let c = part.as_mut_ptr().add(r0 * n + j);
                        stream_rows(8.min(m - r0), kb, ke, xs, k, w.as_ptr(), n, j, c);
                    }
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn stream_rows(
    rows: usize,
    kb: usize,
    ke: usize,
    x: *const f32,
    k: usize,
    w: *const f32,
    n: usize,
    j: usize,
    c: *mut f32,
) {
    macro_rules! arms {
        ($($r:literal)*) => {
            match rows {
                $($r => stream_micro::<$r>(kb, ke, x, k, w, n, j, c),)*
                _ => unreachable!("stream rows {rows} > 8"),
            }
        };
    }
    // SAFETY (all arms): forwarded from the caller.
    unsafe { arms!(1 2 3 4 5 6 7 8) }
}

/// `c[r, 0..32] += sum_{kb <= kk < ke} x[r, kk] W[kk, j..j+32]` for R rows.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn stream_micro<const R: usize>(
    kb: usize,
    ke: usize,
    x: *const f32,
    k: usize,
    w: *const f32,
    n: usize,
    j: usize,
    c: *mut f32,
) {
    let cols = 32.min(n - j);
    let m0: __mmask16 = if cols >= 16 { 0xFFFF } else { ((1u32 << cols) - 1) as u16 };
    let m1: __mmask16 = if cols >= 32 {
        0xFFFF
    } else if cols > 16 {
        ((1u32 << (cols - 16)) - 1) as u16
    } else {
        0
    };
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY: rows kb..ke of W and R rows of x are in bounds (caller); loads past `cols` are
    // masked off; c covers R rows of `cols` f32 at stride n.
    unsafe {
        for kk in kb..ke {
            // 1 KiB further along this row (past its end: the next block's same row), so that
            // each of the block's `SR` interleaved row streams has its lines in flight. Into
            // L2: at batch 1 the 2B up product (55 MB) took 2.3-2.7 ms with these in L1,
            // 1.2-1.5 ms this way.
            let ahead = super::prefetch_index(kk, kk + SR, j + 256, n);
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead).cast::<i8>());
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead + 16).cast::<i8>());
            let row = w.add(kk * n + j);
            let w0 = _mm512_maskz_loadu_ps(m0, row);
            let w1 = _mm512_maskz_loadu_ps(m1, row.add(16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * k + kk));
                acc[0] = _mm512_fmadd_ps(xv, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(xv, w1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, (&v, mask)) in acc.iter().zip([m0, m1]).enumerate() {
                let cp = c.add(r * n + q * 16);
                _mm512_mask_storeu_ps(cp, mask, _mm512_add_ps(_mm512_maskz_loadu_ps(mask, cp), v));
            }
        }
    }
}

/// `[n, k]` weight: each output is a dot product of an activation row with a weight row.
fn dots(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    let dst = SharedOut(out.as_mut_ptr());
    let (dr, dj) = super::dot_block_shape(m);
    super::dot_blocks(m, n, dr, dj, |i0, rows, j, jr| {
        // SAFETY: AVX-512F asserted by `matmul`; W rows j..j + jr < n, x rows i0..i0 + rows <= m
        // (k each); outputs (i, j..j + jr) are this task's.
        unsafe {
            let c = dst.ptr().add(i0 * n + j);
            dot_rows(rows, jr, k, x.as_ptr().add(i0 * k), w.as_ptr().add(j * k), c, n);
        }
    });
}

#[target_feature(enable = "avx512f")]
unsafe fn dot_rows(rows: usize, jr: usize, k: usize, x: *const f32, w: *const f32, c: *mut f32, ldc: usize) {
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

/// `c[r, q] += sum_k x[r, k] w[q, k]` for R activation rows and J weight rows (stride k).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot<const R: usize, const J: usize>(k: usize, x: *const f32, w: *const f32, c: *mut f32, ldc: usize) {
    let mut acc = [[_mm512_setzero_ps(); J]; R];
    // SAFETY: x covers R rows and w J rows of k f32; the tail is masked.
    unsafe {
        // One loop body, the tail's mask chosen per step.
        let tail: __mmask16 = ((1u32 << (k % 16)) - 1) as u16;
        for off in (0..k).step_by(16) {
            let mask = if off + 16 <= k { 0xFFFF } else { tail };
            // The rows a few blocks on (contiguous after these), into L2.
            for q in 0..J {
                let ahead = super::dot_prefetch_index(J, k, off, q, 16);
                _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(ahead).cast::<i8>());
            }
            let wv: [__m512; J] = std::array::from_fn(|q| _mm512_maskz_loadu_ps(mask, w.add(q * k + off)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(r * k + off));
                for q in 0..J {
                    acc[q] = _mm512_fmadd_ps(xv, wv[q], acc[q]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (q, &v) in acc.iter().enumerate() {
                *c.add(r * ldc + q) += _mm512_reduce_add_ps(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_f32_matches_f64_reference() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rnd = super::super::tests::uniform(0x0BAD_5EED);
        for &(m, k, n) in &[(1, 1, 1), (1, 37, 53), (3, 130, 300), (8, 64, 17), (9, 600, 33), (16, 5, 1000)] {
            for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
                for with_bias in [false, true] {
                    let x: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
                    let w: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
                    let b: Vec<f32> = (0..n).map(|_| rnd()).collect();
                    let bias = with_bias.then_some(&b[..]);
                    let mut out = vec![f32::NAN; m * n];
                    matmul(&x, m, k, &w, n, layout, bias, &mut out);
                    let bias_f = |j: usize| f64::from(b[j]);
                    let want = super::super::tests::reference(
                        m,
                        k,
                        n,
                        layout,
                        |i| f64::from(x[i]),
                        |i| f64::from(w[i]),
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
}

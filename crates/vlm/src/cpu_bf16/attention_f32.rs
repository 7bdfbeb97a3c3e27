//! The vision tower's attention (2D rotary included) for f32 weights on flex, outside autodiff.
//!
//! burn's flex attention ran the 1,024-patch, 16-head attention of one vision block in ~67 ms
//! on 2 threads (about 80 GFLOP/s) and the rotary as tensor ops in ~7 ms. Here each task takes
//! one head and a block of 64 queries: its scores `[64, n]` stay in L2 between gemm's f32 kernel,
//! a vectorised softmax and the product with V. The math is f32 throughout, as before.

use rayon::prelude::*;

use super::dpbf16::softmax_f32_rows;

/// Queries per task.
const QB: usize = 64;

/// `out[i, h, :] = softmax(scale q_h k_h^T)[i] v_h` over one image's `n` patches, with q and k
/// rotated (`x cos + rotate_half(x) sin`, tables `[n, hd]`) as they are split out of `qkv`
/// (`[n, 3 * heads * hd]`: q, k, v). `out` is `[n, heads * hd]`.
///
/// # Panics
/// If the CPU lacks AVX-512F or a slice has the wrong length.
pub fn vision_attention(qkv: &[f32], n: usize, heads: usize, hd: usize, cos: &[f32], sin: &[f32], out: &mut [f32]) {
    assert!(super::small_f32::available(), "attention_f32 needs AVX-512F");
    let e = heads * hd;
    assert!(qkv.len() == n * 3 * e && out.len() == n * e && cos.len() == n * hd && sin.len() == n * hd);
    assert!(hd.is_multiple_of(2), "rotary needs an even head size ({hd})");
    if n == 0 || e == 0 {
        return;
    }
    let half = hd / 2;
    let scale = 1.0 / (hd as f32).sqrt();
    // Per head: rotated q and k and v, each `[n, hd]` contiguous.
    let split: Vec<[Vec<f32>; 3]> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let (mut q, mut k, mut v) = (vec![0f32; n * hd], vec![0f32; n * hd], vec![0f32; n * hd]);
            for i in 0..n {
                let row = &qkv[i * 3 * e..][..3 * e];
                let (c, s) = (&cos[i * hd..][..hd], &sin[i * hd..][..hd]);
                for (dst, part) in [(&mut q, 0), (&mut k, e)] {
                    let x = &row[part + h * hd..][..hd];
                    let d = &mut dst[i * hd..][..hd];
                    for j in 0..half {
                        d[j] = x[j] * c[j] + -x[j + half] * s[j];
                        d[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
                    }
                }
                v[i * hd..][..hd].copy_from_slice(&row[2 * e + h * hd..][..hd]);
            }
            [q, k, v]
        })
        .collect();
    let blocks = n.div_ceil(QB);
    let parts: Vec<(usize, usize, Vec<f32>)> = (0..heads * blocks)
        .into_par_iter()
        .map(|task| {
            let (h, b) = (task / blocks, task % blocks);
            let (q0, rows) = (b * QB, QB.min(n - b * QB));
            let [q, k, v] = &split[h];
            let mut p = vec![0f32; rows * n];
            // Scores: q rows against every key (k read transposed).
            product(rows, n, hd, &mut p, &q[q0 * hd..], (hd, 1), k, (1, hd));
            softmax_f32_rows(&mut p, n, scale);
            let mut o = vec![0f32; rows * hd];
            product(rows, hd, n, &mut o, &p, (n, 1), v, (hd, 1));
            (h, q0, o)
        })
        .collect();
    for (h, q0, o) in parts {
        for (i, src) in o.chunks(hd).enumerate() {
            out[(q0 + i) * e + h * hd..][..hd].copy_from_slice(src);
        }
    }
}

/// `dst[m, n] = lhs[m, k] rhs[k, n]` in f32, each operand given by its (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    l: (usize, usize),
    rhs: &[f32],
    r: (usize, usize),
) {
    let reach = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
    };
    assert!(dst.len() >= m * n && lhs.len() >= reach(m, k, l) && rhs.len() >= reach(k, n, r));
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: dst is m x n with row stride n; every element lhs and rhs's strides reach is
    // inside them (checked above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            l.1 as isize,
            l.0 as isize,
            rhs.as_ptr(),
            r.1 as isize,
            r.0 as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

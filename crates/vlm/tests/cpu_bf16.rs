//! The flex bf16-weight matmul (`cpu_bf16`) against burn's f32 matmul of the same bf16 values
//! widened to f32: equal up to f32 summation order and the one final bf16 rounding, for decode-
//! and prefill-sized row counts, odd widths, a bias, and the tied head's transposed weight. Paths
//! it must not take (autodiff, f32) give the input back untouched.

use burn::tensor::{DType, Device, Distribution, Tensor};
use vldac_vlm::cpu_bf16::try_matmul;

fn random<const D: usize>(shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::<D>::random(shape, Distribution::Uniform(-1.0, 1.0), (dev, DType::F32)).cast(DType::BF16)
}

/// Tests here run in parallel threads that all draw from flex's one generator, so a test that
/// seeds it and expects the next draw (the LoRA dropout mask) raced the others: in 2 of 200 runs
/// of this file the op and its reference drew different masks. Each test holds this for its
/// whole run; they take 0.1 s together.
fn device_rng() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A failed test poisons the lock; the others still run.
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A tensor's values, read as f32.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap()
}

/// Max of |got - want| / (|want| + floor), both read as f32.
fn rel_err<const D: usize>(got: Tensor<D>, want: Tensor<D>, floor: f32) -> f32 {
    let (g, w) = (values(got), values(want));
    assert_eq!(g.len(), w.len());
    g.iter().zip(&w).map(|(g, w)| (g - w).abs() / (w.abs() + floor)).fold(0.0, f32::max)
}

#[test]
fn bf16_weight_matmul_matches_f32_matmul() {
    let _rng = device_rng();
    let dev = Device::flex();
    // (rows as [b, s], k, n): decode (1, 3, 8 rows), the gemm path (334 rows), odd sizes.
    for &([b, s], k, n) in
        &[([1, 1], 1536, 256), ([3, 1], 37, 301), ([8, 1], 129, 1000), ([2, 167], 300, 517), ([1, 40], 1025, 33)]
    {
        let x = random([b, s, k], &dev);
        let xf = x.clone().cast(DType::F32);
        let bias = random([n], &dev);
        // Linear layout: w is [k, n] contiguous, with and without a bias.
        let w = random([k, n], &dev);
        let want = xf.clone().matmul(w.clone().cast(DType::F32).unsqueeze());
        let got = try_matmul(x.clone(), &w, None, false).expect("flex bf16 path");
        assert_eq!(got.dtype(), DType::BF16);
        assert_eq!(got.dims(), [b, s, n]);
        let e = rel_err(got, want.clone(), 0.05);
        assert!(e < 5e-3, "[{b},{s}]x{k}x{n}: relative error {e}");
        let want_b = want + bias.clone().cast(DType::F32).unsqueeze();
        let got = try_matmul(x.clone(), &w, Some(&bias), false).expect("flex bf16 path");
        let e = rel_err(got, want_b, 0.05);
        assert!(e < 5e-3, "[{b},{s}]x{k}x{n} + bias: relative error {e}");
        // Tied head: the weight is the transpose of a contiguous [n, k] embedding, f32 output.
        let emb = random([n, k], &dev);
        let want = xf.matmul(emb.clone().cast(DType::F32).transpose().unsqueeze());
        let got = try_matmul(x, &emb.transpose(), None, true).expect("flex bf16 path");
        assert_eq!(got.dtype(), DType::F32);
        // f32 holding bf16-rounded values (as the bf16 head followed by `.float()`).
        let bits = got.to_data().try_to_vec::<f32>().unwrap();
        assert!(bits.iter().all(|v| v.to_bits() & 0xFFFF == 0), "tied [{b},{s}]: f32 logits are not bf16 values");
        let e = rel_err(got, want, 0.05);
        assert!(e < 5e-3, "tied [{b},{s}]x{k}x{n}: relative error {e}");
    }
}

#[test]
fn other_paths_are_left_alone() {
    let _rng = device_rng();
    let dev = Device::flex();
    let w = random([16, 8], &dev);
    // f32 activations.
    let x = Tensor::<2>::ones([2, 16], (&dev, DType::F32));
    let back = try_matmul(x, &w, None, false).expect_err("f32 input is not ours");
    assert_eq!(back.dtype(), DType::F32);
    // Autodiff: the input comes back whole and still differentiable.
    let adev = dev.clone().autodiff();
    let x = random([2, 16], &adev).require_grad();
    let back = try_matmul(x, &w, None, false).expect_err("autodiff is not ours");
    assert!(back.is_require_grad());
    let wa = random([16, 8], &adev);
    let x = random([2, 16], &dev);
    let back = try_matmul(x, &wa, None, false).expect_err("autodiff weight is not ours");
    assert_eq!(back.dims(), [2, 16]);
}

/// The vision attention as transformers computes it, on burn's ops in f32: rotary on q and k
/// (rounded to bf16 afterwards when `round_rotary`, as a bf16 model does), then attention over
/// all patches. `qkv` `[n, 3 h hd]`, cos/sin `[n, 1, hd]`; returns `[n, h hd]`.
fn vision_attention_reference(
    qkv: &Tensor<2>,
    h: usize,
    cos: &Tensor<3>,
    sin: &Tensor<3>,
    round_rotary: bool,
) -> Tensor<2> {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use vldac_vlm::vision::apply_rotary;
    let [n, width] = qkv.dims();
    let hd = width / (3 * h);
    let part = |i: usize| qkv.clone().narrow(1, i * h * hd, h * hd).reshape([n, h, hd]).cast(DType::F32);
    let rot = |t: Tensor<3>| {
        let r = apply_rotary(t, cos.clone(), sin.clone());
        if round_rotary { r.cast(DType::BF16).cast(DType::F32) } else { r }
    };
    let heads_first = |t: Tensor<3>| t.swap_dims(0, 1).unsqueeze_dim::<4>(0);
    let out = attention(
        heads_first(rot(part(0))),
        heads_first(rot(part(1))),
        heads_first(part(2)),
        None,
        None,
        AttentionModuleOptions::default(),
    );
    out.squeeze_dim::<3>(0).swap_dims(0, 1).reshape([n, h * hd])
}

#[test]
fn bf16_vision_attention_matches_rotary_and_burn_attention_in_f32() {
    let _rng = device_rng();
    use vldac_vlm::cpu_bf16::try_vision_attention;
    let dev = Device::flex();
    // [n patches, heads, head dim]: the 2B vision tower's head size, a length across query blocks.
    let (n, h, hd) = (136, 3, 80);
    let qkv = random([n, 3 * h * hd], &dev);
    let angles = Tensor::<3>::random([n, 1, hd], Distribution::Uniform(-3.0, 3.0), (&dev, DType::F32));
    let (cos, sin) = (angles.clone().cos(), angles.sin());
    let want = vision_attention_reference(&qkv, h, &cos, &sin, true);
    match try_vision_attention(qkv, h, &cos, &sin) {
        Ok(got) => {
            assert_eq!(got.dtype(), DType::BF16);
            let e = rel_err(got, want, 0.05);
            assert!(e < 2e-2, "relative error {e}");
        }
        // Only CPUs without AVX512-BF16 (or non-x86) decline; the model then takes burn's path.
        Err(_) => eprintln!("skipped: this CPU has no AVX512-BF16, so try_vision_attention declines"),
    }
}

/// The f32 vision attention (our gemm-per-block kernel, rotary fused into the split) against
/// burn's rotary and attention on the same f32 values: equal up to f32 summation order.
#[test]
fn f32_vision_attention_matches_rotary_and_burn_attention() {
    let _rng = device_rng();
    use vldac_vlm::cpu_bf16::try_vision_attention;
    let dev = Device::flex();
    // 80-wide heads (the 2B tower's), 150 patches: two full query blocks and a partial one.
    let (n, h, hd) = (150, 3, 80);
    let qkv = Tensor::<2>::random([n, 3 * h * hd], Distribution::Uniform(-2.0, 2.0), (&dev, DType::F32));
    let angles = Tensor::<3>::random([n, 1, hd], Distribution::Uniform(-3.0, 3.0), (&dev, DType::F32));
    let (cos, sin) = (angles.clone().cos(), angles.sin());
    let want = vision_attention_reference(&qkv, h, &cos, &sin, false);
    match try_vision_attention(qkv, h, &cos, &sin) {
        Ok(got) => {
            assert_eq!(got.dtype(), DType::F32);
            let e = rel_err(got, want, 0.05);
            assert!(e < 1e-5, "relative error {e}");
        }
        Err(_) => eprintln!("skipped: this CPU has no AVX-512F, so the f32 vision attention declines"),
    }
}

#[test]
fn bf16_layer_norm_matches_the_f32_tensor_ops() {
    let _rng = device_rng();
    use burn::module::Param;
    use vldac_vlm::nn::LayerNorm;
    let dev = Device::flex();
    let ln = LayerNorm {
        weight: Param::from_tensor(random([80], &dev)),
        bias: Param::from_tensor(random([80], &dev)),
        eps: 1e-6,
    };
    let x = random([3, 37, 80], &dev).mul_scalar(4.0).add_scalar(1.5);
    // f32 input: the tensor-op path (the fused one only takes bf16).
    let want = ln.forward(x.clone().cast(DType::F32));
    assert_eq!(want.dtype(), DType::F32);
    let got = ln.forward(x);
    assert_eq!(got.dtype(), DType::BF16);
    let e = rel_err(got, want, 0.05);
    assert!(e < 1e-2, "relative error {e}");
}

#[test]
fn frozen_bf16_product_under_autodiff_matches_f32_gradients() {
    let _rng = device_rng();
    use vldac_vlm::cpu_bf16::matmul_last;
    let dev = Device::flex().autodiff();
    // (rows as [b, s], k, n): a prompt's worth of rows and a decode-sized one; the head's
    // transposed weight with f32 logits, as the model calls it.
    for &([b, s], k, n, tied) in &[([2, 45], 96, 130, false), ([1, 3], 64, 40, false), ([1, 70], 48, 300, true)] {
        let x = random([b, s, k], &dev).detach().require_grad();
        let w = if tied { random([n, k], &dev).transpose() } else { random([k, n], &dev) };
        let r = Tensor::<3>::random([b, s, n], Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
        // A loss on the last position only (as RL reads the scored tokens): the rows of dy that
        // are exactly zero skip the product and must still give exact zeros.
        let last = Tensor::<3>::ones([b, 1, n], (&dev, DType::F32));
        let r_last = Tensor::cat(vec![Tensor::<3>::zeros([b, s - 1, n], (&dev, DType::F32)), last], 1) * r.clone();
        // bf16 values, so the product's gradient (rounded to bf16 by the cast's backward) is the
        // reference's exactly; with f32 values the rounding of dy alone put the error at
        // 0.05-0.06 in 7 of 40 runs (random inputs) against the 0.05 bound.
        let bf16_values = |t: Tensor<3>| t.cast(DType::BF16).cast(DType::F32);
        for r in [bf16_values(r), bf16_values(r_last)] {
            let y = matmul_last(x.clone(), w.clone(), tied);
            let loss = (y.cast(DType::F32) * r.clone()).sum();
            let got = x.grad(&loss.backward()).expect("x gets a gradient");
            assert_eq!(got.dtype(), DType::BF16);
            // The reference: the same values in f32 through burn's own matmul and autodiff.
            let xf = x.clone().detach().cast(DType::F32).detach().require_grad();
            let yf = xf.clone().matmul(w.clone().cast(DType::F32).unsqueeze());
            let want = xf.grad(&(yf * r).sum().backward()).expect("reference gradient");
            // bf16 gradients: dy is rounded to bf16 before the product (the cast's backward), so
            // each of the n terms carries 2^-9 of relative error; burn's own bf16 path measures
            // 0.027 on the first case.
            let e = rel_err(got, want, 0.5);
            assert!(e < 5e-2, "[{b},{s}]x{k}x{n} tied {tied}: gradient relative error {e}");
        }
    }
}

#[test]
fn f32_head_under_autodiff_matches_burn_matmul_and_skips_only_zero_rows() {
    let _rng = device_rng();
    use vldac_vlm::cpu_bf16::head_last;
    let dev = Device::flex().autodiff();
    let f32_random =
        |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
    // (rows as [b, s], k, n); the tied head's transposed weight and a plain `[k, n]` one.
    for &([b, s], k, n, tied) in &[([2, 45], 96, 130, true), ([1, 70], 48, 300, false), ([3, 1], 32, 50, true)] {
        let x = f32_random([b, s, k]).detach().require_grad();
        let w2 = Tensor::<2>::random([n, k], Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
        let w = if tied { w2.transpose() } else { w2.reshape([k, n]) };
        let r = f32_random([b, s, n]);
        // Every row read; the last position only (the rest of dy exactly zero); and a -0.0 row
        // beside a row with a single non-zero entry.
        let last =
            Tensor::cat(vec![Tensor::<3>::zeros([b, s - 1, n], (&dev, DType::F32)), r.clone().narrow(1, s - 1, 1)], 1);
        let mut sparse = vec![0f32; b * s * n];
        sparse.iter_mut().step_by(n).for_each(|v| *v = -0.0);
        sparse[n.min(b * s * n - 1)] = 0.75;
        let sparse = Tensor::<3>::from_data(burn::tensor::TensorData::new(sparse, [b, s, n]), (&dev, DType::F32));
        for r in [r, last, sparse] {
            let y = head_last(x.clone(), w.clone(), true);
            assert_eq!(y.dims(), [b, s, n]);
            let got_y = values(y.clone());
            let got = x.grad(&(y * r.clone()).sum().backward()).expect("x gets a gradient");
            let xr = x.clone().detach().require_grad();
            // What the model ran before: burn's matmul over the rows, under its own autodiff.
            let yr = xr.clone().reshape([b * s, k]).matmul(w.clone()).reshape([b, s, n]);
            let want_y = values(yr.clone());
            let want = xr.grad(&(yr * r.clone()).sum().backward()).expect("reference gradient");
            assert_eq!(got_y, want_y, "[{b},{s}]x{k}x{n}: the forward is the same matmul");
            let (g, wv, rv) = (values(got), values(want), values(r));
            for (row, (g, wv)) in g.chunks(k).zip(wv.chunks(k)).enumerate() {
                if rv[row * n..][..n].iter().all(|&v| v == 0.0) {
                    assert!(g.iter().all(|&v| v == 0.0), "row {row}: zero dy gives a zero gradient");
                }
                for (a, e) in g.iter().zip(wv) {
                    assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "[{b},{s}]x{k}x{n} row {row}: {a} vs {e}");
                }
            }
        }
    }
    // The skipped rows are not multiplied at all: with an infinite weight, burn's `dy W^T` gives
    // NaN (0 x inf) in every row, the head's op zeros for the rows the loss does not read.
    let (k, n) = (16, 24);
    let x = f32_random([1, 3, k]).detach().require_grad();
    let mut wv = vec![0.5f32; k * n];
    wv[5] = f32::INFINITY;
    let w = Tensor::<2>::from_data(burn::tensor::TensorData::new(wv, [k, n]), (&dev, DType::F32));
    let mut rv = vec![0f32; 3 * n];
    rv[2 * n] = 1.0;
    let r = Tensor::<3>::from_data(burn::tensor::TensorData::new(rv, [1, 3, n]), (&dev, DType::F32));
    let g = values(x.grad(&(head_last(x.clone(), w, true) * r).sum().backward()).expect("x gets a gradient"));
    assert!(g[..2 * k].iter().all(|&v| v == 0.0), "rows 0 and 1 (zero dy) are skipped: {:?}", &g[..2 * k]);
}

#[test]
fn untracked_autodiff_inputs_take_the_kernels_and_stay_autodiff() {
    let _rng = device_rng();
    let adev = Device::flex().autodiff();
    // Untracked on the autodiff device, as the frozen vision tower is during LoRA training.
    let (x, w) = (random([40, 64], &adev), random([64, 24], &adev));
    let want = x.clone().cast(DType::F32).matmul(w.clone().cast(DType::F32));
    let got = try_matmul(x, &w, None, false).expect("untracked autodiff input is ours");
    assert!(!got.is_require_grad());
    let e = rel_err(got.clone(), want, 0.05);
    assert!(e < 5e-3, "relative error {e}");
    // The result is still an autodiff tensor: it mixes with a tracked one, whose gradient is
    // the product's value.
    let p = Tensor::<2>::ones([40, 24], (&adev, DType::F32)).require_grad();
    let loss = (got.clone().cast(DType::F32) * p.clone()).sum();
    let g = p.grad(&loss.backward()).expect("gradient of the tracked factor");
    let e = rel_err(g, got.cast(DType::F32), 0.05);
    assert!(e < 1e-6, "gradient differs from the product by {e}");
}

#[test]
fn bf16_rms_norm_matches_the_f32_tensor_ops() {
    let _rng = device_rng();
    use burn::module::Param;
    use vldac_vlm::nn::RmsNorm;
    let dev = Device::flex();
    let w = random([96], &dev);
    let norm = RmsNorm { weight: Param::from_tensor(w.clone()), eps: 1e-6 };
    let reference = RmsNorm { weight: Param::from_tensor(w.cast(DType::F32)), eps: 1e-6 };
    let x = random([2, 41, 96], &dev).mul_scalar(3.0).add_scalar(0.5);
    let want = reference.forward(x.clone().cast(DType::F32));
    assert_eq!(want.dtype(), DType::F32);
    let got = norm.forward(x);
    assert_eq!(got.dtype(), DType::BF16);
    // Two bf16 roundings (after the normalisation and after the weight), as transformers does.
    let e = rel_err(got, want, 0.05);
    assert!(e < 1.2e-2, "relative error {e}");
}

#[test]
fn bf16_gelu_epilogues_match_the_f32_product_and_activation() {
    let _rng = device_rng();
    use burn::tensor::activation::sigmoid;
    use vldac_vlm::cpu_bf16::{Epilogue, try_matmul_then};
    let dev = Device::flex();
    // Prompt-sized (the dp panels, two blocks of k, the activation and rounding inside the
    // kernel's tasks; 600 rows narrow the tasks' columns) and decode-sized row counts.
    for &(m, k, n) in &[(334, 300, 517), (600, 260, 130), (3, 64, 96)] {
        let x = random([m, k], &dev);
        let (w, bias) = (random([k, n], &dev), random([n], &dev));
        let v =
            x.clone().cast(DType::F32).matmul(w.clone().cast(DType::F32)) + bias.clone().cast(DType::F32).unsqueeze();
        let want = v.clone() * sigmoid(v.clone().mul_scalar(1.702));
        let got = try_matmul_then(x.clone(), &w, Some(&bias), false, Epilogue::QuickGelu).expect("flex bf16 path");
        assert_eq!((got.dtype(), got.dims()), (DType::BF16, [m, n]));
        let e = rel_err(got, want, 0.05);
        assert!(e < 2e-2, "{m}x{k}x{n}: relative error {e}");
        // The merger's exact GELU against burn's (erf) on the f32 product.
        let want = burn::tensor::activation::gelu(v);
        let got = try_matmul_then(x, &w, Some(&bias), false, Epilogue::Gelu).expect("flex bf16 path");
        let e = rel_err(got, want, 0.05);
        assert!(e < 2e-2, "{m}x{k}x{n} exact GELU: relative error {e}");
    }
}

#[test]
fn bf16_swiglu_matches_the_f32_products_and_silu() {
    let _rng = device_rng();
    use burn::tensor::activation::silu;
    use vldac_vlm::cpu_bf16::try_swiglu;
    let dev = Device::flex();
    // A prompt-sized row count (the dp panels) and a decode-sized one (the streaming kernel).
    for &(b, s, k, n) in &[(1, 40, 130, 200), (2, 300, 300, 330), (3, 1, 64, 96)] {
        let x = random([b, s, k], &dev);
        let (gate, up) = (random([k, n], &dev), random([k, n], &dev));
        let xf = x.clone().cast(DType::F32);
        // transformers' bf16 MLP rounds each projection, the activation and the product to bf16;
        // the reference does too, so the two differ only where the sums' order moves a
        // projection across a rounding boundary: one bf16 step in `g` or `u`. silu
        // magnifies a relative change of `g` by its condition number `1 + g (1 - sigmoid(g))`
        // (about 5 at g = -5), so the bound is per element: a flat 2e-2 failed in 2 of 200
        // runs, always where the gate was large and negative.
        let round = |t: Tensor<3>| t.cast(DType::BF16).cast(DType::F32);
        let product = |w: &Tensor<2>| round(xf.clone().matmul(w.clone().cast(DType::F32).unsqueeze()));
        let (g, u) = (product(&gate), product(&up));
        let want = round(round(silu(g.clone())) * u);
        match try_swiglu(x, &gate, &up) {
            Ok(got) => {
                assert_eq!(got.dtype(), DType::BF16);
                assert_eq!(got.dims(), [b, s, n]);
                let (got, want, g) = (values(got), values(want), values(g));
                // One bf16 step (at most 2^-7 of the value) in g (times the condition), one in u,
                // and one in each of the two roundings after.
                let e = got.iter().zip(&want).zip(&g).fold(0f32, |worst, ((got, want), g)| {
                    let condition = (1.0 + g * (1.0 - 1.0 / (1.0 + (-g).exp()))).abs();
                    let bound = want.abs() * (condition + 3.0) / 128.0 + 1e-3;
                    worst.max((got - want).abs() / bound)
                });
                assert!(e <= 1.0, "[{b},{s}]x{k}x{n}: error {e} of the rounding bound");
            }
            Err(_) => panic!("bf16 on flex always takes try_swiglu (widening kernels without AVX512-BF16)"),
        }
    }
}

#[test]
fn bf16_text_attention_matches_burn_attention_in_f32_with_gqa_and_masks() {
    let _rng = device_rng();
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Bool, TensorData};
    use vldac_vlm::cpu_bf16::{text_attention, text_attention_applies};
    let dev = Device::flex();
    // 2 rows, 71 keys (odd: the kernel pads one; two blocks of queries, the first skipping the
    // keys after its last query), 4 query heads over 2 key/value heads; row 1 has
    // 3 left-padding tokens (a padding query sees only itself, as `Qwen2Vl::mask` builds it).
    let (b, s, h, kvh, hd) = (2, 71, 4, 2, 16);
    let (q, k, v) = (random([b, s, h * hd], &dev), random([b, s, kvh * hd], &dev), random([b, s, kvh * hd], &dev));
    let angles = Tensor::<4>::random([b, 1, s, hd], Distribution::Uniform(-3.0, 3.0), (&dev, DType::F32));
    let (cos, sin) = (angles.clone().cos().cast(DType::BF16), angles.sin().cast(DType::BF16));
    if !text_attention_applies(&q, &k, &v, &cos, &sin, hd) {
        eprintln!("skipped: this CPU has no AVX512-BF16, so the text attention kernel is not used");
        return;
    }
    let pad = [0, 3];
    let mut blocked = Vec::new();
    for &p in &pad {
        for i in 0..s {
            for j in 0..s {
                blocked.push((j < p || j > i) && j != i);
            }
        }
    }
    let mask = Tensor::<4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, s]), &dev);
    // The reference rotates in bf16 tensor ops (as the model's other path and transformers do),
    // then attends in f32.
    let heads_first = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
    let rotated = |t: Tensor<3>, n: usize| {
        vldac_vlm::vision::apply_rotary(heads_first(t, n), cos.clone(), sin.clone()).cast(DType::F32)
    };
    // GQA reference: each key/value head repeated for its query heads (transformers' repeat_kv).
    let repeat = |t: Tensor<4>| t.unsqueeze_dim::<5>(2).expand([b, kvh, h / kvh, s, hd]).reshape([b, h, s, hd]);
    let want = attention(
        rotated(q.clone(), h),
        repeat(rotated(k.clone(), kvh)),
        repeat(heads_first(v.clone(), kvh).cast(DType::F32)),
        Some(mask.clone().expand([b, h, s, s])),
        None,
        AttentionModuleOptions::default(),
    );
    let want: Tensor<3> = want.swap_dims(1, 2).reshape([b, s, h * hd]);
    let want_k = vldac_vlm::vision::apply_rotary(heads_first(k.clone(), kvh), cos.clone(), sin.clone());
    let (got, got_k) = text_attention(q, k, v, &cos, &sin, mask, h, kvh);
    assert_eq!(got.dtype(), DType::BF16);
    // Outputs are averages of values in (-1, 1), mostly of size 0.1-0.3; the kernel rounds
    // probabilities to bf16 before `p v`, so a floor of 0.05 let random inputs reach 0.021-0.026
    // (2 of 40 runs).
    let e = rel_err(got, want, 0.25);
    assert!(e < 1e-2, "relative error {e}");
    // The rotated keys (for the cache) are the bf16 tensor ops' values exactly.
    let (got_k, want_k) = (values(heads_first(got_k, kvh)), values(want_k));
    assert_eq!(got_k, want_k, "rotated keys differ from apply_rotary in bf16");
}

#[test]
fn bf16_gated_silu_matches_f32_values_and_gradients() {
    let _rng = device_rng();
    use burn::tensor::activation::silu;
    use vldac_vlm::cpu_bf16::gated::silu_mul;
    let dev = Device::flex();
    let adev = dev.clone().autodiff();
    let (g, u) = (random([3, 5, 70], &dev).mul_scalar(4.0), random([3, 5, 70], &dev).mul_scalar(2.0));
    let weights = Tensor::<3>::random([3, 5, 70], Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
    // Forward outside autodiff.
    let want = silu(g.clone().cast(DType::F32)) * u.clone().cast(DType::F32);
    let got = silu_mul(g.clone(), u.clone());
    assert_eq!(got.dtype(), DType::BF16);
    let e = rel_err(got, want.clone(), 0.05);
    assert!(e < 1.2e-2, "forward: relative error {e}");
    // f32 inputs take the one-pass f32 path: burn's f32 ops' values up to the sigmoid's rounding.
    let got = silu_mul(g.clone().cast(DType::F32), u.clone().cast(DType::F32));
    assert_eq!(got.dtype(), DType::F32);
    let e = rel_err(got, want, 0.05);
    assert!(e < 1e-5, "f32 forward: relative error {e}");
    // Under autodiff: the gradients of sum(w * silu(g) u) against burn's f32 autodiff.
    let track =
        |t: &Tensor<3>, dtype| Tensor::<3>::from_data(t.to_data(), (&adev, DType::BF16)).cast(dtype).require_grad();
    let (gb, ub) = (track(&g, DType::BF16), track(&u, DType::BF16));
    let (gf, uf) = (track(&g, DType::F32), track(&u, DType::F32));
    let w = Tensor::<3>::from_data(weights.to_data(), (&adev, DType::F32));
    let y = silu_mul(gb.clone(), ub.clone());
    let grads = (y.cast(DType::F32) * w.clone()).sum().backward();
    let grads_f = (silu(gf.clone()) * uf.clone() * w).sum().backward();
    let host = |t: Tensor<3>| Tensor::<3>::from_data(t.to_data().convert::<f32>(), (&dev, DType::F32));
    for (name, got, want) in [
        ("g", gb.grad(&grads).expect("dg"), gf.grad(&grads_f).expect("dg f32")),
        ("u", ub.grad(&grads).expect("du"), uf.grad(&grads_f).expect("du f32")),
    ] {
        let e = rel_err(host(got), host(want), 0.1);
        assert!(e < 3e-2, "d{name}: relative error {e}");
    }
}

/// The LoRA projection's own autodiff op (bf16 base, f32 adapters) against the same function in
/// f32 burn ops: output, and the gradients of `x`, `A` and `B`; with dropout, against the same
/// mask (the op seeds it from the device's generator, as burn's `Dropout` draws from it).
#[cfg(target_arch = "x86_64")]
#[test]
fn lora_product_under_autodiff_matches_f32_reference() {
    let _rng = device_rng();
    use burn::module::Param;
    use burn::nn::Linear;
    use vldac_vlm::nn::LoraLinear;
    let dev = Device::flex().autodiff();
    // (rows as [b, s], k, n, bias, dropout, loss on the last row only)
    for &([b, s], k, n, bias, p, last_only) in &[
        ([2, 45], 96, 130, true, 0.0, false),
        ([1, 7], 64, 600, false, 0.0, true),
        ([1, 33], 80, 70, true, 0.25, false),
    ] {
        let base = Linear {
            weight: Param::from_tensor(random([k, n], &dev)).set_require_grad(false),
            bias: bias.then(|| Param::from_tensor(random([n], &dev)).set_require_grad(false)),
        };
        let mut lin = LoraLinear { base, lora: None };
        lin.add_lora(8, 16.0, p, 3, &dev);
        // A fresh B is zero; give it values so every term of the product shows.
        let l = lin.lora.as_mut().unwrap();
        l.b = Param::from_tensor(
            Tensor::<2>::random([8, n], Distribution::Uniform(-0.5, 0.5), (&dev, DType::F32)).require_grad(),
        );
        let (a, bw, scaling) = (l.a.val(), l.b.val(), l.scaling);
        let x = random([b, s, k], &dev).detach().require_grad();
        let mut r = Tensor::<3>::random([b, s, n], Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
        if last_only {
            let zeros = Tensor::<3>::zeros([b, s - 1, n], (&dev, DType::F32));
            r = Tensor::cat(vec![zeros, r.narrow(1, s - 1, 1)], 1);
        }
        // bf16 values, so the output's gradient (rounded to bf16 by the cast's backward) is the
        // reference's exactly.
        let r = r.cast(DType::BF16).cast(DType::F32);
        dev.seed(11);
        let y = lin.forward(x.clone(), true);
        assert_eq!(y.dtype(), DType::BF16);
        let grads = (y.clone().cast(DType::F32) * r.clone()).sum().backward();
        let (gx, ga, gb) = (x.grad(&grads).unwrap(), a.grad(&grads).unwrap(), bw.grad(&grads).unwrap());
        assert_eq!(gx.dtype(), DType::BF16);
        assert_eq!((ga.dtype(), gb.dtype()), (DType::F32, DType::F32));
        // Reference: all f32, burn's ops, the same keep mask (same seed, same draw).
        let xf = x.clone().detach().cast(DType::F32).detach().require_grad();
        let (af, bf) = (a.clone().detach().require_grad(), bw.clone().detach().require_grad());
        dev.seed(11);
        let xd = if p > 0.0 {
            let keep = vldac_vlm::cpu_bf16::keep_mask(vldac_vlm::cpu_bf16::draw_dropout_seed(), b * s * k, 1.0 - p);
            let keep: Vec<f32> = keep.iter().map(|&kept| if kept { 1.0 } else { 0.0 }).collect();
            let keep = Tensor::<3>::from_data(burn::tensor::TensorData::new(keep, [b, s, k]), (&dev, DType::F32));
            xf.clone() * keep / (1.0 - p)
        } else {
            xf.clone()
        };
        let w32 = lin.base.weight.val().cast(DType::F32);
        let mut yf = xf.clone().matmul(w32.unsqueeze());
        if let Some(bb) = &lin.base.bias {
            yf = yf + bb.val().cast(DType::F32).unsqueeze();
        }
        let h = xd.matmul(af.clone().unsqueeze()).mul_scalar(scaling);
        let yf = yf + h.matmul(bf.clone().unsqueeze());
        let g = (yf.clone() * r).sum().backward();
        let case = format!("[{b},{s}]x{k}x{n} bias {bias} dropout {p} last-only {last_only}");
        // Two bf16 roundings (the base product's, then the sum's) of values of size ~3: the
        // floor keeps sums that cancel to ~0 from dividing those absolute errors by ~0.
        let e = rel_err(y, yf.detach(), 1.0);
        assert!(e < 1e-2, "{case}: output relative error {e}");
        for (name, got, want, tol) in [
            // x: the two branches' gradients are rounded to bf16 and summed in bf16.
            ("x", gx.cast(DType::F32).reshape([b * s, k]), xf.grad(&g).unwrap().reshape([b * s, k]), 3e-2),
            // A and B: f32 from the same (bf16) output gradient, up to summation order.
            ("A", ga, af.grad(&g).unwrap(), 1e-4),
            ("B", gb, bf.grad(&g).unwrap(), 1e-4),
        ] {
            let e = rel_err(got, want, 0.5);
            assert!(e < tol, "{case}: gradient of {name}: relative error {e}");
        }
    }
}

/// The prompt attention's own autodiff op (rotary + GQA attention on bf16 q, k, v) against
/// burn's attention and autodiff on the same values in f32: output and the gradients of q, k, v,
/// with left padding, an odd length and a loss that weights every position.
#[cfg(target_arch = "x86_64")]
#[test]
fn prompt_attention_under_autodiff_matches_f32_gradients() {
    let _rng = device_rng();
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::{Bool, TensorData};
    use vldac_vlm::cpu_bf16::attention_grad::{applies, prompt_attention};
    let dev = Device::flex().autodiff();
    let (b, s, h, kvh, hd) = (2, 71, 4, 2, 16);
    let tracked = |t: Tensor<3>| t.detach().require_grad();
    let (q, k, v) = (
        tracked(random([b, s, h * hd], &dev)),
        tracked(random([b, s, kvh * hd], &dev)),
        tracked(random([b, s, kvh * hd], &dev)),
    );
    let angles = Tensor::<4>::random([b, 1, s, hd], Distribution::Uniform(-3.0, 3.0), (&dev, DType::F32));
    let (cos, sin) = (angles.clone().cos().cast(DType::BF16), angles.sin().cast(DType::BF16));
    if !applies(&q, &k, &v, &cos, &sin, hd) {
        eprintln!("skipped: this CPU has no AVX512-BF16, so the prompt attention op is not used");
        return;
    }
    let pad = [0, 3];
    let mut blocked = Vec::new();
    for &p in &pad {
        for i in 0..s {
            for j in 0..s {
                blocked.push((j < p || j > i) && j != i);
            }
        }
    }
    let mask = Tensor::<4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, s]), &dev);
    let r = Tensor::<3>::random([b, s, h * hd], Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32))
        .cast(DType::BF16)
        .cast(DType::F32);
    let got = prompt_attention(q.clone(), k.clone(), v.clone(), &cos, &sin, mask.clone(), h, kvh);
    assert_eq!(got.dtype(), DType::BF16);
    let grads = (got.clone().cast(DType::F32) * r.clone()).sum().backward();
    // Reference in f32 from the same bf16 values.
    let f = |t: &Tensor<3>| t.clone().detach().cast(DType::F32).detach().require_grad();
    let (qf, kf, vf) = (f(&q), f(&k), f(&v));
    let heads_first = |t: Tensor<3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
    let (c32, s32) = (cos.clone().cast(DType::F32), sin.clone().cast(DType::F32));
    let rotated = |t: Tensor<3>, n: usize| vldac_vlm::vision::apply_rotary(heads_first(t, n), c32.clone(), s32.clone());
    let repeat = |t: Tensor<4>| t.unsqueeze_dim::<5>(2).expand([b, kvh, h / kvh, s, hd]).reshape([b, h, s, hd]);
    let want = attention(
        rotated(qf.clone(), h),
        repeat(rotated(kf.clone(), kvh)),
        repeat(heads_first(vf.clone(), kvh)),
        Some(mask.expand([b, h, s, s])),
        None,
        AttentionModuleOptions::default(),
    );
    let want: Tensor<3> = want.swap_dims(1, 2).reshape([b, s, h * hd]);
    let g = (want.clone() * r).sum().backward();
    let e = rel_err(got, want.detach(), 0.25);
    assert!(e < 1e-2, "output: relative error {e}");
    for (name, got, want) in
        [("q", q.grad(&grads), qf.grad(&g)), ("k", k.grad(&grads), kf.grad(&g)), ("v", v.grad(&grads), vf.grad(&g))]
    {
        let (got, want) = (got.expect("op gradient"), want.expect("reference gradient"));
        assert_eq!(got.dtype(), DType::BF16, "{name}");
        let e = rel_err(got, want, 0.25);
        assert!(e < 3e-2, "gradient of {name}: relative error {e}");
    }
}

/// Dropout's keep mask: the kept fraction is `p_keep` within 5 standard deviations, the scaling
/// is applied by the op (kept inputs times 1/p_keep), the mask is a prefix-stable function of its
/// seed (chunks drawn in parallel give the same stream as one long draw) and seeds differ.
#[cfg(target_arch = "x86_64")]
#[test]
fn dropout_keep_mask_has_the_right_rate_and_is_reproducible() {
    let _rng = device_rng();
    use vldac_vlm::cpu_bf16::keep_mask;
    for p_keep in [0.9, 0.5, 0.75] {
        let n = 200_003;
        let m = keep_mask(42, n, p_keep);
        let kept = m.iter().filter(|&&k| k).count() as f64;
        let sd = (n as f64 * p_keep * (1.0 - p_keep)).sqrt();
        assert!((kept - n as f64 * p_keep).abs() < 5.0 * sd, "p_keep {p_keep}: kept {kept} of {n}");
        assert_eq!(keep_mask(42, 50_000, p_keep), m[..50_000], "prefix of the same stream");
        let other = keep_mask(43, n, p_keep);
        assert!(other.iter().zip(&m).filter(|(a, b)| a != b).count() > n / 20, "another seed, another mask");
    }
    assert!(keep_mask(7, 1000, 1.0).iter().all(|&k| k));
    assert!(keep_mask(7, 1000, 0.0).iter().all(|&k| !k));
}

/// For f32 weights (burn's matmul), `linear_then` applies the activation in place on the product:
/// the same values as burn's tensor-op activations, for both GELUs.
#[test]
fn f32_linear_then_applies_the_activation_in_place() {
    let _rng = device_rng();
    use burn::module::Param;
    use burn::nn::Linear;
    use burn::tensor::activation::{gelu, sigmoid};
    use vldac_vlm::cpu_bf16::{Epilogue, linear_then};
    let dev = Device::flex();
    let f = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Uniform(-1.0, 1.0), (&dev, DType::F32));
    let (m, k, n) = (300, 64, 130);
    let l = Linear { weight: Param::from_tensor(f([k, n])), bias: Some(Param::from_tensor(f([1, n]).reshape([n]))) };
    let x = f([m, k]);
    let v = l.forward(x.clone());
    let quick = |t: Tensor<2>| t.clone() * sigmoid(t.mul_scalar(1.702));
    for (epilogue, want) in [(Epilogue::QuickGelu, quick(v.clone())), (Epilogue::Gelu, gelu(v))] {
        let got = linear_then(&l, x.clone(), epilogue, |_| panic!("the in-place path applies to f32 on flex"));
        let e = rel_err(got, want, 0.05);
        assert!(e < 1e-5, "{epilogue:?}: relative error {e}");
    }
}

/// A weight kept packed (the vision tower's, `keep_packed`) gives the very products of packing
/// per call, is packed at its first product with many rows, and its panels go with it: a weight
/// computed from it afterwards (flex may reuse a unique tensor's bytes) never meets them.
#[cfg(target_arch = "x86_64")]
#[test]
fn kept_weights_give_the_same_products_and_go_with_their_weight() {
    let _rng = device_rng();
    use burn::module::Param;
    use burn::nn::Linear;
    use vldac_vlm::cpu_bf16::{dpbf16, keep_packed, kept_packed, linear};
    if !dpbf16::available() {
        eprintln!("skipped: this CPU has no AVX512-BF16 (vdpbf16ps)");
        return;
    }
    let dev = Device::flex();
    let (m, k, n) = (40, 96, 200);
    // As a bf16 checkpoint's projection loads on flex: its [out, in] matrix used transposed.
    let linear_of = |stored: Tensor<2>, bias: &Tensor<1>| Linear {
        weight: Param::from_tensor(stored.transpose()),
        bias: Some(Param::from_tensor(bias.clone())),
    };
    let (stored, bias, x) = (random([n, k], &dev), random([n], &dev), random([m, k], &dev));
    let l = linear_of(stored.clone(), &bias);
    let (kept, packed) = kept_packed();
    let want = values(linear(&l, x.clone()));
    // Few rows take the dot kernel, whose sums are ordered otherwise than the panel kernel's (a
    // CI run saw one value round to the neighbouring bf16), so it is compared with itself.
    let want_decode = values(linear(&l, x.clone().narrow(0, 0, 3)));
    keep_packed(&l);
    keep_packed(&l);
    assert_eq!(kept_packed(), (kept + 1, packed), "registered once, not packed yet");
    assert_eq!(values(linear(&l, x.clone().narrow(0, 0, 3))), want_decode, "a decode-sized product");
    assert_eq!(kept_packed(), (kept + 1, packed), "decode reads the weight in place");
    assert_eq!(values(linear(&l, x.clone())), want, "products from the kept panels");
    assert_eq!(kept_packed(), (kept + 1, packed + 1));

    // The weight changed: `stored` is the last holder of its bytes once `l` is gone.
    drop(l);
    let changed = stored.add_scalar(0.5);
    assert_eq!(kept_packed(), (kept, packed), "the panels went with their weight");
    let l = linear_of(changed.clone(), &bias);
    let got = linear(&l, x.clone());
    let want =
        x.clone().cast(DType::F32).matmul(changed.cast(DType::F32).transpose()) + bias.cast(DType::F32).unsqueeze();
    let e = rel_err(got, want, 0.05);
    assert!(e < 5e-3, "the changed weight's product: relative error {e}");

    // A model loads its parameters tracked (training freezes them later): kept all the same.
    let adev = dev.clone().autodiff();
    let tracked = Linear { weight: Param::from_tensor(random([k, n], &adev)), bias: None };
    keep_packed(&tracked);
    assert_eq!(kept_packed().0, kept + 1, "a tracked parameter's storage");
}

//! Qwen2-VL on CPU (flex backend): forward and greedy generation of the tiny fixture checkpoint
//! `crates/vlm/fixtures/tiny_a`, the same prompt that `crates/vlm/fixtures/bench_hf.py` times
//! with HF transformers (run both and compare; see crates/vlm/README.md). `vlm_bf16/*`: the flex
//! bf16 products at Qwen2-VL-2B widths, AVX512-BF16 dot products (`dp`) against widening the
//! weight to f32 for gemm's f32 kernel (`widen`, what non-AVX512-BF16 CPUs run).

use std::path::PathBuf;

use burn::tensor::Device;
use criterion::{Criterion, criterion_group, criterion_main};
use vldac_vlm::image_proc::load_image;
use vldac_vlm::{Batch, ChatMessage, GenerateConfig, Vlm, generate};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/vlm/fixtures")
}

fn vlm(c: &mut Criterion) {
    let dev = Device::flex();
    let vlm = Vlm::from_dir(&fixtures().join("tiny_a"), &dev).expect("fixture checkpoint");
    let imgs = ["img_56x84", "img_50x70"]
        .iter()
        .map(|n| load_image(&fixtures().join("images").join(format!("{n}.png"))).expect("image"))
        .collect::<Vec<_>>();
    let msgs = [ChatMessage::user_with_images(2, "What is in these pictures? Answer in 12 words.")];
    let prompt = vlm.prompt(&msgs, &imgs).expect("prompt");
    let batch = Batch::left_padded(std::slice::from_ref(&prompt), vlm.pad_id()).expect("batch");
    c.bench_function("vlm/tiny_a_preprocess_2_images", |b| b.iter(|| vlm.prompt(&msgs, &imgs).expect("prompt")));
    c.bench_function("vlm/tiny_a_forward_2_images", |b| {
        b.iter(|| {
            let out = vlm.model.forward(&batch, None, true).expect("forward");
            out.logits.into_data()
        })
    });
    // No stop tokens: always exactly 32 new tokens, as in bench_hf.py.
    let cfg = GenerateConfig::greedy(32);
    c.bench_function("vlm/tiny_a_generate_32_tokens", |b| {
        b.iter(|| generate(&vlm.model, std::slice::from_ref(&prompt), &cfg, vlm.pad_id(), true).expect("generate"))
    });
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_products(_: &mut Criterion) {
    eprintln!("vlm_bf16: skipped, AVX512-BF16 is an x86-64 extension");
}

/// `len` deterministic values in [-0.5, 0.5) (a product's operand; `step` a prime).
#[cfg(target_arch = "x86_64")]
fn operand(len: usize, step: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * step) % 1000) as f32 / 1000.0 - 0.5).collect()
}

#[cfg(target_arch = "x86_64")]
fn bf16_products(c: &mut Criterion) {
    use burn::tensor::bf16;
    use vldac_vlm::cpu_bf16::{WeightLayout, dpbf16, matmul_f32_out};
    if !dpbf16::available() {
        eprintln!("vlm_bf16: skipped, this CPU has no AVX512-BF16");
        return;
    }
    // As the `vldac` binary runs: freed blocks stay in the process (no page faults per call).
    vldac_vlm::host_alloc::keep_freed_memory();
    let mut g = c.benchmark_group("vlm_bf16");
    g.sample_size(10);
    // (name, rows, k, n, layout): the vision MLP's first product over one 448x448 image, a decode
    // step's MLP product at batch 8, the tied LM head at batch 1.
    let bf16_operand =
        |len: usize, step: usize| -> Vec<bf16> { operand(len, step).into_iter().map(bf16::from_f32).collect() };
    for (name, m, k, n, layout) in [
        ("vision_fc1_1024x1280x5120", 1024, 1280, 5120, WeightLayout::InOut),
        ("decode_b8_up_8x1536x8960", 8, 1536, 8960, WeightLayout::InOut),
        ("decode_b8_up_outin_8x1536x8960", 8, 1536, 8960, WeightLayout::OutIn),
        ("decode_b8_down_outin_8x8960x1536", 8, 8960, 1536, WeightLayout::OutIn),
        ("decode_b8_head_8x1536x151936", 8, 1536, 151936, WeightLayout::OutIn),
        ("decode_b1_head_1x1536x151936", 1, 1536, 151936, WeightLayout::OutIn),
        ("prefill_up_334x1536x8960", 334, 1536, 8960, WeightLayout::InOut),
        ("prefill_down_334x8960x1536", 334, 8960, 1536, WeightLayout::InOut),
        ("prefill_head_334x1536x151936", 334, 1536, 151936, WeightLayout::OutIn),
    ] {
        let (x, w) = (bf16_operand(m * k, 7919), bf16_operand(k * n, 104729));
        let xf: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
        let mut out = vec![0f32; m * n];
        g.bench_function(format!("{name}/dp"), |b| b.iter(|| dpbf16::matmul(&x, m, k, &w, n, layout, None, &mut out)));
        g.bench_function(format!("{name}/widen"), |b| {
            b.iter(|| matmul_f32_out(&xf, m, k, &w, n, layout, None, &mut out))
        });
    }
    // The text model's prompt products as a checkpoint loads them (`[out, in]` views, packed on
    // every call) with four weights cycled, 110 MB / 110 MB, so that each comes from memory as in
    // a 28-layer prefill and not from the 32 MiB L3.
    for (name, m, k, n) in [
        ("prefill_up_outin_cycled_334x1536x8960", 334, 1536, 8960),
        ("prefill_down_outin_cycled_334x8960x1536", 334, 8960, 1536),
    ] {
        let x = bf16_operand(m * k, 7919);
        let ws: Vec<Vec<bf16>> = (0..4).map(|i| bf16_operand(k * n, 104729 + 2 * i)).collect();
        let mut out = vec![0f32; m * n];
        let mut i = 0;
        g.bench_function(format!("{name}/dp"), |b| {
            b.iter(|| {
                i = (i + 1) % ws.len();
                dpbf16::matmul(&x, m, k, &ws[i], n, WeightLayout::OutIn, None, &mut out)
            })
        });
    }
    // The vision tower's attention over one 448x448 image: 1,024 patches, 16 heads of 80.
    let (n, heads, hd) = (1024, 16, 80);
    let qkv: Vec<Vec<bf16>> = (0..3).map(|i| bf16_operand(n * heads * hd, 7919 + 2 * i)).collect();
    let mut out = vec![bf16::ZERO; n * heads * hd];
    g.bench_function("vision_attention_1024x16x80/dp", |b| {
        b.iter(|| dpbf16::attention(&qkv[0], &qkv[1], &qkv[2], n, heads, hd, 0.11, &mut out))
    });
    g.finish();
}

/// The f32 decode kernels: the MLP's up product (`[in, out]`, streamed) and the tied head
/// (`[out, in]`, dotted), batch 1 and 8.
#[cfg(target_arch = "x86_64")]
fn small_f32_products(c: &mut Criterion) {
    use vldac_vlm::cpu_bf16::{WeightLayout, small_f32};
    if !small_f32::available() {
        eprintln!("vlm_f32_decode: skipped, this CPU has no AVX-512F");
        return;
    }
    let mut g = c.benchmark_group("vlm_f32_decode");
    g.sample_size(10);
    for (name, m, k, n, layout) in [
        ("b8_up_8x1536x8960", 8, 1536, 8960, WeightLayout::InOut),
        ("b1_up_1x1536x8960", 1, 1536, 8960, WeightLayout::InOut),
        ("b8_head_8x1536x151936", 8, 1536, 151936, WeightLayout::OutIn),
        ("b1_head_1x1536x151936", 1, 1536, 151936, WeightLayout::OutIn),
    ] {
        let (x, w) = (operand(m * k, 7919), operand(k * n, 104729));
        let mut out = vec![0f32; m * n];
        g.bench_function(name, |b| b.iter(|| small_f32::matmul(&x, m, k, &w, n, layout, None, &mut out)));
    }
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn small_f32_products(_: &mut Criterion) {}

criterion_group!(benches, vlm, bf16_products, small_f32_products);
criterion_main!(benches);

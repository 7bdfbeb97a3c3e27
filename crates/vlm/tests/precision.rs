//! The dtype rules: a bf16 (or f16) base keeps LoRA adapters and the value head in f32, so an
//! Adam step far below bf16's resolution still changes them; base weights are stored in the
//! requested precision, read straight from the checkpoint.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{DType, Tensor};
use common::*;
use vldac_vlm::{Batch, LoraConfig, Prompt, Qwen2Vl, Qwen2VlConfig, ValueHeadConfig, apply_lora};

/// Collects every float parameter's dtype, split into LoRA adapters and the rest.
#[derive(Default)]
struct Dtypes {
    adapters: Vec<DType>,
    base: Vec<DType>,
    adapter_ids: Vec<burn::module::ParamId>,
}

impl ModuleVisitor for Dtypes {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        // LoRA parameters are the only trainable ones after `apply_lora`.
        if p.is_require_grad() {
            self.adapters.push(p.val().dtype());
            self.adapter_ids.push(p.id);
        } else {
            self.base.push(p.val().dtype());
        }
    }
}

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
    }
}

#[test]
fn half_precision_base_keeps_adapters_and_value_head_f32() {
    for dtype in [DType::BF16, DType::F16] {
        let dev = test_device().autodiff();
        let model = Qwen2Vl::random_as(&Qwen2VlConfig::tiny(), 3, &dev, dtype).unwrap();
        let model = apply_lora(model, &lora()).unwrap();
        let mut seen = Dtypes::default();
        model.visit(&mut seen);
        assert!(!seen.adapters.is_empty() && !seen.base.is_empty());
        assert!(seen.adapters.iter().all(|d| *d == DType::F32), "{dtype:?}: adapters {:?}", seen.adapters);
        assert!(seen.base.iter().all(|d| *d == dtype), "{dtype:?}: base weights {:?}", seen.base);
        let head = ValueHeadConfig { hidden_size: model.config.text.hidden_size, layers: vec![16] }.init(&dev);
        assert_eq!(head.layers[0].weight.val().dtype(), DType::F32);
    }
}

fn adapter_a(model: &Qwen2Vl) -> Vec<f32> {
    model.model.projections().iter().filter_map(|(_, p)| p.lora.as_ref().map(|l| to_vec(l.a.val()))).flatten().collect()
}

fn step(model: Qwen2Vl, optim: &mut ModuleOptimizer, lr: f64) -> Qwen2Vl {
    // A short text prompt; the loss is the mean of the last position's logits.
    let batch = Batch::left_padded(&[Prompt::text(vec![1, 2, 3, 4, 5])], 0).unwrap();
    let out = model.forward(&batch, None, true).unwrap();
    let loss = out.logits.narrow(1, 4, 1).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut ids = Dtypes::default();
    model.visit(&mut ids);
    let mut with_grad = 0;
    for id in &ids.adapter_ids {
        if let Some(g) = grads.get::<2>(*id) {
            assert_eq!(g.dtype(), DType::F32, "adapter gradients are f32");
            with_grad += 1;
        }
    }
    assert!(with_grad > 0, "no adapter got a gradient");
    optim.step(lr, model, grads)
}

#[test]
fn adam_steps_below_bf16_resolution_still_move_the_adapters() {
    let dev = test_device().autodiff();
    let model = Qwen2Vl::random_as(&Qwen2VlConfig::tiny(), 5, &dev, DType::BF16).unwrap();
    let model = apply_lora(model, &lora()).unwrap();
    let mut optim = AdamConfig::new().init();
    // A fresh adapter has B = 0, so A gets no gradient: a first, large step makes B non-zero.
    let model = step(model, &mut optim, 1e-2);
    let before = adapter_a(&model);
    // lr 1e-6: Adam moves each weight by at most about 1e-6, while bf16's spacing near A's
    // magnitude (|A| up to 1/sqrt(64) = 0.125) is about 5e-4: in bf16 the step would vanish.
    let model = step(model, &mut optim, 1e-6);
    let after = adapter_a(&model);
    let mut moved = 0usize;
    let mut max_step = 0f32;
    let mut lost_in_bf16 = 0usize;
    for (x, y) in before.iter().zip(&after) {
        let d = (x - y).abs();
        max_step = max_step.max(d);
        if d > 0.0 {
            moved += 1;
            lost_in_bf16 += usize::from(half::bf16::from_f32(*x) == half::bf16::from_f32(*y));
        }
    }
    assert!(max_step < 1e-5, "Adam's step is about lr ({max_step})");
    assert!(moved > before.len() / 2, "only {moved} of {} adapter weights changed", before.len());
    // The point of f32 master weights: almost every one of these changes is invisible in bf16.
    assert!(lost_in_bf16 > moved * 9 / 10, "{lost_in_bf16} of {moved} changes would be rounded away in bf16");
}

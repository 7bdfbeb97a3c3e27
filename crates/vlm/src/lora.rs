//! LoRA on the language model's q/k/v/o/gate/up/down projections, and adapter I/O in PEFT's
//! format (`adapter_config.json` + `adapter_model.safetensors`) so a trained adapter loads in
//! HF peft on top of `Qwen2VLForConditionalGeneration`.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{DType, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VlmError};
use crate::model::Qwen2Vl;
use crate::nn::{to_host, transpose_host};
use crate::weights::{SafetensorsWeights, SaveDtype, TensorSink, WeightSource};

pub const ALL_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Projection names (subset of [`ALL_TARGETS`]).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { rank: 8, alpha: 16.0, dropout: 0.05, targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect() }
    }
}

/// PEFT stores the language model's modules under this prefix (transformers >= 5 module tree).
const PEFT_PREFIX: &str = "base_model.model.model.language_model.";

fn peft_module(hf_path: &str) -> String {
    // hf_path is `model.layers.N.<...>` (saved layout); PEFT uses the in-memory module tree.
    format!("{PEFT_PREFIX}{}", hf_path.trim_start_matches("model."))
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Freezes every base parameter and attaches fresh adapters to the targeted projections.
/// The value head, if any, lives outside the model and stays trainable.
pub fn apply_lora(model: Qwen2Vl, cfg: &LoraConfig) -> Result<Qwen2Vl> {
    apply_lora_seeded(model, cfg, 0)
}

/// [`apply_lora`] with the adapters' initial values drawn on the host from `seed`, so the same
/// seed gives the same adapters on every backend (each backend's own RNG differs).
pub fn apply_lora_seeded(model: Qwen2Vl, cfg: &LoraConfig, seed: u64) -> Result<Qwen2Vl> {
    if cfg.rank == 0 {
        return Err(VlmError::Input("LoRA rank must be > 0".into()));
    }
    if !(0.0..1.0).contains(&cfg.dropout) {
        return Err(VlmError::Input(format!("LoRA dropout must be in [0, 1), got {}", cfg.dropout)));
    }
    if let Some(bad) = cfg.targets.iter().find(|t| !ALL_TARGETS.contains(&t.as_str())) {
        return Err(VlmError::Input(format!("unknown LoRA target `{bad}`; expected some of {ALL_TARGETS:?}")));
    }
    let dev = model.device();
    let mut model = model.no_grad();
    for (k, (path, proj)) in model.model.projections_mut().into_iter().enumerate() {
        if cfg.targets.iter().any(|t| t == leaf(&path)) {
            let stream = seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            proj.add_lora(cfg.rank, cfg.alpha, cfg.dropout, stream, &dev);
        }
    }
    Ok(model)
}

/// Folds every adapter into its base weight (for exporting a full fine-tuned checkpoint).
pub fn merge_lora(mut model: Qwen2Vl) -> Qwen2Vl {
    for (_, proj) in model.model.projections_mut() {
        proj.merge_lora();
    }
    model
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` (PEFT layout:
/// `lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`).
pub fn save_peft_adapter(model: &Qwen2Vl, cfg: &LoraConfig, dir: &Path, base_model: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| VlmError::io(dir, e))?;
    let mut sink = TensorSink::default();
    for (path, proj) in model.model.projections() {
        if let Some(l) = &proj.lora {
            let m = peft_module(&path);
            sink.put(format!("{m}.lora_A.weight"), transpose_host(&to_host(l.a.val())));
            sink.put(format!("{m}.lora_B.weight"), transpose_host(&to_host(l.b.val())));
        }
    }
    if sink.tensors.is_empty() {
        return Err(VlmError::Input("the model has no LoRA adapters to save".into()));
    }
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into_iter().collect();
    sink.save(&dir.join("adapter_model.safetensors"), SaveDtype::F32, Some(meta))?;
    let conf = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": cfg.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
    });
    let p = dir.join("adapter_config.json");
    std::fs::write(&p, serde_json::to_string_pretty(&conf).expect("json")).map_err(|e| VlmError::io(&p, e))
}

/// Loads a PEFT adapter written by [`save_peft_adapter`] (or by peft for this architecture)
/// onto a model without adapters. Returns the adapter's config.
pub fn load_peft_adapter(model: Qwen2Vl, dir: &Path) -> Result<(Qwen2Vl, LoraConfig)> {
    let cp = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cp).map_err(|e| VlmError::io(&cp, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| VlmError::Config { file: cp.display().to_string(), msg: e.to_string() })?;
    let field = |k: &str| {
        v.get(k).ok_or_else(|| VlmError::Config { file: cp.display().to_string(), msg: format!("missing `{k}`") })
    };
    let bad =
        |k: &str| VlmError::Config { file: cp.display().to_string(), msg: format!("field `{k}` has the wrong type") };
    let targets: Vec<String> = match field("target_modules")? {
        serde_json::Value::String(s) => vec![s.clone()],
        t => serde_json::from_value(t.clone()).map_err(|_| bad("target_modules"))?,
    };
    let cfg = LoraConfig {
        rank: field("r")?.as_u64().ok_or_else(|| bad("r"))? as usize,
        alpha: field("lora_alpha")?.as_f64().ok_or_else(|| bad("lora_alpha"))?,
        dropout: v.get("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0),
        targets,
    };
    let mut model = apply_lora(model, &cfg)?;
    let dev = model.device();
    let mut w = SafetensorsWeights::open_files(&[dir.join("adapter_model.safetensors")])?;
    for (path, proj) in model.model.projections_mut() {
        if let Some(l) = proj.lora.as_mut() {
            let m = peft_module(&path);
            let [d_in, r] = l.a.val().dims();
            let [_, d_out] = l.b.val().dims();
            let a = transpose_host(&w.take(&format!("{m}.lora_A.weight"), &[r, d_in])?);
            let b = transpose_host(&w.take(&format!("{m}.lora_B.weight"), &[d_out, r])?);
            // Adapters are f32 master weights whatever the base precision.
            l.a = Param::from_tensor(Tensor::from_data(TensorData::new(a.data, [d_in, r]), (&dev, DType::F32)));
            l.b = Param::from_tensor(Tensor::from_data(TensorData::new(b.data, [r, d_out]), (&dev, DType::F32)));
        }
    }
    w.finish()?;
    Ok((model, cfg))
}

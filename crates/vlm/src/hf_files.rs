//! The files next to `config.json` in an HF Qwen2-VL directory, and PEFT adapter directories:
//! - `generation_config.json`: stop tokens and decoding defaults ([`GenerationDefaults`]);
//! - a directory that holds only a LoRA adapter (`adapter_config.json` whose
//!   `base_model_name_or_path` is a local path): [`ModelDirs::resolve`] finds the base.
//!
//! `preprocessor_config.json` is read by [`crate::ImageProcessor::from_file`].

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, VlmError};
use crate::generate::GenerateConfig;
use crate::model::Qwen2Vl;

/// Decoding defaults of a checkpoint, as transformers' `GenerationConfig` reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationDefaults {
    /// `eos_token_id` (a number or a list): generation stops after any of them.
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// `do_sample: false` (transformers' default) is greedy whatever `temperature` says.
    pub do_sample: bool,
    pub temperature: f32,
    pub top_p: f32,
    /// 0 = off. transformers' default is 50.
    pub top_k: usize,
    pub max_new_tokens: Option<usize>,
    /// Read but not applied by [`crate::generate`] (1.0 = off); see [`GenerationDefaults::unapplied`].
    pub repetition_penalty: f32,
    /// The file it came from (None: no file, transformers' defaults).
    pub source: Option<PathBuf>,
}

impl Default for GenerationDefaults {
    /// transformers' `GenerationConfig()` defaults.
    fn default() -> Self {
        GenerationDefaults {
            eos_token_ids: vec![],
            bos_token_id: None,
            pad_token_id: None,
            do_sample: false,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 50,
            max_new_tokens: None,
            repetition_penalty: 1.0,
            source: None,
        }
    }
}

fn cfg_err(file: &Path, key: &str, msg: impl std::fmt::Display) -> VlmError {
    VlmError::Config { file: file.display().to_string(), msg: format!("field `{key}`: {msg}") }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| VlmError::Config { file: path.display().to_string(), msg: format!("not JSON: {e}") })
}

impl GenerationDefaults {
    /// Reads `generation_config.json`. Absent or `null` keys keep transformers' defaults;
    /// keys of other decoding strategies (beams, constraints...) are ignored.
    pub fn from_file(path: &Path) -> Result<Self> {
        let v = read_json(path)?;
        let obj = v.as_object().ok_or_else(|| VlmError::Config {
            file: path.display().to_string(),
            msg: "expected a JSON object".into(),
        })?;
        let get = |k: &str| obj.get(k).filter(|x| !x.is_null());
        let id = |k: &str| -> Result<Option<u32>> {
            match get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .map(Some)
                    .ok_or_else(|| cfg_err(path, k, format!("expected a token id, got {x}"))),
            }
        };
        let num = |k: &str, default: f32| -> Result<f32> {
            match get(k) {
                None => Ok(default),
                Some(x) => {
                    x.as_f64().map(|x| x as f32).ok_or_else(|| cfg_err(path, k, format!("expected a number, got {x}")))
                }
            }
        };
        let uint = |k: &str| -> Result<Option<usize>> {
            match get(k) {
                None => Ok(None),
                Some(x) => x
                    .as_u64()
                    .map(|x| Some(x as usize))
                    .ok_or_else(|| cfg_err(path, k, format!("expected an unsigned integer, got {x}"))),
            }
        };
        let eos_token_ids = match get("eos_token_id") {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| cfg_err(path, "eos_token_id", format!("expected token ids, got {x}")))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => id("eos_token_id")?.into_iter().collect(),
        };
        let do_sample = match get("do_sample") {
            None => false,
            Some(x) => {
                x.as_bool().ok_or_else(|| cfg_err(path, "do_sample", format!("expected true/false, got {x}")))?
            }
        };
        let d = GenerationDefaults::default();
        let out = GenerationDefaults {
            eos_token_ids,
            bos_token_id: id("bos_token_id")?,
            pad_token_id: id("pad_token_id")?,
            do_sample,
            temperature: num("temperature", d.temperature)?,
            top_p: num("top_p", d.top_p)?,
            top_k: uint("top_k")?.unwrap_or(d.top_k),
            max_new_tokens: uint("max_new_tokens")?,
            repetition_penalty: num("repetition_penalty", d.repetition_penalty)?,
            source: Some(path.to_path_buf()),
        };
        if !(out.temperature >= 0.0 && out.temperature.is_finite()) {
            return Err(cfg_err(path, "temperature", format!("must be >= 0, got {}", out.temperature)));
        }
        if !(out.top_p > 0.0 && out.top_p <= 1.0) {
            return Err(cfg_err(path, "top_p", format!("must be in (0, 1], got {}", out.top_p)));
        }
        Ok(out)
    }

    /// `dir/generation_config.json` if it exists, else transformers' defaults.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let p = dir.join("generation_config.json");
        if p.is_file() { Self::from_file(&p) } else { Ok(Self::default()) }
    }

    /// A [`GenerateConfig`] with these defaults: greedy unless `do_sample`, then the file's
    /// temperature / top-p / top-k. `stop_tokens` stays empty: [`crate::Vlm::generate`] fills
    /// it from [`crate::Vlm::stop_tokens`], which includes `eos_token_ids`.
    /// `max_new_tokens` is the file's, else `fallback_max_new_tokens`.
    pub fn generate_config(&self, fallback_max_new_tokens: usize) -> GenerateConfig {
        let sampling = self.do_sample && self.temperature > 0.0;
        GenerateConfig {
            max_new_tokens: self.max_new_tokens.unwrap_or(fallback_max_new_tokens),
            temperature: if sampling { self.temperature } else { 0.0 },
            top_p: if sampling { self.top_p } else { 1.0 },
            top_k: if sampling { self.top_k } else { 0 },
            stop_tokens: vec![],
            seed: 0,
        }
    }

    /// Settings of the file that [`crate::generate`] does not apply (for a warning).
    pub fn unapplied(&self) -> Vec<String> {
        let mut out = vec![];
        if self.repetition_penalty != 1.0 {
            out.push(format!("repetition_penalty {}", self.repetition_penalty));
        }
        out
    }
}

/// Where the pieces of a checkpoint directory are.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDirs {
    /// The directory with `config.json` and the base weights.
    pub base: PathBuf,
    /// A PEFT LoRA adapter to apply on top (`adapter_config.json` + `adapter_model.safetensors`).
    pub adapter: Option<PathBuf>,
}

impl ModelDirs {
    /// `dir` itself when it has a `config.json`; when it holds only a PEFT adapter, its base
    /// from `base_model_name_or_path` (absolute, relative to the working directory, or relative
    /// to the adapter directory), checked to be a local Qwen2-VL directory.
    pub fn resolve(dir: &Path) -> Result<Self> {
        if dir.join("config.json").is_file() {
            return Ok(ModelDirs { base: dir.to_path_buf(), adapter: None });
        }
        let ac = dir.join("adapter_config.json");
        if !ac.is_file() {
            return Err(VlmError::Config {
                file: dir.join("config.json").display().to_string(),
                msg: format!(
                    "{} has neither config.json (a checkpoint) nor adapter_config.json (a PEFT adapter)",
                    dir.display()
                ),
            });
        }
        let v = read_json(&ac)?;
        check_adapter_config(&v, &ac)?;
        let key = "base_model_name_or_path";
        let base = match v.get(key) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::Null) => {
                return Err(cfg_err(&ac, key, "missing: cannot find the base model of this adapter"));
            }
            Some(x) => return Err(cfg_err(&ac, key, format!("expected a path, got {x}"))),
        };
        let p = PathBuf::from(&base);
        let candidates = if p.is_absolute() { vec![p.clone()] } else { vec![p.clone(), dir.join(&p)] };
        let found = candidates.into_iter().find(|c| c.join("config.json").is_file()).ok_or_else(|| {
            cfg_err(
                &ac,
                key,
                format!(
                    "{base:?} is not a local directory with a config.json (looked at it as given and relative to {}); \
                     hub ids are not downloaded: download the base and set this field to its path, or pass the base \
                     as the model and this directory as the adapter",
                    dir.display()
                ),
            )
        })?;
        Ok(ModelDirs { base: found, adapter: Some(dir.to_path_buf()) })
    }

    /// The model: `load_base` on the base directory, then the adapter (if any) applied.
    pub fn load_model(&self, load_base: impl FnOnce(&Path) -> Result<Qwen2Vl>) -> Result<Qwen2Vl> {
        let model = load_base(&self.base)?;
        match &self.adapter {
            Some(a) => Ok(crate::lora::load_peft_adapter(model, a)?.0),
            None => Ok(model),
        }
    }

    /// The first of (adapter dir, base dir) that has `name` (PEFT trainers often save the
    /// tokenizer and processor files next to the adapter).
    pub fn file(&self, name: &str) -> PathBuf {
        if let Some(a) = &self.adapter {
            let p = a.join(name);
            if p.is_file() {
                return p;
            }
        }
        self.base.join(name)
    }
}

/// Refuses, by field, the PEFT settings our LoRA does not reproduce (they change the numbers).
pub fn check_adapter_config(v: &Value, file: &Path) -> Result<()> {
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    if let Some(t) = get("peft_type").and_then(|x| x.as_str())
        && t != "LORA"
    {
        return Err(cfg_err(file, "peft_type", format!("only \"LORA\" adapters are supported, got {t:?}")));
    }
    for k in ["use_dora", "use_rslora"] {
        if get(k).and_then(|x| x.as_bool()) == Some(true) {
            return Err(cfg_err(file, k, "true is not supported (plain LoRA scaling alpha/r only)"));
        }
    }
    if let Some(b) = get("bias").and_then(|x| x.as_str())
        && b != "none"
    {
        return Err(cfg_err(file, "bias", format!("only \"none\" is supported, got {b:?}")));
    }
    let non_empty = |x: &Value| match x {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    };
    for k in ["modules_to_save", "rank_pattern", "alpha_pattern", "layers_to_transform", "trainable_token_indices"] {
        if let Some(x) = get(k)
            && non_empty(x)
        {
            return Err(cfg_err(file, k, format!("{x} is not supported by our LoRA loader")));
        }
    }
    Ok(())
}

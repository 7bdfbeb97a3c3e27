//! `config.json` of a Qwen2-VL checkpoint, in every layout released transformers versions
//! (4.45 through 5.x) and the official hub files write:
//! - flat (the official 2B/7B/72B files): text fields at the top level, `rope_scaling` with
//!   `type` (and, once re-saved by transformers >= 4.45, `rope_type` too);
//! - nested (transformers >= 4.53 / 5): `text_config` (with `rope_scaling` or `rope_parameters`)
//!   and `vision_config`, sometimes with the text keys mirrored at the top level.
//!
//! Unknown keys are an error (a typo or an architecture we do not implement must not load
//! silently); keys that carry no architectural meaning (dtype, generation settings, base-class
//! defaults...) are accepted. Keys that would change the numbers are errors naming the field.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, VlmError};

/// The language model (Qwen2 decoder with M-RoPE).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Split of `head_dim / 2` rotary frequencies into (temporal, height, width) chunks.
    pub mrope_section: [usize; 3],
    pub tie_word_embeddings: bool,
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The vision tower (ViT with 2D rotary embeddings and a 2x2 patch merger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub embed_dim: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub in_channels: usize,
    /// Output width of the merger (= the language model's hidden size).
    pub hidden_size: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }
    pub fn mlp_dim(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
    /// Length of one flattened patch row of `pixel_values` (C * T * P * P).
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Qwen2VlConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Keys of HF's `PretrainedConfig` base class and generation settings that older transformers
/// versions wrote into every (sub-)config, plus bookkeeping fields. None of them changes the
/// forward pass we implement. (Keys that *would* change it are checked by [`take_generic`].)
const IGNORED: &[&str] = &[
    // bookkeeping
    "architectures",
    "model_type",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "_name_or_path",
    "name_or_path",
    "_commit_hash",
    "_attn_implementation_autoset",
    "_attn_implementation",
    "attn_implementation",
    "base_config_key",
    "initializer_range",
    "use_cache",
    "attention_dropout",
    "max_position_embeddings",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "torchscript",
    "tf_legacy_loss",
    "use_bfloat16",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "is_decoder",
    "add_cross_attention",
    "cross_attention_hidden_size",
    "tie_encoder_decoder",
    "id2label",
    "label2id",
    "problem_type",
    "finetuning_task",
    "tokenizer_class",
    "prefix",
    "task_specific_params",
    "pad_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "spatial_patch_size",
    "vision_token_id",
    "gradient_checkpointing",
    // generation settings (transformers < 4.41 kept them in config.json; we read generation_config.json)
    "max_length",
    "min_length",
    "max_new_tokens",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
];

/// Text-model keys that transformers 4.5x also mirrors at the top level of a nested config.
const TEXT_KEYS: &[&str] = &[
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "head_dim",
    "use_sliding_window",
    "sliding_window",
    "max_window_layers",
    "layer_types",
];

/// A JSON object whose keys are consumed one by one, so that leftovers can be reported.
struct Fields<'a> {
    where_: String,
    file: &'a str,
    map: Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(v: Value, where_: &str, file: &'a str) -> Result<Self> {
        match v {
            Value::Object(map) => Ok(Fields { where_: where_.to_string(), file, map }),
            other => {
                Err(VlmError::Config { file: file.into(), msg: format!("`{where_}` must be an object, got {other}") })
            }
        }
    }
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> VlmError {
        let path = if self.where_.is_empty() { key.to_string() } else { format!("{}.{key}", self.where_) };
        VlmError::Config { file: self.file.into(), msg: format!("field `{path}`: {msg}") }
    }
    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }
    fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }
    fn usize_opt(&mut self, key: &str) -> Result<Option<usize>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| self.err(key, format!("expected an unsigned integer, got {v}"))),
        }
    }
    fn usize(&mut self, key: &str) -> Result<usize> {
        self.usize_opt(key)?.ok_or_else(|| self.err(key, "missing (required)"))
    }
    fn f64_opt(&mut self, key: &str) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.err(key, format!("expected a number, got {v}"))),
        }
    }
    fn bool_opt(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| self.err(key, format!("expected true/false, got {v}"))),
        }
    }
    fn str_opt(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| self.err(key, format!("expected a string, got {v}"))),
        }
    }
    fn ids_opt(&mut self, key: &str) -> Result<Option<Vec<u32>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_u64().map(|x| x as u32).ok_or_else(|| self.err(key, format!("expected token ids, got {x}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => v
                .as_u64()
                .map(|x| Some(vec![x as u32]))
                .ok_or_else(|| self.err(key, format!("expected a token id, got {v}"))),
        }
    }
    fn object(&mut self, key: &str) -> Result<Option<Fields<'a>>> {
        let where_ = if self.where_.is_empty() { key.to_string() } else { format!("{}.{key}", self.where_) };
        match self.take(key) {
            None => Ok(None),
            Some(v) => Fields::new(v, &where_, self.file).map(Some),
        }
    }
    /// Every key not consumed and not known to be harmless is an error.
    fn finish(self) -> Result<()> {
        let unknown: Vec<&String> =
            self.map.iter().filter(|(k, v)| !v.is_null() && !IGNORED.contains(&k.as_str())).map(|(k, _)| k).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let at = if self.where_.is_empty() { "top level".to_string() } else { format!("`{}`", self.where_) };
            Err(VlmError::Config { file: self.file.into(), msg: format!("unknown field(s) {unknown:?} at {at}") })
        }
    }
}

impl Qwen2VlConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| VlmError::io(path, e))?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses any layout that released transformers versions (4.45 .. 5.x) and the official hub
    /// files write: flat or nested, `rope_scaling` or `rope_parameters` (with `type` and/or
    /// `rope_type`), generation and bookkeeping fields. Fields that would change the numbers
    /// (another RoPE type, sliding-window attention that is on, Qwen2.5-VL fields, quantization)
    /// are errors that name the field. `file` names the source in errors.
    pub fn from_json_str(json: &str, file: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(json)
            .map_err(|e| VlmError::Config { file: file.into(), msg: format!("not JSON: {e}") })?;
        let mut top = Fields::new(v, "", file)?;
        if let Some(mt) = top.map.get("model_type").and_then(|v| v.as_str())
            && mt != "qwen2_vl"
        {
            let hint = if mt.starts_with("qwen2_5_vl") { " (Qwen2.5-VL is not implemented)" } else { "" };
            return Err(top.err("model_type", format!("expected \"qwen2_vl\", got {mt:?}{hint}")));
        }
        check_architectures(&top)?;
        take_generic(&mut top)?;
        if top.has("tokens_per_second") {
            return Err(top.err("tokens_per_second", "this is a Qwen2.5-VL field; only Qwen2-VL is implemented"));
        }
        let nested_raw = top.map.get("text_config").filter(|v| !v.is_null()).cloned();
        let mut ids_in_text = Map::new();
        let text = match top.object("text_config")? {
            Some(mut t) => {
                if let Some(mt) = t.map.get("model_type").and_then(|v| v.as_str())
                    && mt != "qwen2_vl_text"
                    && mt != "qwen2_vl"
                {
                    return Err(t.err("model_type", format!("expected \"qwen2_vl_text\", got {mt:?}")));
                }
                take_generic(&mut t)?;
                let mut cfg = parse_text(&mut t)?;
                // Token ids may sit in text_config (transformers 5 keeps Qwen2's there); the
                // top-level ones rule when both exist.
                for k in [
                    "bos_token_id",
                    "eos_token_id",
                    "image_token_id",
                    "video_token_id",
                    "vision_start_token_id",
                    "vision_end_token_id",
                ] {
                    if let Some(x) = t.take(k) {
                        ids_in_text.insert(k.to_string(), x);
                    }
                }
                t.finish()?;
                // Some versions mirror text keys at the top level: they must agree with text_config.
                let raw = nested_raw.unwrap_or_default();
                for &k in TEXT_KEYS {
                    if let Some(x) = top.take(k)
                        && let Some(inner) = raw.get(k).filter(|v| !v.is_null())
                        && !same_json(&x, inner)
                    {
                        return Err(top.err(k, format!("{x} differs from `text_config.{k}` = {inner}")));
                    }
                }
                if let Some(tie) = top.bool_opt("tie_word_embeddings")? {
                    cfg.tie_word_embeddings = tie;
                }
                cfg
            }
            None => parse_text(&mut top)?,
        };
        let mut vis = top.object("vision_config")?.ok_or_else(|| top.err("vision_config", "missing (required)"))?;
        take_generic(&mut vis)?;
        let vision = parse_vision(&mut vis, text.hidden_size)?;
        vis.finish()?;
        for (k, x) in ids_in_text {
            if !top.has(&k) {
                top.map.insert(k, x);
            }
        }
        let image_token_id = top.usize("image_token_id")? as u32;
        let video_token_id = top.usize("video_token_id")? as u32;
        let vision_start_token_id = top.usize("vision_start_token_id")? as u32;
        let vision_end_token_id = top.usize("vision_end_token_id")? as u32;
        let bos_token_id = top.usize_opt("bos_token_id")?.map(|x| x as u32);
        let eos_token_ids = top.ids_opt("eos_token_id")?.unwrap_or_default();
        top.finish()?;
        let cfg = Qwen2VlConfig {
            text,
            vision,
            image_token_id,
            video_token_id,
            vision_start_token_id,
            vision_end_token_id,
            bos_token_id,
            eos_token_ids,
        };
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Architectural consistency checks (divisibility, section sums, ids inside the vocabulary).
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |msg: String| Err(VlmError::Config { file: file.into(), msg });
        let t = &self.text;
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if t.num_key_value_heads == 0 || !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        let hd = t.head_dim();
        if !hd.is_multiple_of(2) || t.mrope_section.iter().sum::<usize>() != hd / 2 {
            return bad(format!("mrope_section {:?} must sum to head_dim/2 = {}", t.mrope_section, hd / 2));
        }
        let v = &self.vision;
        if v.num_heads == 0 || !v.embed_dim.is_multiple_of(v.num_heads) || !v.head_dim().is_multiple_of(4) {
            return bad(format!(
                "vision embed_dim {} / num_heads {} must give a head_dim divisible by 4",
                v.embed_dim, v.num_heads
            ));
        }
        if v.hidden_size != t.hidden_size {
            return bad(format!("vision_config.hidden_size {} != text hidden_size {}", v.hidden_size, t.hidden_size));
        }
        for (name, id) in [
            ("image_token_id", self.image_token_id),
            ("video_token_id", self.video_token_id),
            ("vision_start_token_id", self.vision_start_token_id),
            ("vision_end_token_id", self.vision_end_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return bad(format!("{name} {id} is outside the vocabulary (vocab_size {})", t.vocab_size));
            }
        }
        Ok(())
    }

    /// Writes the flat (official) layout, which both this crate and transformers read.
    pub fn to_hf_json(&self) -> Value {
        let t = &self.text;
        let v = &self.vision;
        serde_json::json!({
            "architectures": ["Qwen2VLForConditionalGeneration"],
            "model_type": "qwen2_vl",
            "vocab_size": t.vocab_size,
            "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "num_hidden_layers": t.num_hidden_layers,
            "num_attention_heads": t.num_attention_heads,
            "num_key_value_heads": t.num_key_value_heads,
            "rms_norm_eps": t.rms_norm_eps,
            "rope_theta": t.rope_theta,
            "rope_scaling": {"type": "mrope", "mrope_section": t.mrope_section},
            "tie_word_embeddings": t.tie_word_embeddings,
            "hidden_act": "silu",
            "vision_config": {
                "depth": v.depth, "embed_dim": v.embed_dim, "num_heads": v.num_heads,
                // An integer where it is one, as the hub's configs have it: transformers >= 5
                // validates the field as an int and rejects `4.0`.
                "mlp_ratio": if v.mlp_ratio.fract() == 0.0 { serde_json::json!(v.mlp_ratio as u64) } else { serde_json::json!(v.mlp_ratio) },
                "in_chans": v.in_channels, "hidden_size": v.hidden_size, "patch_size": v.patch_size,
                "spatial_merge_size": v.spatial_merge_size, "temporal_patch_size": v.temporal_patch_size,
                "hidden_act": "quick_gelu"
            },
            "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids.first(),
        })
    }

    /// A small Qwen2-VL-shaped model for CPU use without any checkpoint: it pairs with
    /// [`crate::tokenizer::Qwen2VlTokenizer::byte_level`] (256 byte tokens + Qwen2's 14 specials).
    pub fn tiny() -> Self {
        let specials = crate::tokenizer::BYTE_LEVEL_SPECIAL_BASE;
        Qwen2VlConfig {
            text: TextConfig {
                vocab_size: crate::tokenizer::BYTE_LEVEL_VOCAB,
                hidden_size: 64,
                intermediate_size: 128,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                num_key_value_heads: 2,
                rms_norm_eps: 1e-6,
                rope_theta: 1_000_000.0,
                mrope_section: [2, 3, 3],
                tie_word_embeddings: false,
            },
            vision: VisionConfig {
                depth: 2,
                embed_dim: 32,
                num_heads: 2,
                mlp_ratio: 2.0,
                in_channels: 3,
                hidden_size: 64,
                patch_size: 14,
                spatial_merge_size: 2,
                temporal_patch_size: 2,
            },
            // Offsets follow Qwen2's special-token order (see tokenizer::QWEN2_SPECIALS).
            vision_start_token_id: specials + 9,
            vision_end_token_id: specials + 10,
            image_token_id: specials + 12,
            video_token_id: specials + 13,
            bos_token_id: Some(specials),
            eos_token_ids: vec![specials + 2, specials],
        }
    }
}

/// Equal JSON values, with numbers compared as numbers (`2` == `2.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// `architectures` may name Qwen2-VL classes only (fine-tuning wrappers add none of their own).
fn check_architectures(f: &Fields) -> Result<()> {
    if let Some(Value::Array(a)) = f.map.get("architectures") {
        for x in a {
            let name = x.as_str().unwrap_or_default();
            if name.contains("Qwen2_5") || name.contains("Qwen3") {
                return Err(f.err("architectures", format!("{name:?} is not Qwen2-VL; only Qwen2-VL is implemented")));
            }
        }
    }
    Ok(())
}

/// Base-class keys that would change the weights or the math: quantized checkpoints and pruned
/// heads are refused by name; the harmless rest is left for [`IGNORED`].
fn take_generic(f: &mut Fields) -> Result<()> {
    if f.has("quantization_config") {
        return Err(f.err(
            "quantization_config",
            "quantized checkpoints (bitsandbytes/GPTQ/AWQ/...) are not supported; use the unquantized weights",
        ));
    }
    if let Some(p) = f.take("pruned_heads")
        && !p.as_object().is_some_and(|m| m.is_empty())
    {
        return Err(f.err("pruned_heads", format!("pruned attention heads are not supported, got {p}")));
    }
    Ok(())
}

/// Sliding-window attention is accepted as long as it is off for every layer: transformers
/// turns it on for layers `>= max_window_layers` when `use_sliding_window` is true (4.x), or
/// per layer through `layer_types` (>= 4.53).
fn check_sliding_window(f: &mut Fields, num_layers: usize) -> Result<()> {
    let use_sw = f.bool_opt("use_sliding_window")?.unwrap_or(false);
    let window = f.usize_opt("sliding_window")?;
    let max_window_layers = f.usize_opt("max_window_layers")?;
    if let Some(lt) = f.take("layer_types") {
        let kinds: Vec<String> = serde_json::from_value(lt.clone())
            .map_err(|_| f.err("layer_types", format!("expected a list of strings, got {lt}")))?;
        if let Some((i, k)) = kinds.iter().enumerate().find(|(_, k)| k.as_str() != "full_attention") {
            return Err(f.err(
                &format!("layer_types[{i}]"),
                format!("{k:?}: only full attention is implemented (sliding-window attention is not)"),
            ));
        }
        return Ok(());
    }
    if use_sw && window.is_some() {
        // transformers' default for max_window_layers is 80 (the 72B model's depth).
        let first = max_window_layers.unwrap_or(80);
        if first < num_layers {
            return Err(f.err(
                "use_sliding_window",
                format!(
                    "true with max_window_layers {first} < num_hidden_layers {num_layers} turns on sliding-window \
                     attention, which is not implemented"
                ),
            ));
        }
    }
    Ok(())
}

/// One `rope_scaling` / `rope_parameters` object of the language model. Returns (theta, section).
fn parse_text_rope(mut r: Fields) -> Result<(Option<f64>, Option<[usize; 3]>)> {
    // transformers >= 4.45 writes `type` and `rope_type` together ("mrope" becomes "default").
    for key in ["rope_type", "type"] {
        if let Some(k) = r.str_opt(key)?
            && k != "mrope"
            && k != "default"
        {
            return Err(r.err(key, format!("only M-RoPE (\"mrope\"/\"default\") is implemented, got {k:?}")));
        }
    }
    let theta = r.f64_opt("rope_theta")?;
    let mut section = None;
    if let Some(s) = r.take("mrope_section") {
        let s: Vec<usize> = serde_json::from_value(s.clone())
            .map_err(|_| r.err("mrope_section", format!("expected 3 integers, got {s}")))?;
        if s.len() != 3 {
            return Err(r.err("mrope_section", format!("expected 3 integers, got {s:?}")));
        }
        section = Some([s[0], s[1], s[2]]);
    }
    if let Some(true) = r.bool_opt("mrope_interleaved")? {
        return Err(r.err("mrope_interleaved", "interleaved M-RoPE (Qwen3-VL) is not implemented"));
    }
    if let Some(p) = r.f64_opt("partial_rotary_factor")?
        && p != 1.0
    {
        return Err(r.err("partial_rotary_factor", format!("only 1.0 is implemented, got {p}")));
    }
    r.finish()?;
    Ok((theta, section))
}

fn parse_text(f: &mut Fields) -> Result<TextConfig> {
    if let Some(act) = f.str_opt("hidden_act")?
        && act != "silu"
    {
        return Err(f.err("hidden_act", format!("only \"silu\" is implemented, got {act:?}")));
    }
    let vocab_size = f.usize("vocab_size")?;
    let hidden_size = f.usize("hidden_size")?;
    let intermediate_size = f.usize("intermediate_size")?;
    let num_hidden_layers = f.usize("num_hidden_layers")?;
    let num_attention_heads = f.usize("num_attention_heads")?;
    let num_key_value_heads = f.usize_opt("num_key_value_heads")?.unwrap_or(num_attention_heads);
    let rms_norm_eps = f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6);
    let tie_word_embeddings = f.bool_opt("tie_word_embeddings")?.unwrap_or(false);
    if let Some(hd) = f.usize_opt("head_dim")?
        && hd * num_attention_heads != hidden_size
    {
        return Err(f.err("head_dim", format!("{hd} != hidden_size / num_attention_heads")));
    }
    check_sliding_window(f, num_hidden_layers)?;
    let mut rope_theta = f.f64_opt("rope_theta")?;
    let mut section: Option<[usize; 3]> = None;
    // `rope_parameters` (transformers 5) rules over `rope_scaling` (4.x) when both exist.
    for key in ["rope_scaling", "rope_parameters"] {
        if let Some(r) = f.object(key)? {
            let (theta, s) = parse_text_rope(r)?;
            if let Some(t) = theta {
                rope_theta = Some(t);
            }
            if let Some(s) = s {
                if let Some(prev) = section
                    && prev != s
                {
                    return Err(f.err(
                        &format!("{key}.mrope_section"),
                        format!("{s:?} differs from `rope_scaling.mrope_section` {prev:?}"),
                    ));
                }
                section = Some(s);
            }
        }
    }
    let mrope_section =
        section.ok_or_else(|| f.err("rope_scaling.mrope_section", "missing (required for Qwen2-VL)"))?;
    Ok(TextConfig {
        vocab_size,
        hidden_size,
        intermediate_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        rms_norm_eps,
        rope_theta: rope_theta.unwrap_or(1_000_000.0),
        mrope_section,
        tie_word_embeddings,
    })
}

fn parse_vision(f: &mut Fields, text_hidden: usize) -> Result<VisionConfig> {
    if let Some(act) = f.str_opt("hidden_act")?
        && act != "quick_gelu"
    {
        return Err(f.err("hidden_act", format!("only \"quick_gelu\" is implemented, got {act:?}")));
    }
    let depth = f.usize("depth")?;
    let embed_dim = f.usize("embed_dim")?;
    let num_heads = f.usize("num_heads")?;
    let mlp_ratio = f.f64_opt("mlp_ratio")?.unwrap_or(4.0);
    let in_channels = match f.usize_opt("in_channels")? {
        Some(c) => c,
        None => f.usize_opt("in_chans")?.unwrap_or(3),
    };
    f.map.remove("in_chans");
    let hidden_size = f.usize_opt("hidden_size")?.unwrap_or(text_hidden);
    let patch_size = f.usize_opt("patch_size")?.unwrap_or(14);
    let spatial_merge_size = f.usize_opt("spatial_merge_size")?.unwrap_or(2);
    let temporal_patch_size = f.usize_opt("temporal_patch_size")?.unwrap_or(2);
    if let Some(mut r) = f.object("rope_parameters")? {
        if let Some(theta) = r.f64_opt("rope_theta")?
            && theta != 10000.0
        {
            return Err(r.err("rope_theta", format!("the vision rotary base is 10000, got {theta}")));
        }
        if let Some(k) = r.str_opt("rope_type")?
            && k != "default"
            && k != "axial"
        {
            return Err(
                r.err("rope_type", format!("the vision tower's rotary is 2D (\"default\"/\"axial\"), got {k:?}"))
            );
        }
        r.finish()?;
    }
    for key in ["out_hidden_size", "fullatt_block_indexes", "window_size", "intermediate_size", "tokens_per_second"] {
        if f.has(key) {
            return Err(f.err(key, "this is a Qwen2.5-VL field; only Qwen2-VL is implemented"));
        }
    }
    if let Some(mt) = f.map.get("model_type").and_then(|v| v.as_str())
        && !matches!(mt, "qwen2_vl" | "qwen2_vl_vision" | "")
    {
        return Err(f.err("model_type", format!("expected \"qwen2_vl\" or \"qwen2_vl_vision\", got {mt:?}")));
    }
    // Older transformers write the base-class defaults into the vision config too.
    for k in ["bos_token_id", "eos_token_id", "tie_word_embeddings"] {
        f.map.remove(k);
    }
    Ok(VisionConfig {
        depth,
        embed_dim,
        num_heads,
        mlp_ratio,
        in_channels,
        hidden_size,
        patch_size,
        spatial_merge_size,
        temporal_patch_size,
    })
}

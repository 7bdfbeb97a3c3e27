//! The model at the real Qwen2-VL shapes with random weights, timed the way
//! `crates/vlm/bench/hf_shapes.py` times HF transformers: one 448x448 image (1,024 patches, 256
//! image tokens) + 78 text tokens = 334 prompt tokens.
//!
//! Rows: `vision` (the vision tower), `prefill` (vision + LM + logits of the prompt),
//! `decode_bN` (greedy tokens/s at batch N: the 31 decode steps after the prefill, each with its
//! argmax read back),
//! `lora_step` (LoRA r8 on q/k/v/o/gate/up/down: forward + backward of the prompt's last logits).
//! The model carries the adapters for `lora_step`; the other rows run without them (`adapters:
//! false`), as HF's rows run the model without PEFT.
//! Every timing ends with a read-back to the host, so queued GPU work is included.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{DType, Tensor, TensorData};
use serde::Serialize;

use crate::config::Qwen2VlConfig;
use crate::device::Placement;
use crate::error::{Result, VlmError};
use crate::image_proc::PixelValues;
use crate::lora::{LoraConfig, apply_lora};
use crate::model::{Batch, Prompt, Qwen2Vl};
use crate::text::KvCache;
use crate::weights::RandomWeights;

/// A named shape: `2b`, `7b` (the released models' sizes), optionally cut to `L` text layers
/// and `L` vision blocks with `:L` (`2b:4`).
pub fn shape_config(name: &str) -> Result<Qwen2VlConfig> {
    let (base, layers) = match name.split_once(':') {
        Some((b, l)) => (
            b,
            Some(
                l.parse::<usize>()
                    .map_err(|_| VlmError::Input(format!("shape {name:?}: `:{l}` is not a layer count")))?,
            ),
        ),
        None => (name, None),
    };
    let mut c = Qwen2VlConfig::tiny();
    let t = &mut c.text;
    let v = &mut c.vision;
    match base.to_ascii_lowercase().as_str() {
        "2b" => {
            (t.vocab_size, t.hidden_size, t.intermediate_size) = (151_936, 1536, 8960);
            (t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) = (28, 12, 2);
            t.tie_word_embeddings = true;
        }
        "7b" => {
            (t.vocab_size, t.hidden_size, t.intermediate_size) = (152_064, 3584, 18_944);
            (t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) = (28, 28, 4);
            t.tie_word_embeddings = false;
        }
        other => {
            return Err(VlmError::Input(format!("unknown shape {other:?}: expected 2b or 7b (optionally :LAYERS)")));
        }
    }
    t.rms_norm_eps = 1e-6;
    t.rope_theta = 1_000_000.0;
    t.mrope_section = [16, 24, 24];
    (v.depth, v.embed_dim, v.num_heads, v.mlp_ratio, v.hidden_size) = (32, 1280, 16, 4.0, t.hidden_size);
    (v.in_channels, v.patch_size, v.spatial_merge_size, v.temporal_patch_size) = (3, 14, 2, 2);
    (c.vision_start_token_id, c.vision_end_token_id, c.image_token_id, c.video_token_id) =
        (151_652, 151_653, 151_655, 151_656);
    c.bos_token_id = Some(151_643);
    c.eos_token_ids = vec![151_645];
    if let Some(l) = layers {
        c.text.num_hidden_layers = l;
        c.vision.depth = l;
    }
    c.validate("<bench shape>")?;
    Ok(c)
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Image side in pixels (a multiple of 28).
    pub image: usize,
    /// Text tokens around the image (vision start/end included).
    pub text_tokens: usize,
    pub new_tokens: usize,
    pub decode_batches: Vec<usize>,
    pub lora_rank: usize,
    /// Timed repetitions per row (the median is reported, after one warm-up).
    pub reps: usize,
    pub rows: Vec<String>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            image: 448,
            text_tokens: 78,
            new_tokens: 32,
            decode_batches: vec![1, 8],
            lora_rank: 8,
            reps: 1,
            rows: ["vision", "prefill", "decode", "lora_step"].map(String::from).to_vec(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    pub row: String,
    /// Median seconds of one repetition.
    pub seconds: f64,
    /// Tokens per second for decode rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
}

/// The benchmark prompt: `<|vision_start|>`, the image pads, `<|vision_end|>`, then text tokens;
/// deterministic pixel values (the same formula as hf_shapes.py).
pub fn bench_prompt(c: &Qwen2VlConfig, image: usize, text_tokens: usize) -> Prompt {
    let grid = image / c.vision.patch_size;
    let patches = grid * grid;
    let pd = c.vision.patch_dim();
    let data: Vec<f32> = (0..patches * pd).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect();
    let mut ids = vec![c.vision_start_token_id];
    ids.extend(std::iter::repeat_n(c.image_token_id, patches / (c.vision.spatial_merge_size.pow(2))));
    ids.push(c.vision_end_token_id);
    // Ordinary ids (well below the special tokens).
    ids.extend((0..text_tokens.saturating_sub(2)).map(|i| 1000 + (i as u32 * 7919) % 50_000));
    Prompt { ids, pixels: Some(PixelValues { data, patch_dim: pd, grids: vec![[1, grid, grid]] }) }
}

fn sync<const D: usize>(t: Tensor<D>) -> f32 {
    t.sum().cast(DType::F32).into_data().convert::<f32>().as_slice::<f32>().map(|s| s[0]).unwrap_or(f32::NAN)
}

/// Greedy next tokens of `[b, vocab]` logits.
fn argmax_rows(logits: Tensor<2>) -> Vec<u32> {
    let [b, v] = logits.dims();
    let host = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    (0..b)
        .map(|r| {
            let row = &host[r * v..(r + 1) * v];
            row.iter().enumerate().fold(0, |best, (i, x)| if *x > row[best] { i } else { best }) as u32
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut ts = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    Ok(median(ts))
}

/// Builds a random model of `config` on `placement` (fast uniform weights with the init's
/// standard deviation) and runs the rows of `opts`, calling `on_row` as each finishes.
pub fn run(
    config: &Qwen2VlConfig,
    placement: &Placement,
    opts: &BenchOptions,
    mut on_row: impl FnMut(&BenchRow),
) -> Result<Vec<BenchRow>> {
    let adev = placement.device.clone().autodiff();
    let mut w = RandomWeights::fast(7);
    w.dtype = placement.dtype();
    let t0 = Instant::now();
    let model = Qwen2Vl::load(&mut w, config, &adev)?;
    let lora = LoraConfig {
        rank: opts.lora_rank,
        alpha: 2.0 * opts.lora_rank as f64,
        dropout: 0.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
    };
    let model = apply_lora(model, &lora)?;
    let infer = model.valid();
    let mut rows = Vec::new();
    let mut push = |row: BenchRow, rows: &mut Vec<BenchRow>| {
        on_row(&row);
        rows.push(row);
    };
    push(BenchRow { row: "build".into(), seconds: t0.elapsed().as_secs_f64(), tokens_per_s: None }, &mut rows);
    let prompt = bench_prompt(config, opts.image, opts.text_tokens);
    // The decode rows time only the decode loop of the last repetition.
    let decode_seconds = std::cell::Cell::new(0.0);
    let wants = |r: &str| opts.rows.iter().any(|x| x == r);
    if wants("vision") {
        let px = prompt.pixels.clone().expect("the bench prompt has an image");
        let s = time(opts.reps, || {
            let t = Tensor::<2>::from_data(
                TensorData::new(px.data.clone(), [px.n_patches(), px.patch_dim]),
                (&placement.device, DType::F32),
            );
            sync(infer.visual.forward(t, &px.grids));
            Ok(())
        })?;
        push(BenchRow { row: "vision".into(), seconds: s, tokens_per_s: None }, &mut rows);
    }
    if wants("prefill") {
        let batch = Batch::left_padded(std::slice::from_ref(&prompt), 0)?;
        let s = time(opts.reps, || {
            let out = infer.forward(&batch, None, false)?;
            sync(out.logits);
            Ok(())
        })?;
        push(BenchRow { row: "prefill".into(), seconds: s, tokens_per_s: None }, &mut rows);
    }
    if wants("decode") {
        for &b in &opts.decode_batches {
            let batch = Batch::left_padded(&vec![prompt.clone(); b], 0)?;
            let s = time(opts.reps, || {
                // Prefill (not timed), then `new_tokens - 1` greedy decode steps, each with its
                // argmax read back to the host as generation does.
                let mut cache = KvCache::default();
                let fwd = infer.forward_last(&batch, Some(&mut cache), false)?;
                let n = batch.seq_len();
                let mut pos: Vec<i64> = fwd.positions.iter().map(|p| n as i64 + p.rope_delta).collect();
                let mut tokens = argmax_rows(fwd.logits.reshape([b, config.text.vocab_size]));
                let t = Instant::now();
                for _ in 1..opts.new_tokens {
                    let (logits, _) = infer.decode_step(&tokens, &pos, &mut cache, false)?;
                    tokens = argmax_rows(logits);
                    pos.iter_mut().for_each(|p| *p += 1);
                }
                decode_seconds.set(t.elapsed().as_secs_f64());
                Ok(())
            })
            .map(|_| decode_seconds.get())?;
            let steps = (opts.new_tokens - 1) as f64;
            push(
                BenchRow {
                    row: format!("decode_b{b}"),
                    seconds: s,
                    tokens_per_s: Some(b as f64 * steps / s.max(1e-9)),
                },
                &mut rows,
            );
        }
    }
    if wants("lora_step") {
        let batch = Batch::left_padded(std::slice::from_ref(&prompt), 0)?;
        let s = time(opts.reps, || {
            let out = model.forward(&batch, None, true)?;
            let [_, n, _] = out.logits.dims();
            let loss = out.logits.narrow(1, n - 1, 1).mean();
            let grads = loss.backward();
            // Read one adapter gradient back so the backward pass has finished.
            if let Some(l) = model.model.layers.first().and_then(|l| l.self_attn.q_proj.lora.as_ref())
                && let Some(g) = l.b.val().grad(&grads)
            {
                sync(g);
            }
            Ok(())
        })?;
        push(BenchRow { row: "lora_step".into(), seconds: s, tokens_per_s: None }, &mut rows);
    }
    Ok(rows)
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Every tensor of an HF Qwen2-VL checkpoint of `config` (saved names, torch layout), in the
/// order the loader reads them.
pub fn hf_tensor_shapes(c: &Qwen2VlConfig) -> Vec<(String, Vec<usize>)> {
    let (v, t) = (&c.vision, &c.text);
    let e = v.embed_dim;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut put = |n: String, s: &[usize]| out.push((n, s.to_vec()));
    put(
        "visual.patch_embed.proj.weight".into(),
        &[e, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size],
    );
    for i in 0..v.depth {
        let p = format!("visual.blocks.{i}");
        for n in ["norm1", "norm2"] {
            put(format!("{p}.{n}.weight"), &[e]);
            put(format!("{p}.{n}.bias"), &[e]);
        }
        for (n, o, i_) in
            [("attn.qkv", 3 * e, e), ("attn.proj", e, e), ("mlp.fc1", v.mlp_dim(), e), ("mlp.fc2", e, v.mlp_dim())]
        {
            put(format!("{p}.{n}.weight"), &[o, i_]);
            put(format!("{p}.{n}.bias"), &[o]);
        }
    }
    let m2 = e * v.spatial_merge_size * v.spatial_merge_size;
    put("visual.merger.ln_q.weight".into(), &[e]);
    put("visual.merger.ln_q.bias".into(), &[e]);
    for (n, o, i_) in [("visual.merger.mlp.0", m2, m2), ("visual.merger.mlp.2", v.hidden_size, m2)] {
        put(format!("{n}.weight"), &[o, i_]);
        put(format!("{n}.bias"), &[o]);
    }
    let (hs, hd) = (t.hidden_size, t.head_dim());
    put("model.embed_tokens.weight".into(), &[t.vocab_size, hs]);
    for i in 0..t.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (n, o) in [
            ("q_proj", t.num_attention_heads * hd),
            ("k_proj", t.num_key_value_heads * hd),
            ("v_proj", t.num_key_value_heads * hd),
        ] {
            put(format!("{p}.self_attn.{n}.weight"), &[o, hs]);
            put(format!("{p}.self_attn.{n}.bias"), &[o]);
        }
        put(format!("{p}.self_attn.o_proj.weight"), &[hs, t.num_attention_heads * hd]);
        put(format!("{p}.mlp.gate_proj.weight"), &[t.intermediate_size, hs]);
        put(format!("{p}.mlp.up_proj.weight"), &[t.intermediate_size, hs]);
        put(format!("{p}.mlp.down_proj.weight"), &[hs, t.intermediate_size]);
        put(format!("{p}.input_layernorm.weight"), &[hs]);
        put(format!("{p}.post_attention_layernorm.weight"), &[hs]);
    }
    put("model.norm.weight".into(), &[hs]);
    if !t.tie_word_embeddings {
        put("lm_head.weight".into(), &[t.vocab_size, hs]);
    }
    out
}

/// Writes a random checkpoint of `config` (fast uniform weights, `dtype` on disk) as HF does:
/// `config.json`, `model-0000K-of-0000N.safetensors` shards of at most `shard_bytes`, and
/// `model.safetensors.index.json`. Memory use is one shard.
pub fn write_random_checkpoint(
    c: &Qwen2VlConfig,
    dir: &std::path::Path,
    dtype: DType,
    shard_bytes: usize,
) -> Result<()> {
    use crate::weights::WeightSource;
    std::fs::create_dir_all(dir).map_err(|e| VlmError::io(dir, e))?;
    let cfg = serde_json::to_string_pretty(&c.to_hf_json()).map_err(|e| VlmError::Input(e.to_string()))?;
    let p = dir.join("config.json");
    std::fs::write(&p, cfg).map_err(|e| VlmError::io(&p, e))?;
    let mut w = RandomWeights::fast(11);
    w.dtype = dtype;
    // Group tensors into shards by size first, so shard names carry the total count.
    let shapes = hf_tensor_shapes(c);
    let size = |s: &[usize]| s.iter().product::<usize>() * dtype.size();
    let mut groups: Vec<Vec<(String, Vec<usize>)>> = vec![vec![]];
    let mut acc = 0usize;
    for (n, s) in shapes {
        if acc > 0 && acc + size(&s) > shard_bytes {
            groups.push(vec![]);
            acc = 0;
        }
        acc += size(&s);
        groups.last_mut().expect("one group").push((n, s));
    }
    let total = groups.len();
    let st_dtype = match dtype {
        DType::BF16 => safetensors::Dtype::BF16,
        DType::F16 => safetensors::Dtype::F16,
        _ => safetensors::Dtype::F32,
    };
    let mut weight_map = serde_json::Map::new();
    let mut total_size = 0usize;
    for (k, group) in groups.into_iter().enumerate() {
        let file = format!("model-{:05}-of-{total:05}.safetensors", k + 1);
        let mut raws = Vec::new();
        for (n, s) in group {
            let r = w.take_raw(&n, &s)?;
            total_size += r.bytes.len();
            weight_map.insert(n.clone(), serde_json::Value::String(file.clone()));
            raws.push((n, r));
        }
        let views = raws
            .iter()
            .map(|(n, r)| {
                safetensors::tensor::TensorView::new(st_dtype, r.shape.clone(), &r.bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| VlmError::Weights { file: file.clone(), msg: format!("`{n}`: {e}") })
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = [("format".to_string(), "pt".to_string())].into_iter().collect();
        let path = dir.join(&file);
        safetensors::serialize_to_file(views, Some(meta), &path)
            .map_err(|e| VlmError::Weights { file: path.display().to_string(), msg: format!("write failed: {e}") })?;
    }
    let index = serde_json::json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
    let p = dir.join("model.safetensors.index.json");
    std::fs::write(&p, serde_json::to_string_pretty(&index).map_err(|e| VlmError::Input(e.to_string()))?)
        .map_err(|e| VlmError::io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{HostTensor, WeightSource};

    /// Records the names and shapes the loader asks for.
    struct Recorder(RandomWeights, Vec<(String, Vec<usize>)>);
    impl WeightSource for Recorder {
        fn take(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
            self.1.push((name.to_string(), shape.to_vec()));
            self.0.take(name, shape)
        }
        fn contains(&self, _: &str) -> bool {
            false
        }
        fn skip(&mut self, _: &str) {}
        fn finish(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_layout_is_what_the_loader_reads() {
        for tie in [false, true] {
            let mut c = Qwen2VlConfig::tiny();
            c.text.tie_word_embeddings = tie;
            let mut r = Recorder(RandomWeights::new(1), vec![]);
            Qwen2Vl::load(&mut r, &c, &burn::tensor::Device::flex()).unwrap();
            let mut want = hf_tensor_shapes(&c);
            let mut got = r.1;
            want.sort();
            got.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn shapes_have_the_released_parameter_counts() {
        let count = |s: &str| {
            hf_tensor_shapes(&shape_config(s).unwrap()).iter().map(|(_, s)| s.iter().product::<usize>()).sum::<usize>()
        };
        // Qwen2-VL-2B-Instruct: 2,208,985,600 parameters; 7B: 8,291,375,616 (HF model cards' safetensors totals).
        assert_eq!(count("2b"), 2_208_985_600);
        assert_eq!(count("7b"), 8_291_375_616);
    }
}

//! `Qwen2VLForConditionalGeneration`: vision tower + language model + LM head, with host-side
//! batching (left padding), M-RoPE positions and the image-feature splice.

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};

use crate::config::Qwen2VlConfig;
use crate::error::{Result, VlmError};
use crate::image_proc::PixelValues;
use crate::nn::{cast, export_linear, load_linear};
use crate::rope::{MropePositions, mrope_cos_sin, mrope_positions};
use crate::text::{KvCache, TextModel};
use crate::vision::VisionTower;
use crate::weights::{RandomWeights, SafetensorsWeights, SaveDtype, TensorSink, WeightSource};

#[derive(Module, Debug)]
pub struct Qwen2Vl {
    pub visual: VisionTower,
    pub model: TextModel,
    /// `None` when tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    pub config: Qwen2VlConfig,
}

/// One prompt: token ids (image pads already expanded) and its images.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub pixels: Option<PixelValues>,
}

impl Prompt {
    pub fn text(ids: Vec<u32>) -> Self {
        Prompt { ids, pixels: None }
    }
    fn grids(&self) -> &[[usize; 3]] {
        self.pixels.as_ref().map_or(&[], |p| &p.grids)
    }
}

/// A left-padded batch of prompts, ready for the model.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[b][s]`
    pub ids: Vec<Vec<u32>>,
    /// `[b][s]`, false on padding.
    pub mask: Vec<Vec<bool>>,
    /// Images of all rows, row by row.
    pub pixels: Option<PixelValues>,
    /// Images of each row (their grids).
    pub grids: Vec<Vec<[usize; 3]>>,
}

impl Batch {
    /// Left-pads every prompt to the longest with `pad_id` (the last prompt token of every row
    /// then sits at the same index, `s - 1`).
    pub fn left_padded(prompts: &[Prompt], pad_id: u32) -> Result<Self> {
        if prompts.is_empty() {
            return Err(VlmError::Input("empty batch".into()));
        }
        let s = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        if s == 0 {
            return Err(VlmError::Input("every prompt is empty".into()));
        }
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        let mut pixels: Option<PixelValues> = None;
        let mut grids = Vec::new();
        for p in prompts {
            let pad = s - p.ids.len();
            let mut row = vec![pad_id; pad];
            row.extend_from_slice(&p.ids);
            let mut m = vec![false; pad];
            m.extend(std::iter::repeat_n(true, p.ids.len()));
            ids.push(row);
            mask.push(m);
            grids.push(p.grids().to_vec());
            if let Some(px) = &p.pixels {
                match &mut pixels {
                    None => pixels = Some(px.clone()),
                    Some(all) => all.extend(px),
                }
            }
        }
        Ok(Batch { ids, mask, pixels, grids })
    }

    pub fn batch_size(&self) -> usize {
        self.ids.len()
    }
    pub fn seq_len(&self) -> usize {
        self.ids[0].len()
    }
}

/// Output of a full forward pass.
pub struct Forward {
    /// `[b, s, vocab]` (`[b, 1, vocab]` from [`Qwen2Vl::forward_last`])
    pub logits: Tensor<3>,
    /// Final-norm hidden states `[b, s, hidden]` (the value head's input).
    pub hidden: Tensor<3>,
    pub positions: Vec<MropePositions>,
}

impl Qwen2Vl {
    /// Builds the model from any weight source (HF names and shapes); base weights take the
    /// source's precision ([`WeightSource::dtype`]).
    pub fn load(w: &mut dyn WeightSource, config: &Qwen2VlConfig, dev: &Device) -> Result<Self> {
        let visual = VisionTower::load(w, &config.vision, dev)?;
        let model = TextModel::load(w, &config.text, dev)?;
        let t = &config.text;
        let lm_head = if t.tie_word_embeddings {
            // Some tied checkpoints still store a copy; it is the same matrix.
            w.skip("lm_head.weight");
            None
        } else {
            Some(load_linear(w, "lm_head", t.hidden_size, t.vocab_size, false, dev)?)
        };
        w.finish()?;
        Ok(Qwen2Vl { visual, model, lm_head, config: config.clone() })
    }

    /// `config.json` + safetensors (single or sharded) from an HF checkpoint directory.
    pub fn from_dir(dir: &Path, dev: &Device) -> Result<Self> {
        Self::from_dir_as(dir, dev, DType::F32)
    }

    /// [`Self::from_dir`] with the base weights in `dtype` (f32, bf16 or f16), read from the
    /// files straight into that precision.
    pub fn from_dir_as(dir: &Path, dev: &Device, dtype: DType) -> Result<Self> {
        let config = Qwen2VlConfig::from_file(&dir.join("config.json"))?;
        let mut w = SafetensorsWeights::open_dir(dir)?.with_dtype(dtype);
        Self::load(&mut w, &config, dev)
    }

    /// A seeded random model of any shape, without files.
    pub fn random(config: &Qwen2VlConfig, seed: u64, dev: &Device) -> Result<Self> {
        Self::random_as(config, seed, dev, DType::F32)
    }

    /// [`Self::random`] with the base weights in `dtype` (the same values, rounded).
    pub fn random_as(config: &Qwen2VlConfig, seed: u64, dev: &Device, dtype: DType) -> Result<Self> {
        config.validate("<in-code config>")?;
        let mut w = RandomWeights::new(seed);
        w.dtype = dtype;
        Self::load(&mut w, config, dev)
    }

    /// All base parameters in HF names and layout (LoRA adapters are not included; merge them
    /// first with [`crate::lora::merge_lora`] to export a fine-tuned model).
    pub fn export(&self) -> TensorSink {
        let mut sink = TensorSink::default();
        self.visual.export(&mut sink);
        self.model.export(&mut sink);
        if let Some(h) = &self.lm_head {
            export_linear(h, "lm_head", &mut sink);
        }
        sink
    }

    /// Writes `config.json` (flat layout) and `model.safetensors` into `dir`.
    pub fn save_hf(&self, dir: &Path, dtype: SaveDtype) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| VlmError::io(dir, e))?;
        let cfg = serde_json::to_string_pretty(&self.config.to_hf_json()).expect("config serialises");
        let p = dir.join("config.json");
        std::fs::write(&p, cfg).map_err(|e| VlmError::io(&p, e))?;
        let meta = [("format".to_string(), "pt".to_string())].into_iter().collect();
        self.export().save(&dir.join("model.safetensors"), dtype, Some(meta))
    }

    pub fn device(&self) -> Device {
        self.model.embed_tokens.val().device()
    }

    /// Precision of the frozen base weights and the activations (LoRA adapters are f32).
    pub fn dtype(&self) -> DType {
        self.model.embed_tokens.val().dtype()
    }

    /// Logits in f32 whatever the model's precision (log-probs and sampling need it).
    ///
    /// # Shapes
    /// - hidden: `[b, s, hidden]` -> `[b, s, vocab]`
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(h) if h.bias.is_some() => crate::cpu_bf16::linear(h, hidden),
            Some(h) => crate::cpu_bf16::head_last(hidden, h.weight.val(), false),
            // bf16 on flex: f32 logits holding bf16-rounded values, as the bf16 head then `.float()`.
            None => crate::cpu_bf16::head_last(hidden, self.model.embed_tokens.val().transpose(), true),
        };
        cast(logits, DType::F32)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let v = self.config.text.vocab_size;
        match ids.iter().find(|&&i| i as usize >= v) {
            Some(bad) => Err(VlmError::Input(format!("token id {bad} is outside the vocabulary (vocab_size {v})"))),
            None => Ok(()),
        }
    }

    /// Token embeddings with the vision features spliced in at the `<|image_pad|>` positions.
    fn embed(&self, batch: &Batch) -> Result<Tensor<3>> {
        let dev = self.device();
        let (b, s) = (batch.batch_size(), batch.seq_len());
        let h = self.config.text.hidden_size;
        let flat: Vec<i64> = batch.ids.iter().flatten().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * s]), &dev);
        let text = self.model.embed_tokens.val().select(0, idx);
        let img_slots: Vec<usize> = (0..b * s)
            .filter(|&k| batch.ids[k / s][k % s] == self.config.image_token_id && batch.mask[k / s][k % s])
            .collect();
        let m2 = self.config.vision.spatial_merge_size.pow(2);
        let n_feats = batch.pixels.as_ref().map_or(0, |p| p.n_patches() / m2);
        if img_slots.len() != n_feats {
            return Err(VlmError::Input(format!(
                "{} <|image_pad|> token(s) but the images' grids give {n_feats} image feature(s)",
                img_slots.len()
            )));
        }
        if n_feats == 0 {
            return Ok(text.reshape([b, s, h]));
        }
        let px = batch.pixels.as_ref().expect("n_feats > 0 implies pixels");
        let pd = self.config.vision.patch_dim();
        if px.patch_dim != pd || px.data.len() != px.n_patches() * pd {
            return Err(VlmError::Input(format!(
                "pixel_values hold {} values of width {}; the vision tower expects rows of {pd}",
                px.data.len(),
                px.patch_dim
            )));
        }
        let pixels = Tensor::<2>::from_data(TensorData::new(px.data.clone(), [px.n_patches(), pd]), (&dev, DType::F32));
        let feats = self.visual.forward(pixels, &px.grids);
        // Gather from [text rows; image rows] so the splice stays differentiable.
        let mut gather: Vec<i64> = (0..(b * s) as i64).collect();
        for (k, &slot) in img_slots.iter().enumerate() {
            gather[slot] = (b * s + k) as i64;
        }
        let table = Tensor::cat(vec![text, feats], 0);
        let gi = Tensor::<1, Int>::from_data(TensorData::new(gather, [b * s]), &dev);
        Ok(table.select(0, gi).reshape([b, s, h]))
    }

    fn cos_sin(&self, pos: &[[i64; 3]], b: usize, s: usize) -> (Tensor<4>, Tensor<4>) {
        let t = &self.config.text;
        let hd = t.head_dim();
        let (c, sn) = mrope_cos_sin(pos, hd, t.rope_theta, t.mrope_section);
        let (dev, dtype) = (self.device(), self.dtype());
        (
            Tensor::from_data(TensorData::new(c, [b, 1, s, hd]), (&dev, dtype)),
            Tensor::from_data(TensorData::new(sn, [b, 1, s, hd]), (&dev, dtype)),
        )
    }

    /// Mask `[b, 1, s, past + s]`: true where query `i` must not see key `j` (future or padding).
    /// A padding query still sees itself: a fully masked row would give NaN, which leaks into
    /// real rows through `0 * NaN` in the attention product (padding outputs are never used).
    fn mask(&self, key_mask: &[Vec<bool>], s: usize) -> Tensor<4, Bool> {
        let b = key_mask.len();
        let t = key_mask[0].len();
        let past = t - s;
        let mut m = Vec::with_capacity(b * s * t);
        for km in key_mask {
            for i in 0..s {
                for (j, &ok) in km.iter().enumerate() {
                    m.push((!ok || j > past + i) && j != past + i);
                }
            }
        }
        Tensor::from_data(TensorData::new(m, [b, 1, s, t]), &self.device())
    }

    /// Full forward pass over a batch; with `cache`, it is filled for later decoding (it must
    /// be empty).
    pub fn forward(&self, batch: &Batch, cache: Option<&mut KvCache>, adapters: bool) -> Result<Forward> {
        let (hidden, positions) = self.run(batch, cache, adapters)?;
        let logits = self.lm_logits(hidden.clone());
        Ok(Forward { logits, hidden, positions })
    }

    /// [`Self::forward`] with logits for the last position only (`[b, 1, vocab]`; every row's
    /// last token, the batch being left-padded): what generation needs after a prompt, as
    /// transformers' `generate` keeps one position. Over a prompt the tied head is the largest
    /// product, and at batch 8 its f32 logits for every position were 1.6 GB at the 2B shape.
    pub fn forward_last(&self, batch: &Batch, cache: Option<&mut KvCache>, adapters: bool) -> Result<Forward> {
        let (hidden, positions) = self.run(batch, cache, adapters)?;
        let s = hidden.dims()[1];
        let logits = self.lm_logits(hidden.clone().narrow(1, s - 1, 1));
        Ok(Forward { logits, hidden, positions })
    }

    /// Final-norm hidden states `[b, s, hidden]` only (no LM head), e.g. for scoring a slice.
    pub fn forward_hidden(&self, batch: &Batch, adapters: bool) -> Result<Tensor<3>> {
        Ok(self.run(batch, None, adapters)?.0)
    }

    fn run(
        &self,
        batch: &Batch,
        cache: Option<&mut KvCache>,
        adapters: bool,
    ) -> Result<(Tensor<3>, Vec<MropePositions>)> {
        let (b, s) = (batch.batch_size(), batch.seq_len());
        for (r, row) in batch.ids.iter().enumerate() {
            if row.len() != s || batch.mask[r].len() != s {
                return Err(VlmError::Input(format!("batch row {r} has length {} (expected {s})", row.len())));
            }
            self.check_ids(row)?;
        }
        let positions = batch
            .ids
            .iter()
            .zip(&batch.mask)
            .zip(&batch.grids)
            .map(|((ids, m), g)| mrope_positions(ids, Some(m), g, &self.config))
            .collect::<Result<Vec<_>>>()?;
        let embeds = self.embed(batch)?;
        let flat_pos: Vec<[i64; 3]> = positions.iter().flat_map(|p| p.pos.iter().copied()).collect();
        let (cos, sin) = self.cos_sin(&flat_pos, b, s);
        let mask = self.mask(&batch.mask, s);
        let cache = match cache {
            Some(c) => {
                if !c.is_empty() {
                    return Err(VlmError::Input("forward with a non-empty KV cache; use decode_step".into()));
                }
                c.key_mask = batch.mask.clone();
                Some(c)
            }
            None => None,
        };
        let hidden = self.model.forward_embeds(embeds, cos, sin, mask, cache, adapters);
        Ok((hidden, positions))
    }

    /// One decoding step for every row: `tokens[r]` at M-RoPE position `pos[r]` (all axes).
    ///
    /// # Shapes
    /// - returns logits `[b, vocab]` and hidden `[b, hidden]`
    pub fn decode_step(
        &self,
        tokens: &[u32],
        pos: &[i64],
        cache: &mut KvCache,
        adapters: bool,
    ) -> Result<(Tensor<2>, Tensor<2>)> {
        let b = tokens.len();
        if cache.key_mask.len() != b || pos.len() != b {
            return Err(VlmError::Input(format!(
                "decode_step: {b} tokens, {} positions, cache of batch {}",
                pos.len(),
                cache.key_mask.len()
            )));
        }
        self.check_ids(tokens)?;
        let dev = self.device();
        let hs = self.config.text.hidden_size;
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(tokens.iter().map(|&t| t as i64).collect::<Vec<_>>(), [b]),
            &dev,
        );
        let embeds = self.model.embed_tokens.val().select(0, idx).reshape([b, 1, hs]);
        let p: Vec<[i64; 3]> = pos.iter().map(|&x| [x; 3]).collect();
        let (cos, sin) = self.cos_sin(&p, b, 1);
        for m in cache.key_mask.iter_mut() {
            m.push(true);
        }
        let mask = self.mask(&cache.key_mask, 1);
        let hidden = self.model.forward_embeds(embeds, cos, sin, mask, Some(cache), adapters);
        let logits = self.lm_logits(hidden.clone());
        let v = self.config.text.vocab_size;
        Ok((logits.reshape([b, v]), hidden.reshape([b, hs])))
    }
}

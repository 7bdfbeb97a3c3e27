//! [`Vlm`]: model + tokenizer + image processor, from a checkpoint directory or built in code.

use std::path::Path;

use burn::tensor::{DType, Device};
use image::RgbImage;

use crate::config::Qwen2VlConfig;
use crate::error::Result;
use crate::generate::{GenerateConfig, Generation, generate};
use crate::hf_files::{GenerationDefaults, ModelDirs};
use crate::image_proc::ImageProcessor;
use crate::model::{Prompt, Qwen2Vl};
use crate::tokenizer::{ChatMessage, Qwen2VlTokenizer};

pub struct Vlm {
    pub model: Qwen2Vl,
    pub tokenizer: Qwen2VlTokenizer,
    pub processor: ImageProcessor,
    /// `generation_config.json`'s stop tokens and decoding defaults (transformers' defaults without one).
    pub generation: GenerationDefaults,
}

impl Vlm {
    /// Loads `config.json`, `model*.safetensors`, `tokenizer.json` and (if present)
    /// `preprocessor_config.json` and `generation_config.json` from an HF Qwen2-VL directory.
    /// A directory holding only a PEFT LoRA adapter loads its base (`base_model_name_or_path`,
    /// a local path) with the adapter applied; tokenizer / processor / generation files are
    /// taken from the adapter directory when it has them, else from the base.
    pub fn from_dir(dir: &Path, dev: &Device) -> Result<Self> {
        Self::from_dir_as(dir, dev, DType::F32)
    }

    /// [`Vlm::from_dir`] with the base weights in `dtype` (f32, bf16, f16), read from the files
    /// straight into that precision (LoRA adapters stay f32).
    pub fn from_dir_as(dir: &Path, dev: &Device, dtype: DType) -> Result<Self> {
        let dirs = ModelDirs::resolve(dir)?;
        let model = dirs.load_model(|base| Qwen2Vl::from_dir_as(base, dev, dtype))?;
        Self::with_files(model, &dirs)
    }

    /// `model` with the tokenizer, image processor and generation defaults of `dirs`.
    pub fn with_files(model: Qwen2Vl, dirs: &ModelDirs) -> Result<Self> {
        let tokenizer = Qwen2VlTokenizer::from_file(&dirs.file("tokenizer.json"))?;
        let pp = dirs.file("preprocessor_config.json");
        let processor = if pp.exists() { ImageProcessor::from_file(&pp)? } else { ImageProcessor::default() };
        let gp = dirs.file("generation_config.json");
        let generation = if gp.is_file() { GenerationDefaults::from_file(&gp)? } else { GenerationDefaults::default() };
        Ok(Vlm { model, tokenizer, processor, generation })
    }

    /// A small random Qwen2-VL ([`Qwen2VlConfig::tiny`] unless `config` is given) with the
    /// built-in byte-level tokenizer: an embedded CPU default that needs no files.
    /// `max_pixels` caps image size (and so the number of image tokens).
    pub fn random(config: Option<Qwen2VlConfig>, seed: u64, max_pixels: usize, dev: &Device) -> Result<Self> {
        Self::random_as(config, seed, max_pixels, dev, DType::F32)
    }

    /// [`Vlm::random`] with the base weights in `dtype`.
    pub fn random_as(
        config: Option<Qwen2VlConfig>,
        seed: u64,
        max_pixels: usize,
        dev: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let config = config.unwrap_or_else(Qwen2VlConfig::tiny);
        let model = Qwen2Vl::random_as(&config, seed, dev, dtype)?;
        let processor =
            ImageProcessor { max_pixels, min_pixels: (56 * 56).min(max_pixels), ..ImageProcessor::default() };
        Ok(Vlm {
            model,
            tokenizer: Qwen2VlTokenizer::byte_level(),
            processor,
            generation: GenerationDefaults::default(),
        })
    }

    /// Chat messages + their images (in placeholder order) -> a model prompt.
    pub fn prompt(&self, messages: &[ChatMessage], images: &[RgbImage]) -> Result<Prompt> {
        let pixels = self.processor.preprocess(images)?;
        let ids = self.tokenizer.encode_chat(messages, &pixels.grids, self.processor.merge_size, true)?;
        Ok(Prompt { ids, pixels: if images.is_empty() { None } else { Some(pixels) } })
    }

    /// Token id used to pad batches.
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.special.endoftext
    }

    /// Stop tokens: `<|im_end|>`, `<|endoftext|>`, the config's and `generation_config.json`'s eos ids.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut s = vec![self.tokenizer.special.im_end, self.tokenizer.special.endoftext];
        for &e in self.model.config.eos_token_ids.iter().chain(&self.generation.eos_token_ids) {
            if !s.contains(&e) {
                s.push(e);
            }
        }
        s
    }

    /// Generates for a batch of prompts; `cfg.stop_tokens` defaults to [`Vlm::stop_tokens`] when empty.
    pub fn generate(&self, prompts: &[Prompt], cfg: &GenerateConfig, adapters: bool) -> Result<Generation> {
        let mut cfg = cfg.clone();
        if cfg.stop_tokens.is_empty() {
            cfg.stop_tokens = self.stop_tokens();
        }
        generate(&self.model, prompts, &cfg, self.pad_id(), adapters)
    }
}

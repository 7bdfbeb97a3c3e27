//! Our Qwen2-VL as a `vldac_evals::Model`: chat requests → replies, batched.

use std::path::Path;

use anyhow::Result;
use vldac_evals::{ChatMessage, Model, ModelError, Request, Role, TokenUsage, Visual};
use vldac_vlm::{GenerateConfig, Placement, Vlm};

pub struct VlmEvalModel {
    vlm: Vlm,
    name: String,
    usage: Vec<TokenUsage>,
}

impl VlmEvalModel {
    /// A checkpoint directory, optionally with a PEFT LoRA adapter directory.
    pub fn from_dir(dir: &Path, adapter: Option<&Path>, placement: &Placement) -> Result<Self> {
        let mut vlm = Vlm::from_dir_as(dir, &placement.device, placement.dtype())
            .map_err(|e| anyhow::anyhow!("model {}: {e}", dir.display()))?;
        if let Some(a) = adapter {
            let (model, _) = vldac_vlm::load_peft_adapter(vlm.model, a)
                .map_err(|e| anyhow::anyhow!("adapter {}: {e}", a.display()))?;
            vlm.model = model;
        }
        Ok(VlmEvalModel { vlm, name: dir.display().to_string(), usage: Vec::new() })
    }

    /// The tiny random model with the byte-level tokenizer (smoke tests, no files).
    pub fn tiny_random(seed: u64, placement: &Placement) -> Result<Self> {
        let vlm = Vlm::random_as(None, seed, 56 * 56 * 4, &placement.device, placement.dtype())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(VlmEvalModel { vlm, name: format!("tiny-random-{seed}"), usage: Vec::new() })
    }
}

fn convert(msg: &ChatMessage) -> (vldac_vlm::ChatMessage, Vec<image::RgbImage>) {
    // Video frames are given to Qwen2-VL as images (one per frame), in time order.
    let images: Vec<image::RgbImage> = msg
        .visuals
        .iter()
        .flat_map(|v| match v {
            Visual::Image(f) => vec![f.to_image()],
            Visual::Video(frames) => frames.iter().map(|f| f.to_image()).collect(),
        })
        .collect();
    let m = match msg.role {
        Role::User => vldac_vlm::ChatMessage::user_with_images(images.len(), msg.text.clone()),
        Role::System => vldac_vlm::ChatMessage::text(vldac_vlm::Role::System, msg.text.clone()),
        Role::Assistant => vldac_vlm::ChatMessage::text(vldac_vlm::Role::Assistant, msg.text.clone()),
    };
    (m, images)
}

impl Model for VlmEvalModel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        let err = |e: vldac_vlm::VlmError| ModelError(e.to_string());
        let mut prompts = Vec::with_capacity(batch.len());
        for req in batch {
            let mut messages = Vec::new();
            let mut images = Vec::new();
            for m in &req.messages {
                let (msg, imgs) = convert(m);
                messages.push(msg);
                images.extend(imgs);
            }
            prompts.push(self.vlm.prompt(&messages, &images).map_err(err)?);
        }
        // One call per distinct generation setting keeps batching where requests agree.
        let first = batch.first().map(|r| r.generation.clone());
        let same = batch.iter().all(|r| Some(&r.generation) == first.as_ref());
        let mut replies = Vec::with_capacity(batch.len());
        let mut usage: Vec<TokenUsage> =
            prompts.iter().map(|p| TokenUsage { input_tokens: p.ids.len() as u64, output_tokens: 0 }).collect();
        let groups: Vec<Vec<usize>> =
            if same { vec![(0..batch.len()).collect()] } else { (0..batch.len()).map(|i| vec![i]).collect() };
        for group in groups {
            let g = &batch[group[0]].generation;
            let cfg = GenerateConfig {
                max_new_tokens: g.max_new_tokens,
                temperature: g.temperature,
                // top-p / top-k (when sampling) from generation_config.json; stop tokens via Vlm::generate.
                ..self.vlm.generation.generate_config(g.max_new_tokens)
            };
            let sub: Vec<_> = group.iter().map(|&i| prompts[i].clone()).collect();
            let out = self.vlm.generate(&sub, &cfg, true).map_err(err)?;
            for (&i, tokens) in group.iter().zip(&out.tokens) {
                usage[i].output_tokens = tokens.len() as u64;
                replies.push(self.vlm.tokenizer.decode(tokens, true).map_err(err)?);
            }
        }
        self.usage = usage;
        Ok(replies)
    }

    fn last_usage(&self) -> Vec<TokenUsage> {
        self.usage.clone()
    }
}

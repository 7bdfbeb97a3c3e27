//! `vldac vlm generate | forward`: run a Qwen2-VL checkpoint (or the built-in tiny random
//! model) from the command line. The logic lives in `vldac-vlm`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use vldac_vlm::image_proc::load_image;
use vldac_vlm::{Batch, ChatMessage, GenerateConfig, Prompt, Vlm};

use crate::train_cmd::PlacementArgs;

#[derive(Subcommand)]
pub enum VlmCommand {
    /// Generate a reply to a prompt with optional images (prints JSON).
    Generate {
        /// HF Qwen2-VL directory (config.json, tokenizer.json, model*.safetensors).
        #[arg(long, required_unless_present = "tiny_random")]
        model: Option<PathBuf>,
        /// Use the built-in small random model with this seed instead of a checkpoint.
        #[arg(long)]
        tiny_random: Option<u64>,
        /// Image file(s), shown before the prompt text in order.
        #[arg(long)]
        image: Vec<PathBuf>,
        #[arg(long)]
        prompt: String,
        /// Default: the checkpoint's generation_config.json, else 64.
        #[arg(long)]
        max_new_tokens: Option<usize>,
        /// 0 = greedy. Default: generation_config.json's (greedy unless it sets do_sample).
        #[arg(long)]
        temperature: Option<f32>,
        /// Default: generation_config.json's when it samples, else 1 (off).
        #[arg(long)]
        top_p: Option<f32>,
        /// Default: generation_config.json's when it samples, else 0 (off).
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// Time the model at a real Qwen2-VL shape with random weights (prints JSON lines: one per
    /// row, then the peak RSS); `crates/vlm/bench/hf_shapes.py` times HF transformers the same way.
    Bench {
        /// 2b, 7b, or a cut of them with :LAYERS (e.g. 2b:4 = 4 text layers + 4 vision blocks).
        #[arg(long, default_value = "2b:4")]
        shape: String,
        /// Rows to run: vision, prefill, decode, lora_step.
        #[arg(long, value_delimiter = ',', default_value = "vision,prefill,decode,lora_step")]
        rows: Vec<String>,
        /// Decode batch sizes.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 32)]
        new_tokens: usize,
        /// Timed repetitions per row (median; after one warm-up).
        #[arg(long, default_value_t = 1)]
        reps: usize,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// Write a random checkpoint of a real Qwen2-VL shape (HF layout, sharded) for load and
    /// speed measurements without downloads.
    MakeRandom {
        /// 2b, 7b, or 2b:LAYERS.
        #[arg(long)]
        shape: String,
        /// Dtype on disk: f32, bf16 or f16.
        #[arg(long, default_value = "bf16")]
        dtype: vldac_vlm::Precision,
        #[arg(long)]
        out: PathBuf,
        /// Largest shard in GB.
        #[arg(long, default_value_t = 2.0)]
        shard_gb: f64,
    },
    /// Load a checkpoint onto a device in a precision; prints load seconds, parameters and the
    /// process's peak RSS as JSON.
    Load {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// Logits for given token ids and images: FILE.json is {"input_ids": [...], "images": [...]}
    /// with the <|image_pad|> tokens already expanded; prints {"logits": [[...], ...]}.
    Forward {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        placement: PlacementArgs,
    },
}

pub fn run(cmd: VlmCommand) -> Result<()> {
    match cmd {
        VlmCommand::Generate {
            model,
            tiny_random,
            image,
            prompt,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            placement,
        } => {
            let p = placement.resolve()?;
            let vlm = match (model, tiny_random) {
                (Some(dir), _) => Vlm::from_dir_as(&dir, &p.device, p.dtype())
                    .with_context(|| format!("loading {}", dir.display()))?,
                (None, Some(s)) => Vlm::random_as(None, s, 28 * 28 * 64, &p.device, p.dtype())?,
                (None, None) => bail!("give --model DIR or --tiny-random SEED"),
            };
            let images = image.iter().map(|p| load_image(p)).collect::<Result<Vec<_>, _>>()?;
            let messages = [ChatMessage::user_with_images(images.len(), prompt)];
            let p = vlm.prompt(&messages, &images)?;
            let cfg = generate_config(&vlm, max_new_tokens, temperature, top_p, top_k, seed);
            let g = vlm.generate(std::slice::from_ref(&p), &cfg, true)?;
            let text = vlm.tokenizer.decode(&g.tokens[0], true)?;
            println!(
                "{}",
                json!({"text": text, "tokens": g.tokens[0], "logprobs": g.logprobs[0], "stopped": g.stopped[0],
                       "prompt_tokens": p.ids.len()})
            );
        }
        VlmCommand::Bench { shape, rows, batches, new_tokens, reps, placement } => {
            let p = placement.resolve()?;
            let config = vldac_vlm::bench::shape_config(&shape)?;
            if new_tokens < 2 {
                bail!("--new-tokens must be at least 2 (decode speed is measured after the first token)");
            }
            let opts = vldac_vlm::bench::BenchOptions {
                rows,
                decode_batches: batches,
                new_tokens,
                reps,
                ..Default::default()
            };
            let label = json!({"impl": "vldac", "shape": shape, "device": p.choice.to_string(),
                               "dtype": p.precision.to_string()});
            vldac_vlm::bench::run(&config, &p, &opts, |r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let (Some(o), Some(l)) = (v.as_object_mut(), label.as_object()) {
                    o.extend(l.clone());
                }
                println!("{v}");
            })?;
            println!("{}", json!({"row": "peak_rss_bytes", "value": vldac_vlm::bench::peak_rss_bytes()}));
        }
        VlmCommand::MakeRandom { shape, dtype, out, shard_gb } => {
            let config = vldac_vlm::bench::shape_config(&shape)?;
            let bytes = (shard_gb * 1e9) as usize;
            vldac_vlm::bench::write_random_checkpoint(&config, &out, dtype.dtype(), bytes.max(1))?;
            eprintln!("wrote a random {shape} checkpoint ({dtype}) to {}", out.display());
        }
        VlmCommand::Load { model, placement } => {
            let p = placement.resolve()?;
            let t = std::time::Instant::now();
            let m = vldac_vlm::Qwen2Vl::from_dir_as(&model, &p.device, p.dtype())
                .with_context(|| format!("loading {}", model.display()))?;
            let seconds = t.elapsed().as_secs_f64();
            let on_disk: u64 = std::fs::read_dir(&model)
                .with_context(|| format!("listing {}", model.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum();
            println!(
                "{}",
                json!({"seconds": seconds, "device": p.choice.to_string(), "dtype": p.precision.to_string(),
                       "model_dtype": format!("{:?}", m.dtype()), "checkpoint_bytes": on_disk,
                       "peak_rss_bytes": vldac_vlm::bench::peak_rss_bytes()})
            );
        }
        VlmCommand::Forward { model, input, placement } => {
            let p = placement.resolve()?;
            let vlm = Vlm::from_dir_as(&model, &p.device, p.dtype())
                .with_context(|| format!("loading {}", model.display()))?;
            let text = std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", input.display()))?;
            let ids: Vec<u32> = serde_json::from_value(v.get("input_ids").cloned().unwrap_or_default())
                .with_context(|| format!("{}: `input_ids` must be a list of token ids", input.display()))?;
            let images: Vec<PathBuf> = match v.get("images") {
                None | Some(serde_json::Value::Null) => vec![],
                Some(x) => serde_json::from_value(x.clone())
                    .with_context(|| format!("{}: `images` must be a list of paths", input.display()))?,
            };
            // Relative image paths are relative to the input file.
            let base = input.parent().map(|p| p.to_path_buf()).unwrap_or_default();
            let imgs = images
                .iter()
                .map(|p| load_image(&if p.is_absolute() { p.clone() } else { base.join(p) }))
                .collect::<Result<Vec<_>, _>>()?;
            let pixels = if imgs.is_empty() { None } else { Some(vlm.processor.preprocess(&imgs)?) };
            let prompt = Prompt { ids, pixels };
            let batch = Batch::left_padded(std::slice::from_ref(&prompt), vlm.pad_id())?;
            let out = vlm.model.forward(&batch, None, true)?;
            let [_, s, voc] = out.logits.dims();
            let data =
                out.logits.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let rows: Vec<&[f32]> = (0..s).map(|i| &data[i * voc..(i + 1) * voc]).collect();
            println!("{}", json!({ "logits": rows }));
        }
    }
    Ok(())
}

/// The checkpoint's `generation_config.json` defaults, overridden by the flags given (the stop
/// tokens, `<|im_end|>` and the file's `eos_token_id`, are added by `Vlm::generate`).
fn generate_config(
    vlm: &Vlm,
    max_new_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    seed: u64,
) -> GenerateConfig {
    let mut cfg = vlm.generation.generate_config(64);
    if let Some(x) = max_new_tokens {
        cfg.max_new_tokens = x;
    }
    if let Some(x) = temperature {
        cfg.temperature = x;
    }
    if let Some(x) = top_p {
        cfg.top_p = x;
    }
    if let Some(x) = top_k {
        cfg.top_k = x;
    }
    cfg.seed = seed;
    for s in vlm.generation.unapplied() {
        eprintln!("note: generation_config.json sets {s}, which vlm generate does not apply");
    }
    cfg
}

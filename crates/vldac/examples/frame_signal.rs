//! How much a MiniWorld frame moves a tiny random Qwen2-VL: the spread across frames of the
//! vision tower's merged image tokens and of the last prompt token's hidden state (the value
//! head's input and the first reply token's context), next to the spread that changing a few
//! words of the text gives with one fixed frame.
//!
//! `cargo run --release -p vldac --example frame_signal [-- ENV_ID FRAMES]`
//!
//! A policy can only learn from pixels what reaches the last position; a spread far below the
//! text's says the frame is close to invisible there (README, "MiniWorld from pixels").

use burn::tensor::{DType, Tensor, TensorData};
use vldac_core::Action;
use vldac_vlm::tokenizer::ChatMessage;
use vldac_vlm::{Batch, ImageProcessor, Prompt, Qwen2Vl, Qwen2VlConfig, Qwen2VlTokenizer};

/// Mean over rows of the distance to the row mean, relative to the mean row norm.
fn relative_spread(rows: &[Vec<f32>]) -> f64 {
    let n = rows.len() as f64;
    let d = rows[0].len();
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / n).collect();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let spread =
        rows.iter().map(|r| norm(&r.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect::<Vec<_>>())).sum::<f64>()
            / n;
    let size = rows.iter().map(|r| norm(&r.iter().map(|&x| x as f64).collect::<Vec<_>>())).sum::<f64>() / n;
    spread / size
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let env_id = args.get(1).cloned().unwrap_or_else(|| "MiniWorld-OneRoomS6Fast-v0".into());
    let frames: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let dev = vldac_vlm::device::resolve(vldac_vlm::DeviceChoice::Cpu, None, None)?.device;
    let model = Qwen2Vl::random_as(&Qwen2VlConfig::tiny(), 1, &dev, DType::F32)?;
    let tok = Qwen2VlTokenizer::byte_level();
    let processor = ImageProcessor { max_pixels: 4704, min_pixels: 56 * 56, ..ImageProcessor::default() };

    // Frames: one reset per seed plus a few steps, so the box is seen from many places.
    let mut env = vldac_miniworld::make(&env_id)?;
    let mut images = Vec::new();
    let mut task = String::new();
    for seed in 0..frames as u64 {
        let (mut obs, _) = env.reset(Some(seed))?;
        for k in 0..(seed % 4) {
            let step = env.step(&Action::Discrete((k % 3) as usize))?;
            obs = step.obs;
            if step.terminated || step.truncated {
                break;
            }
        }
        task = obs.task.clone();
        images.push(obs.frames.last().map(|f| f.to_image()).ok_or_else(|| anyhow::anyhow!("no frame"))?);
    }
    let suffix = tok.encode(vldac_train::grammar::REPLY_PREFIX)?;
    let prompt = |text: &str, image: &image::RgbImage| -> anyhow::Result<Prompt> {
        let pixels = processor.preprocess(std::slice::from_ref(image))?;
        let mut ids = tok.encode_chat(&[ChatMessage::user_with_images(1, text)], &pixels.grids, 2, true)?;
        ids.extend_from_slice(&suffix);
        Ok(Prompt { ids, pixels: Some(pixels) })
    };
    let last_hidden = |prompts: &[Prompt]| -> anyhow::Result<Vec<Vec<f32>>> {
        let batch = Batch::left_padded(prompts, tok.special.endoftext)?;
        let (b, s) = (batch.batch_size(), batch.seq_len());
        let h = model.forward_hidden(&batch, false)?;
        let h = h.narrow(1, s - 1, 1).reshape([b, model.config.text.hidden_size]);
        let v = h.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(v.chunks(model.config.text.hidden_size).map(<[f32]>::to_vec).collect())
    };

    // 1. The vision tower's merged tokens, one vector per frame (all its tokens concatenated).
    let mut vision_rows = Vec::new();
    for image in &images {
        let px = processor.preprocess(std::slice::from_ref(image))?;
        let n = px.data.len() / px.patch_dim;
        let x: Tensor<2> = Tensor::from_data(TensorData::new(px.data.clone(), [n, px.patch_dim]), &dev);
        let out = model.visual.forward(x, &px.grids);
        vision_rows.push(out.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    // 2. The last prompt token across frames, same text.
    let by_frame: Vec<Prompt> = images.iter().map(|im| prompt(&task, im)).collect::<anyhow::Result<_>>()?;
    // 3. The last prompt token across texts (the task with a number changed), same frame.
    let by_text: Vec<Prompt> =
        (0..frames).map(|k| prompt(&format!("{task} (attempt {k})"), &images[0])).collect::<anyhow::Result<_>>()?;
    println!(
        "{env_id}, {frames} frames, tiny random Qwen2-VL (hidden 64, 2 layers), prompt {} tokens",
        by_frame[0].ids.len()
    );
    println!("relative spread of the vision tower's merged tokens across frames: {:.4}", relative_spread(&vision_rows));
    println!(
        "relative spread of the last prompt token across frames:            {:.4}",
        relative_spread(&last_hidden(&by_frame)?)
    );
    println!(
        "relative spread of the last prompt token across texts (one frame): {:.4}",
        relative_spread(&last_hidden(&by_text)?)
    );
    Ok(())
}

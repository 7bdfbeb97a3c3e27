//! How much a MiniWorld frame moves a tiny random Qwen2-VL: the spread across frames of the
//! vision tower's merged image tokens and of the last prompt token's hidden state (the value
//! head's input and the first reply token's context), next to the spread that changing a few
//! words of the text gives with one fixed frame.
//!
//! `cargo run --release -p vldac --example frame_signal [-- ENV_ID FRAMES PROBE_FRAMES]`
//!
//! A policy can only learn from pixels what reaches the last position; a spread far below the
//! text's says the frame is close to invisible there (README, "MiniWorld from pixels").
//!
//! Spread is not information, so it also fits a linear probe: where the red target is in the
//! frame (none / left / ahead / right of centre, read off the pixels by the rule that
//! perception pretraining answers with) predicted by ridge
//! regression from the merged image tokens and from the last prompt token, tested on held-out
//! frames, next to always guessing the commonest answer.

use burn::tensor::{DType, Tensor, TensorData};
use vldac_core::Action;
use vldac_train::perception::red_bearing;
use vldac_vlm::tokenizer::{ChatMessage, Content, Role};
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

#[derive(Clone, Copy)]
enum Layout {
    Trainer,
    ImageLast,
    ImageLastNoSystem,
}

/// Held-out accuracy and balanced accuracy (mean per-class recall) of one-vs-rest ridge
/// regression (features z-scored on the training rows) trained on the first 2/3 of the rows.
fn probe_accuracy(x: &[Vec<f32>], y: &[usize], classes: usize) -> (f64, f64) {
    let split = x.len() * 2 / 3;
    let d = x[0].len();
    let mean: Vec<f64> = (0..d).map(|j| x[..split].iter().map(|r| r[j] as f64).sum::<f64>() / split as f64).collect();
    let sd: Vec<f64> = (0..d)
        .map(|j| {
            let v = x[..split].iter().map(|r| (r[j] as f64 - mean[j]).powi(2)).sum::<f64>() / split as f64;
            v.sqrt().max(1e-12)
        })
        .collect();
    let z = |r: &[f32]| -> Vec<f64> {
        let mut v: Vec<f64> = (0..d).map(|j| (r[j] as f64 - mean[j]) / sd[j]).collect();
        v.push(1.0);
        v
    };
    let train: Vec<Vec<f64>> = x[..split].iter().map(|r| z(r)).collect();
    let d1 = d + 1;
    // Normal equations (XᵀX + λI) W = XᵀY, one column per class, by Gauss-Jordan elimination.
    let mut a = vec![vec![0f64; d1 + classes]; d1];
    for (row, &label) in train.iter().zip(&y[..split]) {
        for i in 0..d1 {
            for j in 0..d1 {
                a[i][j] += row[i] * row[j];
            }
            a[i][d1 + label] += row[i];
        }
    }
    for (i, r) in a.iter_mut().enumerate() {
        r[i] += 1.0;
    }
    for c in 0..d1 {
        let p = (c..d1).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap_or(c);
        a.swap(c, p);
        let pivot = a[c][c];
        for v in a[c].iter_mut() {
            *v /= pivot;
        }
        let pivot_row = a[c].clone();
        for (i, r) in a.iter_mut().enumerate() {
            if i != c && r[c] != 0.0 {
                let f = r[c];
                for (v, pv) in r.iter_mut().zip(&pivot_row) {
                    *v -= f * pv;
                }
            }
        }
    }
    let (mut right, mut seen) = (vec![0usize; classes], vec![0usize; classes]);
    for (r, &label) in x[split..].iter().zip(&y[split..]) {
        let v = z(r);
        let score = |k: usize| (0..d1).map(|i| v[i] * a[i][d1 + k]).sum::<f64>();
        seen[label] += 1;
        if (0..classes).max_by(|&p, &q| score(p).total_cmp(&score(q))) == Some(label) {
            right[label] += 1;
        }
    }
    let acc = right.iter().sum::<usize>() as f64 / (x.len() - split) as f64;
    let present: Vec<usize> = (0..classes).filter(|&k| seen[k] > 0).collect();
    let bal = present.iter().map(|&k| right[k] as f64 / seen[k] as f64).sum::<f64>() / present.len() as f64;
    (acc, bal)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let env_id = args.get(1).cloned().unwrap_or_else(|| "MiniWorld-OneRoomS6Fast-v0".into());
    let frames: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let probe_frames: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(600);
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
    let prompt_as = |layout: Layout, text: &str, image: &image::RgbImage| -> anyhow::Result<Prompt> {
        let pixels = processor.preprocess(std::slice::from_ref(image))?;
        let user = match layout {
            Layout::Trainer => ChatMessage::user_with_images(1, text),
            Layout::ImageLast | Layout::ImageLastNoSystem => {
                ChatMessage { role: Role::User, content: vec![Content::Text(text.to_string()), Content::Image] }
            }
        };
        let messages = match layout {
            Layout::ImageLastNoSystem => vec![ChatMessage { role: Role::System, content: vec![] }, user],
            _ => vec![user],
        };
        let mut ids = tok.encode_chat(&messages, &pixels.grids, 2, true)?;
        ids.extend_from_slice(&suffix);
        Ok(Prompt { ids, pixels: Some(pixels) })
    };
    let prompt = |text: &str, image: &image::RgbImage| prompt_as(Layout::Trainer, text, image);
    let last_hidden = |prompts: &[Prompt]| -> anyhow::Result<Vec<Vec<f32>>> {
        let batch = Batch::left_padded(prompts, tok.special.endoftext)?;
        let (b, s) = (batch.batch_size(), batch.seq_len());
        let h = model.forward_hidden(&batch, false)?;
        let h = h.narrow(1, s - 1, 1).reshape([b, model.config.text.hidden_size]);
        let v = h.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(v.chunks(model.config.text.hidden_size).map(<[f32]>::to_vec).collect())
    };

    let vision_tokens = |image: &image::RgbImage| -> anyhow::Result<Vec<f32>> {
        let px = processor.preprocess(std::slice::from_ref(image))?;
        let n = px.data.len() / px.patch_dim;
        let x: Tensor<2> = Tensor::from_data(TensorData::new(px.data.clone(), [n, px.patch_dim]), &dev);
        let out = model.visual.forward(x, &px.grids);
        out.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))
    };

    // 1. The vision tower's merged tokens, one vector per frame (all its tokens concatenated).
    let vision_rows: Vec<Vec<f32>> = images.iter().map(&vision_tokens).collect::<anyhow::Result<_>>()?;
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

    // 4. The linear probe, on frames from random walks (seeds after the ones above).
    let mut probe_images = Vec::with_capacity(probe_frames);
    let mut seed = frames as u64;
    while probe_images.len() < probe_frames {
        let (mut obs, _) = env.reset(Some(seed))?;
        seed += 1;
        for k in 0..8 {
            let frame = obs.frames.last().ok_or_else(|| anyhow::anyhow!("no frame"))?;
            probe_images.push(frame.to_image());
            let step = env.step(&Action::Discrete(((seed as usize).wrapping_mul(7) + k * 5) % 3))?;
            if step.terminated || step.truncated || probe_images.len() == probe_frames {
                break;
            }
            obs = step.obs;
        }
    }
    let labels: Vec<usize> = probe_images.iter().map(|im| red_bearing(im) as usize).collect();
    let mut counts = [0usize; 4];
    for &l in &labels {
        counts[l] += 1;
    }
    let majority = *counts.iter().max().unwrap_or(&0) as f64 / labels.len() as f64;
    let vision: Vec<Vec<f32>> = probe_images.iter().map(&vision_tokens).collect::<anyhow::Result<_>>()?;
    println!(
        "linear probe of the red target's bearing (none/left/ahead/right: {counts:?} of {} frames; held-out third;\n\
         accuracy, then balanced accuracy = mean recall over the 4 answers, chance 0.25):",
        labels.len()
    );
    println!("  always the commonest answer:            {majority:.3}  0.250");
    let (acc, bal) = probe_accuracy(&vision, &labels, 4);
    println!("  from the merged image tokens:           {acc:.3}  {bal:.3}");
    for (layout, name) in [
        (Layout::Trainer, "the trainer's prompt (image, then text)"),
        (Layout::ImageLast, "text, then image"),
        (Layout::ImageLastNoSystem, "text, then image, empty system turn"),
    ] {
        let mut last = Vec::with_capacity(probe_images.len());
        let mut len = 0;
        for chunk in probe_images.chunks(32) {
            let prompts: Vec<Prompt> =
                chunk.iter().map(|im| prompt_as(layout, &task, im)).collect::<anyhow::Result<_>>()?;
            len = prompts[0].ids.len();
            last.extend(last_hidden(&prompts)?);
        }
        let (acc, bal) = probe_accuracy(&last, &labels, 4);
        println!("  from the last prompt token, {name} ({len} tokens): {acc:.3}  {bal:.3}");
    }
    Ok(())
}

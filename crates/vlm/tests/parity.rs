//! Parity with HF transformers on the tiny random checkpoints of fixtures/ (see
//! fixtures/gen_fixtures.py): preprocessing, chat-template ids, M-RoPE ids, logits, hidden
//! states, greedy continuations; plus KV-cache decoding == full recompute.

mod common;

use burn::tensor::Device;
use common::*;
use vldac_vlm::image_proc::load_image;
use vldac_vlm::rope::mrope_positions;
use vldac_vlm::tokenizer::{ChatMessage, Content, Role};
use vldac_vlm::{
    Batch, GenerateConfig, ImageProcessor, PixelValues, Prompt, Qwen2Vl, Qwen2VlTokenizer, Vlm, generate, score,
};

struct Case {
    dir: &'static str,
    name: &'static str,
    images: &'static [&'static str],
    messages: fn() -> Vec<ChatMessage>,
}

const CASES: [Case; 4] = [
    Case {
        dir: "tiny_a",
        name: "two_images",
        images: &["img_56x84", "img_50x70"],
        messages: || vec![ChatMessage::user_with_images(2, "What is in these pictures? Answer in 12 words.")],
    },
    Case {
        dir: "tiny_a",
        name: "text_only",
        images: &[],
        messages: || {
            vec![
                ChatMessage::text(Role::System, "You are playing Blackjack."),
                ChatMessage::text(Role::User, "Hello world! It's a café, isn't it?  你好 123"),
            ]
        },
    },
    Case {
        dir: "tiny_b",
        name: "one_image",
        images: &["img_64x100"],
        messages: || {
            vec![ChatMessage {
                role: Role::User,
                content: vec![Content::Image, Content::Text("Describe the image.".into())],
            }]
        },
    },
    Case {
        dir: "tiny_b",
        name: "short_text",
        images: &[],
        messages: || vec![ChatMessage::text(Role::User, "Move the agent left.")],
    },
];

fn dev() -> Device {
    test_device()
}

/// The prompt exactly as transformers fed it (reference ids and pixel_values).
fn reference_prompt(r: &std::collections::HashMap<String, Ref>, name: &str) -> Prompt {
    let ids: Vec<u32> = r[&format!("{name}.input_ids")].i.iter().map(|&x| x as u32).collect();
    let pixels = r.get(&format!("{name}.pixel_values")).map(|pv| {
        let g = &r[&format!("{name}.image_grid_thw")].i;
        PixelValues {
            data: pv.f.clone(),
            patch_dim: pv.shape[1],
            grids: g.chunks(3).map(|c| [c[0] as usize, c[1] as usize, c[2] as usize]).collect(),
        }
    });
    Prompt { ids, pixels }
}

#[test]
fn preprocessing_matches_transformers() {
    for c in CASES.iter().filter(|c| !c.images.is_empty()) {
        let (r, _) = load_reference(c.dir);
        let proc = ImageProcessor::from_file(&fixtures().join(c.dir).join("preprocessor_config.json")).unwrap();
        let imgs: Vec<_> =
            c.images.iter().map(|n| load_image(&fixtures().join("images").join(format!("{n}.png"))).unwrap()).collect();
        let px = proc.preprocess(&imgs).unwrap();
        let grids: Vec<i64> = px.grids.iter().flatten().map(|&x| x as i64).collect();
        assert_eq!(grids, r[&format!("{}.image_grid_thw", c.name)].i, "{}: image_grid_thw", c.name);
        let want = &r[&format!("{}.pixel_values", c.name)];
        assert_eq!(vec![px.n_patches(), px.patch_dim], want.shape);
        let d = max_abs_diff(&px.data, &want.f);
        assert!(d < 1e-5, "{}: pixel_values differ by {d}", c.name);
    }
}

#[test]
fn smart_resize_matches_transformers() {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("preprocess.json")).unwrap()).unwrap();
    let cases = v["smart_resize"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let h = c["in"][0].as_u64().unwrap() as usize;
        let w = c["in"][1].as_u64().unwrap() as usize;
        let got = vldac_vlm::smart_resize(h, w, 28, 56 * 56, 28 * 28 * 1280);
        match c.get("out") {
            Some(o) => {
                let want = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
                assert_eq!(got.unwrap(), want, "smart_resize({h}, {w})");
            }
            None => assert!(got.is_err(), "smart_resize({h}, {w}) should fail"),
        }
    }
}

#[test]
fn chat_template_ids_match_transformers() {
    for c in &CASES {
        let (r, meta) = load_reference(c.dir);
        let tok = Qwen2VlTokenizer::from_file(&fixtures().join(c.dir).join("tokenizer.json")).unwrap();
        let text = Qwen2VlTokenizer::apply_chat_template(&(c.messages)(), true);
        assert_eq!(text, case(&meta, c.name)["text"].as_str().unwrap(), "{}: template text", c.name);
        let grids: Vec<[usize; 3]> = r
            .get(&format!("{}.image_grid_thw", c.name))
            .map(|g| g.i.chunks(3).map(|x| [x[0] as usize, x[1] as usize, x[2] as usize]).collect())
            .unwrap_or_default();
        let ids = tok.encode_chat(&(c.messages)(), &grids, 2, true).unwrap();
        let want: Vec<u32> = r[&format!("{}.input_ids", c.name)].i.iter().map(|&x| x as u32).collect();
        assert_eq!(ids, want, "{}: input ids", c.name);
    }
}

#[test]
fn mrope_positions_match_transformers() {
    for c in &CASES {
        let (r, meta) = load_reference(c.dir);
        let vlm_cfg = vldac_vlm::Qwen2VlConfig::from_file(&fixtures().join(c.dir).join("config.json")).unwrap();
        let p = reference_prompt(&r, c.name);
        let grids = p.pixels.as_ref().map(|x| x.grids.clone()).unwrap_or_default();
        let got = mrope_positions(&p.ids, None, &grids, &vlm_cfg).unwrap();
        let want = &r[&format!("{}.position_ids", c.name)];
        let s = p.ids.len();
        for axis in 0..3 {
            let row: Vec<i64> = got.pos.iter().map(|x| x[axis]).collect();
            assert_eq!(row, want.i[axis * s..(axis + 1) * s], "{}: axis {axis}", c.name);
        }
        assert_eq!(got.rope_delta, case(&meta, c.name)["rope_delta"].as_i64().unwrap(), "{}: rope delta", c.name);
    }
}

#[test]
fn logits_and_hidden_match_transformers() {
    for dir in ["tiny_a", "tiny_b"] {
        let model = Qwen2Vl::from_dir(&fixtures().join(dir), &dev()).unwrap();
        let (r, _) = load_reference(dir);
        for c in CASES.iter().filter(|c| c.dir == dir) {
            let p = reference_prompt(&r, c.name);
            let batch = Batch::left_padded(&[p], 0).unwrap();
            let out = model.forward(&batch, None, true).unwrap();
            // The fixture keeps the logits of the last rows (and the full hidden states).
            let want = &r[&format!("{}.logits_tail", c.name)];
            let (rows, v) = (want.shape[0], want.shape[1]);
            let [_, s, vocab] = out.logits.dims();
            assert_eq!(vocab, v);
            let tail = out.logits.clone().narrow(1, s - rows, rows);
            let d = max_abs_diff(&to_vec(tail), &want.f);
            assert!(d < 1e-4, "{dir}/{}: logits differ by {d}", c.name);
            let dh = max_abs_diff(&to_vec(out.hidden), &r[&format!("{}.hidden", c.name)].f);
            assert!(dh < 1e-4, "{dir}/{}: hidden states differ by {dh}", c.name);
        }
    }
}

#[test]
fn greedy_generation_matches_transformers_single_and_batched() {
    for dir in ["tiny_a", "tiny_b"] {
        let vlm = Vlm::from_dir(&fixtures().join(dir), &dev()).unwrap();
        let (r, meta) = load_reference(dir);
        let cases: Vec<&Case> = CASES.iter().filter(|c| c.dir == dir).collect();
        let prompts: Vec<Prompt> = cases.iter().map(|c| reference_prompt(&r, c.name)).collect();
        assert_ne!(prompts[0].ids.len(), prompts[1].ids.len(), "the batch must mix lengths");
        let cfg = GenerateConfig { stop_tokens: vec![vlm.tokenizer.special.im_end], ..GenerateConfig::greedy(8) };
        let single: Vec<_> =
            prompts.iter().map(|p| vlm.generate(std::slice::from_ref(p), &cfg, true).unwrap()).collect();
        let batched = vlm.generate(&prompts, &cfg, true).unwrap();
        for (k, c) in cases.iter().enumerate() {
            let m = case(&meta, c.name);
            let want: Vec<u32> = m["greedy"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
            let want_lp: Vec<f32> =
                m["greedy_logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            assert_eq!(single[k].tokens[0], want, "{dir}/{}: greedy tokens", c.name);
            assert_eq!(batched.tokens[k], want, "{dir}/{}: greedy tokens in a batch", c.name);
            let d = max_abs_diff(&single[k].logprobs[0], &want_lp);
            assert!(d < 1e-4, "{dir}/{}: log-probs differ by {d}", c.name);
            let d = max_abs_diff(&batched.logprobs[k], &want_lp);
            assert!(d < 1e-4, "{dir}/{}: batched log-probs differ by {d}", c.name);
            // The last prompt token's hidden state is the reference hidden state's last row.
            let h = &r[&format!("{}.hidden", c.name)];
            let hs = h.shape[1];
            let last = &h.f[h.f.len() - hs..];
            let got = to_vec(batched.last_prompt_hidden.clone().narrow(0, k, 1));
            assert!(max_abs_diff(&got, last) < 1e-4, "{dir}/{}: last prompt hidden", c.name);
        }
    }
}

/// Sampled generation with the KV cache against a full recompute of the same tokens (`score`):
/// per row, the largest log-prob difference; and the last prompt hidden state's difference.
fn cached_vs_full(model: &Qwen2Vl) -> (Vec<f32>, f32) {
    let (r, _) = load_reference("tiny_a");
    let prompts: Vec<Prompt> = ["two_images", "text_only"].iter().map(|n| reference_prompt(&r, n)).collect();
    // Sampled (not greedy) so the continuation differs from the fixtures' greedy path.
    let cfg =
        GenerateConfig { max_new_tokens: 12, temperature: 1.0, top_k: 50, top_p: 0.95, seed: 7, ..Default::default() };
    let g = generate(model, &prompts, &cfg, 0, true).unwrap();
    let full = score(model, &prompts, &g.tokens, 0, true).unwrap();
    let lp = to_vec(full.token_logprobs);
    let r_max = g.tokens.iter().map(|t| t.len()).max().unwrap();
    let rows = g
        .tokens
        .iter()
        .enumerate()
        .map(|(row, toks)| max_abs_diff(&g.logprobs[row], &lp[row * r_max..row * r_max + toks.len()]))
        .collect();
    (rows, max_abs_diff(&to_vec(g.last_prompt_hidden), &to_vec(full.last_prompt_hidden)))
}

#[test]
fn kv_cache_decoding_equals_full_recompute() {
    let model = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &dev()).unwrap();
    let (rows, hidden) = cached_vs_full(&model);
    for (row, d) in rows.into_iter().enumerate() {
        assert!(d < 1e-4, "row {row}: cached vs full log-probs differ by {d}");
    }
    assert!(hidden < 1e-5, "last prompt hidden differs by {hidden}");
}

/// The same in bf16, where the prompt goes through the fused CPU kernels (token-major rotary and
/// attention, which store the KV cache as views) and each decode step through burn's ops: a
/// wrong cache layout would give unrelated log-probs, bf16 rounding only small differences.
#[test]
fn bf16_kv_cache_decoding_tracks_full_recompute() {
    let model = Qwen2Vl::from_dir_as(&fixtures().join("tiny_a"), &dev(), burn::tensor::DType::BF16).unwrap();
    for (row, d) in cached_vs_full(&model).0.into_iter().enumerate() {
        eprintln!("bf16 row {row}: cached vs full log-probs differ by at most {d:.4}");
        assert!(d < 0.05, "row {row}: bf16 cached vs full log-probs differ by {d}");
    }
}

/// bf16 base weights (read from the f32 fixtures straight into bf16) against transformers' f32
/// logits: within a measured tolerance, and the same argmax at >= 90% of the positions.
#[test]
fn bf16_logits_track_transformers_f32() {
    let mut agree = 0usize;
    let mut total = 0usize;
    for dir in ["tiny_a", "tiny_b"] {
        let model = Qwen2Vl::from_dir_as(&fixtures().join(dir), &dev(), burn::tensor::DType::BF16).unwrap();
        assert_eq!(model.dtype(), burn::tensor::DType::BF16);
        let (r, _) = load_reference(dir);
        for c in CASES.iter().filter(|c| c.dir == dir) {
            let p = reference_prompt(&r, c.name);
            let batch = Batch::left_padded(&[p], 0).unwrap();
            let out = model.forward(&batch, None, true).unwrap();
            let want = &r[&format!("{}.logits_tail", c.name)];
            let (rows, v) = (want.shape[0], want.shape[1]);
            let [_, s, _] = out.logits.dims();
            assert_eq!(out.logits.dtype(), burn::tensor::DType::F32, "logits are returned in f32");
            let got = to_vec(out.logits.narrow(1, s - rows, rows));
            let d = max_abs_diff(&got, &want.f);
            let scale = want.f.iter().fold(0f32, |m, x| m.max(x.abs()));
            eprintln!("{dir}/{}: bf16 max |logit diff| {d:.4} (max |logit| {scale:.3})", c.name);
            assert!(d < BF16_LOGIT_TOL, "{dir}/{}: bf16 logits differ by {d}", c.name);
            let argmax = |x: &[f32]| x.iter().enumerate().fold(0, |b, (i, v)| if *v > x[b] { i } else { b });
            for row in 0..rows {
                total += 1;
                agree += usize::from(argmax(&got[row * v..(row + 1) * v]) == argmax(&want.f[row * v..(row + 1) * v]));
            }
        }
    }
    let rate = agree as f64 / total as f64;
    eprintln!("bf16 argmax agreement with HF f32: {agree}/{total} = {rate:.3}");
    assert!(rate >= 0.9, "bf16 argmax agrees at {agree}/{total} positions");
}

/// Measured on the tiny fixtures: the largest difference is 0.028 (logits up to 2.9 in size);
/// bf16 keeps 8 significant bits, so ~1% of a logit's scale is what rounding gives.
const BF16_LOGIT_TOL: f32 = 0.05;

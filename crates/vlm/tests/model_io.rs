//! Config parsing, checkpoint loading errors, export round trips, LoRA/PEFT, the scoring
//! forward with gradients, the value head, and the file-free tiny model.

mod common;

use burn::tensor::Device;
use common::*;
use vldac_vlm::weights::{SafetensorsWeights, WeightSource};
use vldac_vlm::{
    Batch, ChatMessage, DecodeOptions, DecodeRules, FreeDecoding, GenerateConfig, LoraConfig, Prompt, Qwen2Vl,
    Qwen2VlConfig, Qwen2VlTokenizer, SaveDtype, ValueHeadConfig, Vlm, VlmError, apply_lora, generate_with,
    load_peft_adapter, merge_lora, save_peft_adapter, score, score_with,
};

fn dev() -> Device {
    Device::flex()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-vlm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn logits(model: &Qwen2Vl, ids: &[u32], adapters: bool) -> Vec<f32> {
    let b = Batch::left_padded(&[Prompt::text(ids.to_vec())], 0).unwrap();
    to_vec(model.forward(&b, None, adapters).unwrap().logits)
}

const IDS: [u32; 9] = [5, 17, 42, 99, 3, 250, 7, 11, 64];

#[test]
fn flat_and_nested_configs_parse() {
    let a = Qwen2VlConfig::from_file(&fixtures().join("tiny_a/config.json")).unwrap();
    let b = Qwen2VlConfig::from_file(&fixtures().join("tiny_b/config.json")).unwrap();
    assert_eq!((a.text.hidden_size, a.text.num_hidden_layers, a.text.mrope_section), (64, 2, [2, 3, 3]));
    assert_eq!((b.text.hidden_size, b.text.num_key_value_heads, b.vision.depth), (96, 2, 3));
    assert!(b.text.tie_word_embeddings && !a.text.tie_word_embeddings);
    // The flat writer round-trips.
    let again = Qwen2VlConfig::from_json_str(&b.to_hf_json().to_string(), "mem").unwrap();
    assert_eq!(again, b);
    // An integral mlp_ratio is written as an integer, as the hub's configs have it
    // (transformers >= 5 rejects `4.0` for this int field); a fractional one stays a float.
    let mut c = b.clone();
    c.vision.mlp_ratio = 4.0;
    assert_eq!(c.to_hf_json()["vision_config"]["mlp_ratio"], serde_json::json!(4));
    c.vision.mlp_ratio = 2.5;
    assert_eq!(c.to_hf_json()["vision_config"]["mlp_ratio"], serde_json::json!(2.5));
    assert_eq!(Qwen2VlConfig::from_json_str(&c.to_hf_json().to_string(), "mem").unwrap(), c);
}

#[test]
fn config_errors_name_the_field() {
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny_a/config.json")).unwrap()).unwrap();
    let check = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut v = good.clone();
        edit(&mut v);
        let e = Qwen2VlConfig::from_json_str(&v.to_string(), "config.json").unwrap_err().to_string();
        assert!(e.contains(needle), "error `{e}` should mention `{needle}`");
    };
    check(&|v| drop(v.as_object_mut().unwrap().remove("hidden_size")), "hidden_size");
    check(&|v| v["num_hidden_layers"] = serde_json::json!("two"), "num_hidden_layers");
    check(&|v| v["hiden_size"] = serde_json::json!(64), "hiden_size");
    check(&|v| v["vision_config"]["dept"] = serde_json::json!(2), "vision_config");
    check(&|v| v["rope_scaling"]["mrope_section"] = serde_json::json!([2, 3]), "mrope_section");
    check(&|v| v["rope_scaling"]["mrope_section"] = serde_json::json!([2, 3, 4]), "mrope_section");
    check(&|v| v["image_token_id"] = serde_json::json!(100000), "image_token_id");
}

#[test]
fn checkpoint_errors_name_the_tensor_and_shapes() {
    let cfg = Qwen2VlConfig::tiny();
    let model = Qwen2Vl::random(&cfg, 3, &dev()).unwrap();
    let dir = tmp("errors");
    model.save_hf(&dir, SaveDtype::F32).unwrap();
    let full = model.export();

    // Missing.
    let mut sink = vldac_vlm::TensorSink { tensors: full.tensors.clone() };
    sink.tensors.remove("model.layers.1.mlp.up_proj.weight");
    sink.save(&dir.join("model.safetensors"), SaveDtype::F32, None).unwrap();
    let e = Qwen2Vl::from_dir(&dir, &dev()).unwrap_err();
    assert!(matches!(&e, VlmError::MissingTensor { name, .. } if name == "model.layers.1.mlp.up_proj.weight"), "{e}");

    // Mis-shaped.
    let mut sink = vldac_vlm::TensorSink { tensors: full.tensors.clone() };
    let t = sink.tensors.get_mut("model.norm.weight").unwrap();
    t.shape = vec![32];
    t.data.truncate(32);
    sink.save(&dir.join("model.safetensors"), SaveDtype::F32, None).unwrap();
    let e = Qwen2Vl::from_dir(&dir, &dev()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("model.norm.weight") && msg.contains("[64]") && msg.contains("[32]"), "{msg}");

    // Extra.
    let mut sink = vldac_vlm::TensorSink { tensors: full.tensors.clone() };
    let extra = sink.tensors["model.norm.weight"].clone();
    sink.put("model.layers.9.surprise.weight", extra);
    sink.save(&dir.join("model.safetensors"), SaveDtype::F32, None).unwrap();
    let e = Qwen2Vl::from_dir(&dir, &dev()).unwrap_err();
    assert!(e.to_string().contains("model.layers.9.surprise.weight"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sharded_index_lists_every_tensor() {
    let w = SafetensorsWeights::open_dir(&fixtures().join("tiny_a")).unwrap();
    assert!(fixtures().join("tiny_a/model.safetensors.index.json").exists());
    assert!(w.names().contains(&"lm_head.weight".to_string()));
    assert!(w.names().contains(&"visual.patch_embed.proj.weight".to_string()));
}

#[test]
fn export_round_trips_f32_exactly_and_bf16_approximately() {
    let model = Qwen2Vl::from_dir(&fixtures().join("tiny_b"), &dev()).unwrap();
    let want = logits(&model, &IDS, true);
    let dir = tmp("export");
    model.save_hf(&dir, SaveDtype::F32).unwrap();
    let again = Qwen2Vl::from_dir(&dir, &dev()).unwrap();
    assert_eq!(logits(&again, &IDS, true), want);
    // tiny_b's weights are bf16 on disk, so a bf16 export is lossless too.
    model.save_hf(&dir, SaveDtype::Bf16).unwrap();
    let again = Qwen2Vl::from_dir(&dir, &dev()).unwrap();
    assert_eq!(logits(&again, &IDS, true), want);
    let mut w = SafetensorsWeights::open_dir(&dir).unwrap();
    assert!(w.take("model.norm.weight", &[96]).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// tiny_b is stored in bf16: loaded as bf16, its tensors are views of the mapped file and the
/// projections are used as stored (`[out, in]`, through a transposed view). Its logits must match
/// the f32 load of the same values up to bf16 rounding of the activations (see parity.rs's
/// `BF16_LOGIT_TOL`), and an export of it written over its own directory must not disturb it.
#[test]
fn bf16_checkpoint_loaded_as_file_views_matches_the_f32_load() {
    let want = logits(&Qwen2Vl::from_dir(&fixtures().join("tiny_b"), &dev()).unwrap(), &IDS, true);
    let dir = tmp("views");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny_b").join(f), dir.join(f)).unwrap();
    }
    let model = Qwen2Vl::from_dir_as(&dir, &dev(), burn::tensor::DType::BF16).unwrap();
    let got = logits(&model, &IDS, true);
    let d = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 0.05, "bf16 file views vs f32: max |logit diff| {d}");
    // Rewriting the file the model views (an export into its own directory) keeps its values.
    model.save_hf(&dir, SaveDtype::F32).unwrap();
    assert_eq!(logits(&model, &IDS, true), got);
    let again = Qwen2Vl::from_dir(&dir, &dev()).unwrap();
    // tiny_b's values are bf16, so the f32 export of the bf16 model is the f32 model exactly.
    assert_eq!(logits(&again, &IDS, true), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lora_starts_as_identity_switches_off_and_round_trips_through_peft() {
    let base = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &dev()).unwrap();
    let want = logits(&base, &IDS, true);
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, ..Default::default() };
    let mut model = apply_lora(base, &cfg).unwrap();
    assert_eq!(logits(&model, &IDS, true), want, "B = 0: a fresh adapter changes nothing");
    // Give every B some values, as training would.
    for (_, proj) in model.model.projections_mut() {
        let l = proj.lora.as_mut().unwrap();
        let b = l.b.val();
        let noise = b.random_like(burn::tensor::Distribution::Normal(0.0, 0.05));
        l.b = burn::module::Param::from_tensor(noise);
    }
    let tuned = logits(&model, &IDS, true);
    assert!(max_abs_diff(&tuned, &want) > 1e-3, "adapters must change the output");
    assert_eq!(logits(&model, &IDS, false), want, "adapters off = the frozen reference policy");

    let dir = tmp("peft");
    save_peft_adapter(&model, &cfg, &dir, "tiny_a").unwrap();
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(conf["peft_type"], "LORA");
    assert_eq!(conf["r"], 4);
    let w = SafetensorsWeights::open_files(&[dir.join("adapter_model.safetensors")]).unwrap();
    assert_eq!(w.names().len(), 2 * 7 * 2, "A and B for 7 projections in 2 layers");
    assert!(
        w.names()
            .contains(&"base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight".to_string())
    );
    let fresh = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &dev()).unwrap();
    let (loaded, lcfg) = load_peft_adapter(fresh, &dir).unwrap();
    assert_eq!(lcfg.rank, 4);
    assert_eq!(logits(&loaded, &IDS, true), tuned);

    let merged = merge_lora(model);
    let d = max_abs_diff(&logits(&merged, &IDS, false), &tuned);
    assert!(d < 1e-4, "merged weights reproduce the adapter by {d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scoring_forward_has_gradients_for_adapters_and_value_head_only() {
    let adev = Device::flex().autodiff();
    let base = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &adev).unwrap();
    let model = apply_lora(base, &LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, ..Default::default() }).unwrap();
    let head = ValueHeadConfig { hidden_size: 64, layers: vec![32, 16] }.init(&adev);
    let prompts = vec![Prompt::text(vec![1, 2, 3, 4, 5]), Prompt::text(vec![9, 8, 7])];
    let responses = vec![vec![10, 11, 12], vec![13]];
    let out = score(&model, &prompts, &responses, 0, true).unwrap();
    assert_eq!(out.token_logprobs.dims(), [2, 3]);
    assert_eq!(to_vec(out.response_mask.clone()), vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    let values = head.forward(out.last_prompt_hidden.clone());
    assert_eq!(values.dims(), [2]);
    let loss = out.token_logprobs.clone().sum().neg() + values.square().sum();
    let grads = loss.backward();
    let l0 = &model.model.layers[0];
    let lora = l0.self_attn.q_proj.lora.as_ref().unwrap();
    // B starts at zero, so A's gradient is zero at step 0; B's is not.
    let gb = lora.b.val().grad(&grads).expect("LoRA B has a gradient");
    assert!(to_vec(gb).iter().any(|x| x.abs() > 0.0));
    assert!(head.layers[0].weight.val().grad(&grads).is_some(), "value head is trainable");
    assert!(l0.self_attn.q_proj.base.weight.val().grad(&grads).is_none(), "base weights are frozen");
    assert!(model.model.embed_tokens.val().grad(&grads).is_none(), "embeddings are frozen");
    // Log-probs match the plain forward's log-softmax (padding is 0).
    let lp = to_vec(out.token_logprobs);
    assert_eq!(lp[4], 0.0);
    assert!(lp.iter().take(4).all(|x| *x < 0.0));
}

#[test]
fn value_head_has_the_official_shape() {
    let h = ValueHeadConfig::vl_dac(64).init(&dev());
    let dims: Vec<[usize; 2]> = h.layers.iter().map(|l| l.weight.dims()).collect();
    assert_eq!(dims, vec![[64, 3072], [3072, 2048], [2048, 1]]);
}

#[test]
fn tiny_random_model_runs_without_files() {
    let vlm = Vlm::random(None, 0, 28 * 28 * 16, &dev()).unwrap();
    let img = image::RgbImage::from_fn(60, 90, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 128]));
    let p = vlm.prompt(&[ChatMessage::user_with_images(1, "Which card? Answer in JSON.")], &[img]).unwrap();
    let n_pad = p.ids.iter().filter(|&&t| t == vlm.tokenizer.special.image_pad).count();
    assert_eq!(n_pad, vlm.processor.num_image_tokens(p.pixels.as_ref().unwrap().grids[0]));
    let cfg = GenerateConfig { max_new_tokens: 6, temperature: 1.0, seed: 1, ..Default::default() };
    let g = vlm.generate(&[p.clone(), Prompt::text(vlm.tokenizer.encode("hi").unwrap())], &cfg, true).unwrap();
    assert_eq!(g.tokens.len(), 2);
    assert!(g.tokens.iter().flatten().all(|&t| (t as usize) < vlm.model.config.text.vocab_size));
    assert_eq!(g.last_prompt_hidden.dims(), [2, 64]);
    // Same seed, same sample.
    let g2 = vlm.generate(std::slice::from_ref(&p), &cfg, true).unwrap();
    assert_eq!(g2.tokens[0], g.tokens[0]);
}

#[test]
fn forward_last_gives_the_last_position_of_the_full_forward() {
    use vldac_vlm::Batch;
    let vlm = Vlm::random(None, 0, 28 * 28 * 16, &dev()).unwrap();
    let img = image::RgbImage::from_fn(60, 90, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 128]));
    let p = vlm.prompt(&[ChatMessage::user_with_images(1, "Which card?")], &[img]).unwrap();
    // Two rows of different lengths: the short one is left-padded.
    let batch = Batch::left_padded(&[p, Prompt::text(vlm.tokenizer.encode("hi").unwrap())], 0).unwrap();
    let s = batch.seq_len();
    let full = vlm.model.forward(&batch, None, false).unwrap();
    let last = vlm.model.forward_last(&batch, None, false).unwrap();
    let v = vlm.model.config.text.vocab_size;
    assert_eq!(last.logits.dims(), [2, 1, v]);
    let want = full.logits.narrow(1, s - 1, 1).into_data().try_to_vec::<f32>().unwrap();
    let got = last.logits.into_data().try_to_vec::<f32>().unwrap();
    // The head over one row per sequence takes the few-rows kernel: another summation order.
    let diff = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "last-position logits differ by {diff}");
    let argmax = |l: &[f32]| l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    for r in 0..2 {
        assert_eq!(argmax(&got[r * v..][..v]), argmax(&want[r * v..][..v]), "row {r}");
    }
}

#[test]
fn byte_level_tokenizer_round_trips_and_keeps_specials() {
    let t = Qwen2VlTokenizer::byte_level();
    for s in ["Hello, world!", "café 你好  \n\t 123", "{\"action\": \"hit\"}"] {
        let ids = t.encode(s).unwrap();
        assert_eq!(ids.len(), s.len(), "one token per byte");
        assert_eq!(t.decode(&ids, false).unwrap(), s);
    }
    let ids = t.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids[0], t.special.im_start);
    assert_eq!(*ids.last().unwrap(), t.special.im_end);
    assert!(t.vocab_size() <= Qwen2VlConfig::tiny().text.vocab_size);
}

#[test]
fn image_pad_count_mismatch_is_a_clear_error() {
    let model = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &dev()).unwrap();
    let img_tok = model.config.image_token_id;
    let mut ids = vec![1, model.config.vision_start_token_id];
    ids.extend(std::iter::repeat_n(img_tok, 5));
    ids.push(model.config.vision_end_token_id);
    let px = vldac_vlm::PixelValues { data: vec![0.0; 24 * 1176], patch_dim: 1176, grids: vec![[1, 4, 6]] };
    let b = Batch::left_padded(&[Prompt { ids, pixels: Some(px) }], 0).unwrap();
    let e = model.forward(&b, None, true).err().expect("5 pads for a 6-token image must fail").to_string();
    assert!(e.contains("image"), "{e}");
    let b = Batch::left_padded(&[Prompt::text(vec![1, 100000])], 0).unwrap();
    assert!(model.forward(&b, None, true).err().unwrap().to_string().contains("100000"));
}

/// Constrained decoding: only tokens from a fixed set, finished after three of them.
struct ThreeOf(Vec<u32>);

impl DecodeRules for ThreeOf {
    fn allowed(&self, prefix: &[u32]) -> Option<Vec<u32>> {
        Some(if prefix.len() < 3 { self.0.clone() } else { Vec::new() })
    }
    fn finished(&self, tokens: &[u32], _stop: &[u32]) -> bool {
        tokens.len() == 3
    }
}

#[test]
fn constrained_generation_and_scoring_agree() {
    let vlm = Vlm::random(None, 3, 28 * 28 * 16, &dev()).unwrap();
    let prompts: Vec<Prompt> =
        ["left or right?", "pick one"].iter().map(|s| Prompt::text(vlm.tokenizer.encode(s).unwrap())).collect();
    let rules = ThreeOf(vec![40, 41, 97]);
    let cfg = GenerateConfig { max_new_tokens: 8, temperature: 1.0, seed: 5, ..Default::default() };
    let opts = DecodeOptions { rules: &rules, logprob_temperature: 0.7, ..Default::default() };
    let g = generate_with(&vlm.model, &prompts, &cfg, vlm.pad_id(), true, &opts).unwrap();
    for (row, toks) in g.tokens.iter().enumerate() {
        assert_eq!(toks.len(), 3, "row {row} ends after three tokens");
        assert!(toks.iter().all(|t| rules.0.contains(t)), "row {row}: {toks:?} leaves the allowed set");
        assert!(g.stopped[row]);
        assert!(g.logprobs[row].iter().all(|l| l.is_finite() && *l <= 0.0));
    }
    // Scoring the generated replies under the same rules and temperature gives the recorded values.
    let s = score_with(&vlm.model, &prompts, &g.tokens, vlm.pad_id(), true, 0.7, &rules).unwrap();
    let scored = s.token_logprobs.into_data().try_to_vec::<f32>().unwrap();
    for (row, lps) in g.logprobs.iter().enumerate() {
        for (i, lp) in lps.iter().enumerate() {
            let x = scored[row * 3 + i];
            assert!((x - lp).abs() < 1e-4, "row {row} token {i}: scored {x} vs generated {lp}");
        }
    }
    let unrestricted = score_with(&vlm.model, &prompts, &g.tokens, vlm.pad_id(), true, 0.7, &FreeDecoding).unwrap();
    let free = unrestricted.token_logprobs.into_data().try_to_vec::<f32>().unwrap();
    assert!(free.iter().zip(&scored).all(|(f, c)| f <= c), "restriction can only raise log-probs");
}

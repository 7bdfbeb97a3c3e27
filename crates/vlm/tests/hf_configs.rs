//! Checkpoints as people have them: the config layouts every transformers version from 4.45 to
//! 5.x writes (fixtures/hf_configs/tf_*, made by gen_hf_configs.py; each must load and give
//! transformers' logits), the official hub configs (fixtures/hf_configs/hub, typed in by hand),
//! generation_config.json / preprocessor_config.json next to them, errors that name the field
//! when a config asks for math we do not implement, and PEFT adapter directories.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use common::*;
use serde_json::{Value, json};
use vldac_vlm::{
    Batch, GenerationDefaults, ImageProcessor, LoraConfig, ModelDirs, PixelValues, Prompt, Qwen2Vl, Qwen2VlConfig, Vlm,
    apply_lora, save_peft_adapter,
};

fn dev() -> Device {
    Device::flex()
}

fn version_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("hf_configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("tf_"))
        .collect();
    dirs.sort();
    dirs
}

fn logits(model: &Qwen2Vl, prompt: Prompt) -> Vec<f32> {
    let batch = Batch::left_padded(&[prompt], 0).unwrap();
    to_vec(model.forward(&batch, None, true).unwrap().logits)
}

#[test]
fn every_transformers_version_loads_and_matches_its_logits() {
    let dirs = version_dirs();
    let names: Vec<String> = dirs.iter().map(|d| d.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["tf_4_45", "tf_4_49", "tf_4_57", "tf_5_"] {
        assert!(names.iter().any(|n| n.starts_with(want)), "missing a fixture for {want}: {names:?}");
    }
    for dir in &dirs {
        let rel = format!("hf_configs/{}", dir.file_name().unwrap().to_string_lossy());
        let model = Qwen2Vl::from_dir(dir, &dev()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let (r, meta) = load_reference(&rel);
        for case in ["image", "text"] {
            let ids: Vec<u32> = r[&format!("{case}.input_ids")].i.iter().map(|&x| x as u32).collect();
            let pixels = r.get(&format!("{case}.pixel_values")).map(|pv| PixelValues {
                data: pv.f.clone(),
                patch_dim: pv.shape[1],
                grids: r[&format!("{case}.image_grid_thw")]
                    .i
                    .chunks(3)
                    .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
                    .collect(),
            });
            let want = &r[&format!("{case}.logits")];
            let got = logits(&model, Prompt { ids, pixels });
            let d = max_abs_diff(&got, &want.f);
            eprintln!("{rel} (transformers {}) {case}: max |logit diff| = {d:.2e}", meta["transformers"]);
            assert!(d < 1e-4, "{rel}/{case}: logits differ by {d}");
        }
    }
}

#[test]
fn generation_and_preprocessor_files_of_every_version() {
    for dir in version_dirs() {
        let g = GenerationDefaults::from_dir(&dir).unwrap();
        assert_eq!(g.eos_token_ids, vec![151, 150], "{}", dir.display());
        assert_eq!((g.bos_token_id, g.pad_token_id, g.do_sample, g.top_k), (Some(150), Some(150), true, 1));
        assert_eq!((g.temperature, g.top_p, g.repetition_penalty), (0.1, 0.001, 1.05));
        let c = g.generate_config(64);
        assert_eq!((c.max_new_tokens, c.temperature, c.top_p, c.top_k), (64, 0.1, 0.001, 1));
        assert_eq!(g.unapplied(), vec!["repetition_penalty 1.05".to_string()]);
        let p = ImageProcessor::from_file(&dir.join("preprocessor_config.json")).unwrap();
        assert_eq!((p.min_pixels, p.max_pixels, p.patch_size, p.merge_size), (3136, 1003520, 14, 2));
    }
    // Without a file: transformers' defaults (greedy).
    let g = GenerationDefaults::from_dir(&fixtures().join("tiny_a")).unwrap();
    assert_eq!(g, GenerationDefaults::default());
    assert_eq!(g.generate_config(32).temperature, 0.0);
}

/// (dir, hidden, layers, heads, kv heads, vocab, tied, eos)
type HubRow = (&'static str, usize, usize, usize, usize, usize, bool, u32);
const HUB: [HubRow; 6] = [
    ("Qwen2-VL-2B-Instruct", 1536, 28, 12, 2, 151936, true, 151645),
    ("Qwen2-VL-2B", 1536, 28, 12, 2, 151936, true, 151643),
    ("Qwen2-VL-7B-Instruct", 3584, 28, 28, 4, 152064, false, 151645),
    ("Qwen2-VL-7B", 3584, 28, 28, 4, 152064, false, 151643),
    ("Qwen2-VL-72B-Instruct", 8192, 80, 64, 8, 152064, false, 151645),
    ("Qwen2-VL-72B", 8192, 80, 64, 8, 152064, false, 151643),
];

#[test]
fn official_hub_configs_parse() {
    for (name, hidden, layers, heads, kv, vocab, tied, eos) in HUB {
        let dir = fixtures().join("hf_configs/hub").join(name);
        let c = Qwen2VlConfig::from_file(&dir.join("config.json")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = &c.text;
        assert_eq!(
            (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads, t.vocab_size),
            (hidden, layers, heads, kv, vocab),
            "{name}"
        );
        assert_eq!((t.tie_word_embeddings, t.mrope_section, t.rope_theta), (tied, [16, 24, 24], 1_000_000.0));
        assert_eq!(
            (c.vision.depth, c.vision.embed_dim, c.vision.num_heads, c.vision.hidden_size),
            (32, 1280, 16, hidden)
        );
        assert_eq!(
            (c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision_end_token_id),
            (151655, 151656, 151652, 151653)
        );
        assert_eq!(c.eos_token_ids, vec![eos], "{name}");
        let g = GenerationDefaults::from_dir(&dir).unwrap();
        assert_eq!(g.eos_token_ids, vec![151645, 151643], "{name}");
        let p = ImageProcessor::from_file(&dir.join("preprocessor_config.json")).unwrap();
        assert_eq!((p.min_pixels, p.max_pixels), (3136, 12845056), "{name}");
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `edit` applied to `base` must fail with an error that mentions every needle.
fn refused(base: &Value, edit: &dyn Fn(&mut Value), needles: &[&str]) {
    let mut v = base.clone();
    edit(&mut v);
    match Qwen2VlConfig::from_json_str(&v.to_string(), "config.json") {
        Ok(_) => panic!("should be refused: {v}"),
        Err(e) => {
            let e = e.to_string();
            for n in needles {
                assert!(e.contains(n), "error `{e}` should mention `{n}`");
            }
        }
    }
}

fn accepted(base: &Value, edit: &dyn Fn(&mut Value)) -> Qwen2VlConfig {
    let mut v = base.clone();
    edit(&mut v);
    Qwen2VlConfig::from_json_str(&v.to_string(), "config.json").unwrap_or_else(|e| panic!("{e}\n{v}"))
}

#[test]
fn fields_that_change_the_math_are_refused_by_name() {
    let flat = read(&fixtures().join("hf_configs/hub/Qwen2-VL-7B-Instruct/config.json"));
    let nested = read(&fixtures().join("hf_configs/tf_5_0_0/config.json"));
    let mirrored = read(&fixtures().join("hf_configs/tf_4_57_6/config.json"));
    // Another RoPE type, in each place it can be written.
    refused(&flat, &|v| v["rope_scaling"]["type"] = json!("yarn"), &["rope_scaling.type", "yarn"]);
    refused(&flat, &|v| v["rope_scaling"]["rope_type"] = json!("yarn"), &["rope_scaling.rope_type", "yarn"]);
    refused(
        &nested,
        &|v| v["text_config"]["rope_parameters"]["rope_type"] = json!("linear"),
        &["text_config.rope_parameters.rope_type", "linear"],
    );
    refused(&flat, &|v| v["rope_scaling"]["factor"] = json!(4.0), &["factor"]);
    refused(&flat, &|v| v["rope_scaling"]["mrope_interleaved"] = json!(true), &["mrope_interleaved"]);
    // Sliding-window attention that is on for some layer.
    // (max_window_layers alone does nothing while use_sliding_window is false.)
    accepted(&flat, &|v| v["max_window_layers"] = json!(20));
    refused(
        &flat,
        &|v| {
            v["use_sliding_window"] = json!(true);
            v["max_window_layers"] = json!(20);
        },
        &["use_sliding_window", "max_window_layers 20"],
    );
    refused(
        &nested,
        &|v| v["text_config"]["layer_types"][1] = json!("sliding_attention"),
        &["text_config.layer_types[1]", "sliding_attention"],
    );
    // Qwen2.5-VL.
    refused(&flat, &|v| v["model_type"] = json!("qwen2_5_vl"), &["model_type", "Qwen2.5-VL"]);
    refused(&flat, &|v| v["architectures"] = json!(["Qwen2_5_VLForConditionalGeneration"]), &["architectures"]);
    for k in ["out_hidden_size", "fullatt_block_indexes", "window_size", "intermediate_size", "tokens_per_second"] {
        refused(&flat, &|v| v["vision_config"][k] = json!(8), &[format!("vision_config.{k}").as_str(), "Qwen2.5-VL"]);
    }
    refused(&flat, &|v| v["tokens_per_second"] = json!(2), &["tokens_per_second"]);
    // Quantized weights, other activations.
    refused(&flat, &|v| v["quantization_config"] = json!({"quant_method": "gptq"}), &["quantization_config"]);
    refused(&nested, &|v| v["text_config"]["hidden_act"] = json!("gelu"), &["text_config.hidden_act"]);
    // A mirrored top-level key that disagrees with text_config.
    refused(&mirrored, &|v| v["num_hidden_layers"] = json!(3), &["num_hidden_layers", "text_config"]);
    // rope_scaling and rope_parameters with different sections.
    refused(
        &nested,
        &|v| v["text_config"]["rope_scaling"] = json!({"type": "mrope", "mrope_section": [2, 2, 4]}),
        &["mrope_section"],
    );
    // Typos still fail.
    refused(&nested, &|v| v["text_config"]["hiden_size"] = json!(32), &["hiden_size", "text_config"]);
}

#[test]
fn harmless_variants_are_accepted() {
    let flat = read(&fixtures().join("hf_configs/hub/Qwen2-VL-7B-Instruct/config.json"));
    let want = accepted(&flat, &|_| {});
    // transformers >= 4.45 re-saves `type` and `rope_type` together.
    let c = accepted(&flat, &|v| {
        v["rope_scaling"] = json!({"type": "default", "rope_type": "default", "mrope_section": [16, 24, 24]})
    });
    assert_eq!(c, want);
    // dtype instead of torch_dtype, generation fields and base-class defaults in config.json.
    let c = accepted(&flat, &|v| {
        let o = v.as_object_mut().unwrap();
        o.remove("torch_dtype");
        o.insert("dtype".into(), json!("bfloat16"));
        for (k, x) in
            [("do_sample", json!(true)), ("temperature", json!(0.1)), ("top_k", json!(1)), ("max_length", json!(20))]
        {
            o.insert(k.into(), x);
        }
        v["vision_config"]["pruned_heads"] = json!({});
        v["vision_config"]["is_decoder"] = json!(false);
        v["vision_config"]["eos_token_id"] = Value::Null;
        v["vision_config"]["tie_word_embeddings"] = json!(true);
    });
    assert_eq!(c, want);
    // Sliding window switched on but covering no layer (max_window_layers = depth).
    let c = accepted(&flat, &|v| v["use_sliding_window"] = json!(true));
    assert_eq!(c, want);
    // rope_parameters with rope_theta inside (transformers 5) instead of a top-level rope_theta.
    let c = accepted(&flat, &|v| {
        let o = v.as_object_mut().unwrap();
        o.remove("rope_scaling");
        o.remove("rope_theta");
        o.insert(
            "rope_parameters".into(),
            json!({"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6}),
        );
    });
    assert_eq!(c, want);
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-hfconfigs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const IDS: [u32; 9] = [5, 17, 42, 99, 3, 250, 7, 11, 64];

/// A LoRA'd tiny_a with random B (as after training), saved as PEFT into `dir` with `base` as
/// its base_model_name_or_path. Returns the tuned logits.
fn trained_adapter(dir: &Path, base: &str) -> Vec<f32> {
    let model = Qwen2Vl::from_dir(&fixtures().join("tiny_a"), &dev()).unwrap();
    let cfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, ..Default::default() };
    let mut model = apply_lora(model, &cfg).unwrap();
    for (_, proj) in model.model.projections_mut() {
        let l = proj.lora.as_mut().unwrap();
        let noise = l.b.val().random_like(burn::tensor::Distribution::Normal(0.0, 0.05));
        l.b = burn::module::Param::from_tensor(noise);
    }
    save_peft_adapter(&model, &cfg, dir, base).unwrap();
    logits(&model, Prompt::text(IDS.to_vec()))
}

#[test]
fn a_peft_adapter_directory_loads_on_its_base() {
    let base = fixtures().join("tiny_a");
    let dir = tmp("adapter");
    let tuned = trained_adapter(&dir, &base.display().to_string());
    let untuned = logits(&Qwen2Vl::from_dir(&base, &dev()).unwrap(), Prompt::text(IDS.to_vec()));
    assert!(max_abs_diff(&tuned, &untuned) > 1e-3);

    let dirs = ModelDirs::resolve(&dir).unwrap();
    assert_eq!((dirs.base.clone(), dirs.adapter.clone()), (base.clone(), Some(dir.clone())));
    let vlm = Vlm::from_dir(&dir, &dev()).unwrap();
    assert_eq!(logits(&vlm.model, Prompt::text(IDS.to_vec())), tuned);
    // The tokenizer came from the base (the adapter directory has none).
    assert_eq!(vlm.tokenizer.special.im_end, Vlm::from_dir(&base, &dev()).unwrap().tokenizer.special.im_end);

    // A base path relative to the adapter directory.
    let nested = dir.join("checkpoint-100");
    std::fs::create_dir_all(&nested).unwrap();
    let rel = pathdiff(&base, &nested);
    trained_adapter(&nested, &rel);
    let found = ModelDirs::resolve(&nested).unwrap().base;
    assert_eq!(std::fs::canonicalize(found).unwrap(), std::fs::canonicalize(&base).unwrap());
    assert!(Vlm::from_dir(&nested, &dev()).is_ok());

    // A hub id is not downloaded: the error names the field and says what to do.
    let hub = tmp("adapter-hub");
    trained_adapter(&hub, "Qwen/Qwen2-VL-2B-Instruct");
    let e = Vlm::from_dir(&hub, &dev()).err().unwrap().to_string();
    assert!(e.contains("base_model_name_or_path") && e.contains("Qwen/Qwen2-VL-2B-Instruct"), "{e}");

    // PEFT settings our LoRA does not reproduce are refused by name.
    for (k, x) in [("use_dora", json!(true)), ("use_rslora", json!(true)), ("modules_to_save", json!(["lm_head"]))] {
        let mut conf = read(&dir.join("adapter_config.json"));
        conf[k] = x;
        std::fs::write(dir.join("adapter_config.json"), conf.to_string()).unwrap();
        let e = Vlm::from_dir(&dir, &dev()).err().unwrap().to_string();
        assert!(e.contains(k), "error `{e}` should name `{k}`");
        conf.as_object_mut().unwrap().remove(k);
        std::fs::write(dir.join("adapter_config.json"), conf.to_string()).unwrap();
    }
    let empty = tmp("empty");
    let e = Vlm::from_dir(&empty, &dev()).err().unwrap().to_string();
    assert!(e.contains("adapter_config.json") && e.contains("config.json"), "{e}");
    for d in [dir, hub, empty] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `to` written relative to `from` (both absolute, no symlinks involved).
fn pathdiff(to: &Path, from: &Path) -> String {
    let t: Vec<_> = to.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out.display().to_string()
}

//! The device and precision choice in training: errors before anything is written, a bf16 base
//! that trains, and (with `--features tch`, run by `cargo xtask test --with-tch`) libtorch's CPU
//! backend giving the same first iterations as flex.

use std::path::{Path, PathBuf};

use vldac_core::Environment;
use vldac_train::config::TrainConfig;
use vldac_train::metrics::read_jsonl;
use vldac_train::trainer::Trainer;

fn make(id: &str) -> anyhow::Result<Box<dyn Environment>> {
    Ok(vldac_gym_cards::make(id)?)
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-devices-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(out: &Path, name: &str, iterations: usize, extra: &[&str]) -> Result<TrainConfig, String> {
    let mut sets: Vec<String> = vec![
        format!("run.out_dir=\"{}\"", out.display()),
        format!("run.name={name}"),
        format!("run.iterations={iterations}"),
        "run.progress=false".into(),
        "rollout.num_envs=2".into(),
        "rollout.num_steps=4".into(),
        "algo.mini_batch_size=4".into(),
        "algo.value_warmup_iterations=1".into(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::default_config(&sets)
}

#[test]
fn bad_device_or_dtype_values_name_the_key() {
    let out = out_dir("keys");
    let e = config(&out, "x", 1, &["run.device=\"gpu\""]).expect_err("unknown device");
    assert!(e.contains("[run]") && e.contains("gpu") && e.contains("tch-cuda"), "{e}");
    let e = config(&out, "x", 1, &["model.dtype=\"f64\""]).expect_err("unknown dtype");
    assert!(e.contains("[model]") && e.contains("f64") && e.contains("bf16"), "{e}");
    // Both keys are written back into the run's config.toml.
    let c = config(&out, "x", 1, &["run.device=\"cpu\"", "model.dtype=\"bf16\""]).unwrap();
    let text = c.to_toml();
    assert!(text.contains("device = \"cpu\"") && text.contains("dtype = \"bf16\""), "{text}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn unbuilt_device_fails_before_anything_is_written() {
    let out = out_dir("unbuilt");
    let cfg = config(&out, "x", 1, &["run.device=\"cuda:0\""]).unwrap();
    let e = Trainer::new(cfg, &make, false).err().expect("cuda is not built in");
    let msg = format!("{e:#}");
    assert!(msg.contains("run.device") && msg.contains("--features cuda"), "{msg}");
    assert!(!out.exists(), "nothing may be written for a failed device choice");
}

#[test]
fn bf16_base_trains_with_f32_adapters() {
    let out = out_dir("bf16");
    let cfg = config(&out, "bf16", 2, &["model.dtype=\"bf16\""]).unwrap();
    let mut t = Trainer::new(cfg, &make, false).unwrap();
    assert_eq!(t.placement().precision, vldac_vlm::Precision::Bf16);
    assert_eq!(t.policy().model.dtype(), burn::tensor::DType::BF16);
    t.train(|_, _| {}).unwrap();
    let m = read_jsonl(&out.join("bf16/metrics.jsonl")).unwrap();
    assert_eq!(m.len(), 2);
    for line in &m {
        for k in ["loss/value", "loss/policy", "value/mean"] {
            assert!(line[k].as_f64().is_some_and(f64::is_finite), "{k}: {}", line[k]);
        }
    }
    // The second iteration updated the policy (not only the value head).
    assert_eq!(m[1]["update/value_only"], serde_json::json!(0.0));
    assert!(m[1]["update/grad_norm"].as_f64().is_some_and(|g| g > 0.0));
    let _ = std::fs::remove_dir_all(&out);
}

/// One process can only hold one libtorch; the comparison runs flex and libtorch in turn.
#[cfg(feature = "tch")]
#[test]
fn tch_cpu_iterations_equal_flex() {
    let out = out_dir("tch");
    let run = |device: &str| {
        let d = format!("run.device=\"{device}\"");
        let cfg = config(&out, device, 2, &[&d]).unwrap();
        let mut t = Trainer::new(cfg, &make, false).unwrap();
        t.train(|_, _| {}).unwrap();
        read_jsonl(&out.join(device).join("metrics.jsonl")).unwrap()
    };
    let flex = run("cpu");
    let tch = run("tch-cpu");
    assert_eq!(flex.len(), tch.len());
    for (a, b) in flex.iter().zip(&tch) {
        for (k, va) in a.as_object().expect("metrics are objects") {
            if let (Some(x), Some(y)) = (va.as_f64(), b[k].as_f64())
                && x != y
            {
                eprintln!("iteration {}: {k}: flex {x} tch-cpu {y}", a["iteration"]);
            }
        }
    }
    for (a, b) in flex.iter().zip(&tch) {
        for k in ["episode/return", "episode/success", "rollout/invalid_action_rate"] {
            assert_eq!(a[k], b[k], "{k}: same episodes");
        }
        for k in ["loss/policy", "loss/value", "loss/kl", "value/mean"] {
            let (x, y) = (a[k].as_f64().unwrap(), b[k].as_f64().unwrap());
            let rel = (x - y).abs() / x.abs().max(y.abs()).max(1e-6);
            eprintln!("{k}: flex {x:.8} tch {y:.8} (rel {rel:.2e})");
            assert!(rel < 1e-4 || (x - y).abs() < 1e-6, "{k}: flex {x} vs tch-cpu {y}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[cfg(not(feature = "tch"))]
#[test]
fn tch_cpu_iterations_equal_flex() {
    eprintln!("skipped: built without `tch`; `cargo xtask test --with-tch` runs this comparison against libtorch");
}

//! `--device` / `--dtype` through the real binary: a device this binary was not built for, an
//! unknown device or dtype is a clear error (exit code != 0, no panic) and nothing is written.

use std::process::{Command, Output};

fn vldac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vldac")).args(args).output().expect("the vldac binary runs")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-device-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn assert_clean_failure(out: &Output, must_contain: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure, got success: {err}");
    assert_eq!(out.status.code(), Some(1), "a clean exit, not a panic (101) or a signal: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for m in must_contain {
        assert!(err.contains(m), "stderr lacks {m:?}: {err}");
    }
}

#[test]
fn train_on_an_unbuilt_device_fails_before_writing_anything() {
    let out_dir = tmp("train");
    let set = format!("run.out_dir=\"{}\"", out_dir.display());
    let mut cases: Vec<(&str, Vec<&str>)> = Vec::new();
    if !cfg!(feature = "cuda") {
        cases.push(("cuda:0", vec!["cuda:0", "--features cuda", "setup cuda"]));
    }
    if !cfg!(feature = "tch") {
        cases.push(("tch-cpu", vec!["tch-cpu", "--features tch", "setup tch"]));
    }
    for (device, msgs) in &cases {
        let out = vldac(&["train", "--device", device, "--set", &set, "--set", "run.iterations=1"]);
        assert_clean_failure(&out, msgs);
        assert!(!out_dir.exists(), "{device}: {} was created", out_dir.display());
        // The same through the config key.
        let dev = format!("run.device=\"{device}\"");
        let out = vldac(&["train", "--set", &dev, "--set", &set]);
        assert_clean_failure(&out, msgs);
        assert!(!out_dir.exists());
    }
}

#[test]
fn unknown_device_and_dtype_are_named() {
    // Flags are checked by the argument parser (exit code 2, the value and the flag named).
    for (args, bad) in [
        (vec!["train", "--device", "gpu0"], "gpu0"),
        (vec!["vlm", "generate", "--tiny-random", "1", "--prompt", "hi", "--dtype", "f8"], "f8"),
    ] {
        let out = vldac(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(bad) && err.contains("--d"), "{err}");
    }
    let out = vldac(&["train", "--set", "run.device=\"metal\""]);
    assert_clean_failure(&out, &["metal", "run"]);
    let out = vldac(&["train", "--set", "model.dtype=\"int4\""]);
    assert_clean_failure(&out, &["int4", "model"]);
}

#[test]
fn eval_and_vlm_commands_take_the_device() {
    if cfg!(feature = "cuda") {
        eprintln!("skipped: this binary has `cuda`; the unbuilt-device error cannot be shown");
        return;
    }
    let out_dir = tmp("eval");
    let out = vldac(&[
        "eval",
        "run",
        "--bench",
        "balrog",
        "--envs",
        "babyai",
        "--tiny-random",
        "1",
        "--device",
        "cuda",
        "--out",
        out_dir.to_str().expect("utf-8 temp dir"),
    ]);
    assert_clean_failure(&out, &["cuda", "--features cuda"]);
    assert!(!out_dir.exists(), "eval run wrote {} before failing", out_dir.display());
    let out = vldac(&["vlm", "generate", "--tiny-random", "1", "--prompt", "hi", "--device", "cuda:1"]);
    assert_clean_failure(&out, &["cuda:1", "--features cuda"]);
    // cpu in bf16 works end to end.
    let out = vldac(&[
        "vlm",
        "generate",
        "--tiny-random",
        "1",
        "--prompt",
        "hi",
        "--device",
        "cpu",
        "--dtype",
        "bf16",
        "--max-new-tokens",
        "4",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("generate prints JSON");
    assert_eq!(v["tokens"].as_array().map(Vec::len), Some(4));
}

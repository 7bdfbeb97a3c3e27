//! The device-facing tasks: `test --with-tch` (libtorch CPU), `bench vlm-2b` (ours vs HF
//! transformers at the real Qwen2-VL shapes) and `gpu-check` (everything a GPU machine should
//! show, as one command that prints one table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::setup::{QWEN2VL_PACKAGES, venv_dir};
use crate::{cargo, root, run};

/// Environment for building and running with `tch` against the pip torch of `target/venvs/tch`.
fn tch_env(c: &mut Command) -> Result<()> {
    let venv = venv_dir("tch");
    let py = venv.join("bin").join("python");
    let out = Command::new(&py)
        .args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()
        .with_context(|| format!("running {}", py.display()))?;
    if !out.status.success() {
        bail!("torch is not importable in {}: run `cargo xtask setup tch`", venv.display());
    }
    let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let ld = match std::env::var("LD_LIBRARY_PATH") {
        Ok(old) if !old.is_empty() => format!("{lib}:{old}"),
        _ => lib,
    };
    c.env("VIRTUAL_ENV", &venv)
        .env("PATH", format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
        .env("LIBTORCH_USE_PYTORCH", "1")
        .env("LIBTORCH_BYPASS_VERSION_CHECK", "1")
        .env("LD_LIBRARY_PATH", ld);
    Ok(())
}

/// `cargo xtask test --with-tch`: pip torch into a venv, then the model's parity fixtures and
/// the dtype tests on `tch-cpu`, and training iterations on `tch-cpu` against `cpu`.
pub fn test_with_tch() -> Result<()> {
    crate::setup::tch()?;
    let mut c = cargo();
    tch_env(&mut c)?;
    c.env("VLDAC_TEST_DEVICE", "tch-cpu").args([
        "test",
        "--release",
        "-p",
        "vldac-vlm",
        "-p",
        "vldac-train",
        "--features",
        "vldac-vlm/tch,vldac-train/tch",
        "--test",
        "parity",
        "--test",
        "precision",
        "--test",
        "devices",
        "--",
        "--test-threads=1",
    ]);
    run(c)
}

/// One row of a side-by-side table.
#[derive(Default)]
struct Cell {
    ours: Option<f64>,
    hf: Option<f64>,
    /// Rows where bigger is better (tokens/s).
    rate: bool,
    /// Why the peer's value could not be derived (e.g. its decode time came out negative).
    hf_invalid: Option<String>,
}

fn parse_rows(text: &str, ours: bool, table: &mut BTreeMap<String, Cell>, key: &str) {
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(row) = v.get("row").and_then(|r| r.as_str()) else { continue };
        let (value, rate) = match (v.get("tokens_per_s").and_then(|x| x.as_f64()), v.get("seconds")) {
            (Some(t), _) => (Some(t), true),
            (None, Some(s)) => (s.as_f64(), false),
            (None, None) => (v.get("value").and_then(|x| x.as_f64()), false),
        };
        let cell = table.entry(format!("{key} {row}")).or_default();
        if let Some(why) = v.get("invalid").and_then(|x| x.as_str()) {
            if !ours {
                cell.hf_invalid = Some(why.to_string());
            }
            continue;
        }
        cell.rate = rate;
        if ours {
            cell.ours = value;
        } else {
            cell.hf = value;
        }
    }
}

/// Options of `bench vlm-2b`.
pub struct ShapeBench {
    pub device: String,
    pub dtypes: Vec<String>,
    pub shapes: Vec<String>,
    pub threads: usize,
    pub features: Vec<String>,
    pub reps: usize,
    /// Also time loading a random bf16 checkpoint of each full shape (no `:LAYERS`) in each dtype,
    /// ours (`vldac vlm load`) against `from_pretrained`.
    pub load: bool,
}

/// Runs `vldac vlm bench` and `hf_shapes.py` for every shape and dtype; prints one table.
pub fn bench_shapes(o: &ShapeBench) -> Result<String> {
    crate::setup::qwen2vl()?;
    let py = venv_dir("qwen2vl").join("bin").join("python");
    // peft for the LoRA row (the fixtures venv pins it too).
    let peft_ok = Command::new(&py).args(["-c", "import peft"]).status().map(|s| s.success()).unwrap_or(false);
    if !peft_ok {
        let peft: Vec<&str> = QWEN2VL_PACKAGES.iter().copied().filter(|p| p.starts_with("peft")).collect();
        crate::setup::pip_install("qwen2vl", &peft)?;
    }
    let mut b = cargo();
    b.args(["build", "--release", "-p", "vldac"]);
    if !o.features.is_empty() {
        b.args(["--features", &o.features.join(",")]);
    }
    run(b)?;
    let bin = root().join("target").join("release").join("vldac");
    let mut table: BTreeMap<String, Cell> = BTreeMap::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for shape in &o.shapes {
        for dtype in &o.dtypes {
            let key = format!("{shape} {dtype}");
            let mut ours = Command::new(&bin);
            ours.args(["vlm", "bench", "--shape", shape, "--device", &o.device, "--dtype", dtype])
                .args(["--reps", &o.reps.to_string()])
                .env("RAYON_NUM_THREADS", o.threads.to_string());
            let out = stdout_of(ours, &format!("vldac vlm bench ({key})"))?;
            parse_rows(&out, true, &mut table, &key);
            let mut hf = Command::new(&py);
            hf.arg(root().join("crates/vlm/bench/hf_shapes.py"))
                .args(["--shape", shape, "--device", &hf_device(&o.device), "--dtype", dtype])
                .args(["--threads", &o.threads.to_string(), "--reps", &o.reps.to_string()]);
            let out = stdout_of(hf, &format!("hf_shapes.py ({key})"))?;
            parse_rows(&out, false, &mut table, &key);
        }
        if o.load && !shape.contains(':') {
            load_rows(o, &bin, &py, shape, &mut table)?;
        }
    }
    let mut md = format!(
        "device {} ({} threads on CPU), load average before: {}\n\n| row | HF transformers | vldac | HF / vldac (>1: we are faster) |\n|---|---|---|---|\n",
        o.device,
        o.threads,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    md.push_str(&table_rows(&table));
    println!("{md}");
    Ok(md)
}

/// The `load` and `load_peak_rss_bytes` rows of a full shape: a random bf16 checkpoint written once
/// under `target/bench-checkpoints/` (HF's layout, sharded, as the hub's are), then for each dtype
/// ours and HF's load of it, each from a warm page cache so that neither side pays the disk.
fn load_rows(o: &ShapeBench, bin: &Path, py: &Path, shape: &str, table: &mut BTreeMap<String, Cell>) -> Result<()> {
    let dir = root().join("target").join("bench-checkpoints").join(format!("{shape}-bf16"));
    if !dir.join("config.json").exists() {
        let mut make = Command::new(bin);
        make.args(["vlm", "make-random", "--shape", shape, "--dtype", "bf16", "--out"]).arg(&dir);
        run(make)?;
    }
    let warm = || -> Result<()> {
        for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = e?.path();
            let mut f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            std::io::copy(&mut f, &mut std::io::sink()).with_context(|| format!("reading {}", path.display()))?;
        }
        Ok(())
    };
    for dtype in &o.dtypes {
        let key = format!("{shape} {dtype}");
        warm()?;
        let mut ours = Command::new(bin);
        ours.args(["vlm", "load", "--device", &o.device, "--dtype", dtype, "--model"])
            .arg(&dir)
            .env("RAYON_NUM_THREADS", o.threads.to_string());
        // One JSON object: the load's seconds and the process's peak RSS.
        let out = stdout_of(ours, &format!("vldac vlm load ({key})"))?;
        parse_rows(&load_rows_of(&out)?, true, table, &key);
        warm()?;
        let mut hf = Command::new(py);
        hf.arg(root().join("crates/vlm/bench/hf_shapes.py"))
            .args(["--device", &hf_device(&o.device), "--dtype", dtype, "--threads", &o.threads.to_string()])
            .arg("--load")
            .arg(&dir);
        let out = stdout_of(hf, &format!("hf_shapes.py --load ({key})"))?;
        parse_rows(&out, false, table, &key);
    }
    Ok(())
}

/// `vldac vlm load`'s JSON object as the two table rows `hf_shapes.py --load` prints.
fn load_rows_of(json: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).context("vldac vlm load's JSON")?;
    let (Some(seconds), Some(rss)) = (v["seconds"].as_f64(), v["peak_rss_bytes"].as_f64()) else {
        bail!("vldac vlm load printed no seconds / peak_rss_bytes: {json}");
    };
    Ok(format!(
        "{}\n{}",
        serde_json::json!({"row": "load", "seconds": seconds}),
        serde_json::json!({"row": "load_peak_rss_bytes", "value": rss})
    ))
}

/// Runs `cmd` (echoed), failing with its stderr if it fails; its stdout.
fn stdout_of(mut cmd: Command, what: &str) -> Result<String> {
    eprintln!("$ {cmd:?}");
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The table's body: one markdown line per row, HF, ours and the ratio (HF time / ours, or our
/// rate / HF's, so > 1 always means we are faster).
fn table_rows(table: &BTreeMap<String, Cell>) -> String {
    let mut md = String::new();
    for (row, c) in table {
        let fmt = |x: Option<f64>| match x {
            None => "—".to_string(),
            Some(v) if row.ends_with("bytes") => format!("{:.2} GB", v / 1e9),
            Some(v) if c.rate => format!("{v:.1} tok/s"),
            Some(v) => format!("{v:.3} s"),
        };
        let ratio = match (c.hf, c.ours) {
            (Some(h), Some(u)) if u > 0.0 && h > 0.0 => {
                let r = if c.rate { u / h } else { h / u };
                format!("{r:.2}×")
            }
            _ => "—".into(),
        };
        let hf = match &c.hf_invalid {
            Some(why) => format!("invalid ({why})"),
            None => fmt(c.hf),
        };
        md.push_str(&format!("| {row} | {hf} | {} | {ratio} |\n", fmt(c.ours)));
    }
    md
}

/// The torch device for one of ours (`tch-cuda:1` -> `cuda:1`, `cpu`/`tch-cpu` -> `cpu`).
fn hf_device(d: &str) -> String {
    match d {
        "cpu" | "tch-cpu" | "auto" => "cpu".into(),
        d => d.strip_prefix("tch-").unwrap_or(d).into(),
    }
}

/// `cargo xtask gpu-check`: on a machine with an NVIDIA GPU (driver, no internet needed), builds
/// `vldac` with `cuda` (and `tch` when a torch is importable), runs the model's parity fixtures on
/// `cuda`, 10 iterations of the default training on `cuda`, and the 2B/7B benchmark against HF
/// transformers; writes `target/gpu-check.md` and prints it.
pub fn gpu_check(shapes: &[String], skip_bench: bool) -> Result<()> {
    let mut report = String::from("# vldac GPU check\n\n");
    let smi = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
        .output();
    match smi {
        Ok(o) if o.status.success() => {
            report.push_str(&format!("GPU: {}\n", String::from_utf8_lossy(&o.stdout).trim()))
        }
        _ => bail!("nvidia-smi found no GPU: gpu-check needs a machine with an NVIDIA GPU and its driver"),
    }
    crate::setup::cuda()?;
    let cuda_env = |c: &mut Command| {
        c.env("CUDARC_CUDA_VERSION", std::env::var("CUDARC_CUDA_VERSION").unwrap_or_else(|_| "13000".into()));
    };
    let mut step = |name: &str, mut c: Command| -> Result<()> {
        cuda_env(&mut c);
        let t = std::time::Instant::now();
        let r = run(c);
        report.push_str(&format!(
            "- {name}: {} ({:.0} s)\n",
            if r.is_ok() { "ok" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        ));
        r
    };
    let mut parity = cargo();
    parity.env("VLDAC_TEST_DEVICE", "cuda").args([
        "test",
        "--release",
        "-p",
        "vldac-vlm",
        "--features",
        "cuda",
        "--test",
        "parity",
        "--test",
        "precision",
        "--",
        "--test-threads=1",
    ]);
    let parity_ok = step("parity fixtures + dtype rules on cuda (f32 logits 1e-4, greedy exact; bf16)", parity);
    let mut train = cargo();
    train.args(["run", "--release", "-p", "vldac", "--features", "cuda", "--", "train", "--device", "cuda"]).args([
        "--set",
        "run.iterations=10",
        "--set",
        "run.name=gpu-check",
        "--set",
        "run.out_dir=\"target/gpu-check-runs\"",
        "--set",
        "run.progress=false",
    ]);
    let _ = std::fs::remove_dir_all(root().join("target/gpu-check-runs/gpu-check"));
    let train_ok = step("10 iterations of the default training on cuda", train);
    // libtorch on the GPU, when this machine's python has torch (best effort: torch-sys 0.22
    // is written for torch 2.9; another version may not build).
    let torch_lib = Command::new("python3")
        .args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match torch_lib {
        Some(lib) => {
            let mut tch = cargo();
            tch.env("LIBTORCH_USE_PYTORCH", "1")
                .env("LIBTORCH_BYPASS_VERSION_CHECK", "1")
                .env("LD_LIBRARY_PATH", lib)
                .env("VLDAC_TEST_DEVICE", "tch-cuda")
                .args(["test", "--release", "-p", "vldac-vlm", "--features", "tch", "--test", "parity"])
                .args(["--test", "precision", "--", "--test-threads=1"]);
            let _ = step("parity fixtures + dtype rules on tch-cuda (best effort)", tch);
        }
        None => report.push_str("- tch-cuda: skipped (no python3 with torch on this machine)\n"),
    }
    if let Ok(text) = std::fs::read_to_string(root().join("target/gpu-check-runs/gpu-check/metrics.jsonl")) {
        let last = text.lines().last().unwrap_or_default();
        report.push_str(&format!("  last metrics line: `{}`\n", last.chars().take(400).collect::<String>()));
    }
    if !skip_bench {
        let md = bench_shapes(&ShapeBench {
            device: "cuda".into(),
            dtypes: vec!["bf16".into()],
            shapes: shapes.to_vec(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            features: vec!["cuda".into()],
            reps: 3,
            // Writing a 7B checkpoint first would take much of a lent GPU's minutes.
            load: false,
        });
        match md {
            Ok(md) => report.push_str(&format!("\n## Qwen2-VL shapes, random weights, bf16, cuda\n\n{md}\n")),
            Err(e) => report.push_str(&format!("\n- benchmark FAILED: {e:#}\n")),
        }
    }
    let path: PathBuf = root().join("target").join("gpu-check.md");
    std::fs::write(&path, &report)?;
    println!("{report}\nwritten to {}", path.display());
    parity_ok.and(train_ok)
}

#[cfg(test)]
mod tests {

    #[test]
    fn load_rows_pair_ours_with_hf() {
        // Lines as `vldac vlm load` and `hf_shapes.py --load` print them.
        let ours = r#"{"seconds":6.5,"device":"cpu","dtype":"f32","model_dtype":"F32","checkpoint_bytes":4418050368,"peak_rss_bytes":8931954688}"#;
        let hf = r#"{"row": "load", "seconds": 2.5, "params": 2208985600, "impl": "hf"}
{"row": "load_peak_rss_bytes", "value": 13946167296, "impl": "hf"}"#;
        let mut table = BTreeMap::new();
        parse_rows(&load_rows_of(ours).unwrap(), true, &mut table, "2b f32");
        parse_rows(hf, false, &mut table, "2b f32");
        let md = table_rows(&table);
        assert!(md.contains("| 2b f32 load | 2.500 s | 6.500 s | 0.38× |"), "{md}");
        assert!(md.contains("| 2b f32 load_peak_rss_bytes | 13.95 GB | 8.93 GB | 1.56× |"), "{md}");
        assert!(load_rows_of(r#"{"error": "x"}"#).is_err());
    }
    use super::*;

    #[test]
    fn invalid_peer_decode_row_is_named_not_turned_into_a_rate() {
        let mut t = BTreeMap::new();
        parse_rows(r#"{"row":"decode_b8","seconds":2.0,"tokens_per_s":124.0}"#, true, &mut t, "2b bf16");
        parse_rows(
            r#"{"row":"decode_b8","seconds":null,"invalid":"generate(1) took 9.000 s, generate(32) 8.000 s"}"#,
            false,
            &mut t,
            "2b bf16",
        );
        parse_rows(r#"{"row":"prefill","seconds":2.0}"#, true, &mut t, "2b bf16");
        parse_rows(r#"{"row":"prefill","seconds":3.0}"#, false, &mut t, "2b bf16");
        let md = table_rows(&t);
        assert!(
            md.contains(
                "| 2b bf16 decode_b8 | invalid (generate(1) took 9.000 s, generate(32) 8.000 s) | 124.0 tok/s | — |"
            ),
            "{md}"
        );
        assert!(md.contains("| 2b bf16 prefill | 3.000 s | 2.000 s | 1.50× |"), "{md}");
    }
}

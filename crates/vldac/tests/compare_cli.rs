//! `vldac compare` on `configs/miniworld-small.toml` through the real binary: 3 iterations of
//! VL-DAC and of RL4VLM at a non-default λ load the config, step MiniWorld from its frames, update
//! the policy and write every run's metrics, the table and the plot (after a short perception
//! pretraining).

use std::path::{Path, PathBuf};
use std::process::Command;

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/miniworld-small.toml")
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl is written");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v.get("iteration").is_some())
        .collect()
}

#[test]
fn three_iterations_of_the_miniworld_comparison() {
    let out = std::env::temp_dir().join(format!("vldac-compare-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg = config();
    let res = Command::new(env!("CARGO_BIN_EXE_vldac"))
        .args(["compare", "--config"])
        .arg(&cfg)
        .args(["--algos", "vl-dac,rl4vlm:0.1", "--seeds", "1", "--window", "1", "--threshold", "0.5"])
        .args(["--set", "run.iterations=3", "--set", "run.progress=false"])
        // A short perception pretraining: its learning is tested in perception_cli.rs.
        .args(["--set", "model.perception.steps=10", "--set", "model.perception.frames=120", "--out"])
        .arg(&out)
        .output()
        .expect("the vldac binary runs");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "vldac compare failed: {err}");

    for run in ["vl-dac-seed1", "rl4vlm-lambda0.1-seed1"] {
        let lines = metrics(&out.join(run));
        assert_eq!(lines.len(), 3, "{run}: one metrics line per iteration");
        let total = lines[2]["rollout/env_steps_total"].as_f64().unwrap_or(0.0);
        assert_eq!(total, 3.0 * 256.0, "{run}: 8 envs x 32 steps per iteration");
        // Episodes end within the 256 steps of an iteration (the 12-step limit at the latest),
        // and the policy is updated: the update moves it away from the behaviour policy.
        assert!(lines.iter().all(|l| l["episode/count"].as_f64().unwrap_or(0.0) >= 1.0), "{run}: {lines:?}");
        let moved = lines.iter().any(|l| l["update/approx_kl"].as_f64().is_some_and(|k| k != 0.0));
        assert!(moved, "{run}: no policy update in 3 iterations: {lines:?}");
        assert!(out.join(run).join("perception.json").exists(), "{run}: the config pretrains perception first");
    }
    // The RL4VLM run's replies carry thoughts: the config's thought span is in the saved config.
    let saved = std::fs::read_to_string(out.join("rl4vlm-lambda0.1-seed1/config.toml")).unwrap_or_default();
    assert!(saved.contains("thought_coef = 0.1"), "{saved}");

    let table = std::fs::read_to_string(out.join("compare.md")).expect("compare.md is written");
    for row in ["| vl-dac | 1 |", "| **vl-dac** | mean ± std |", "| rl4vlm-lambda0.1 | 1 |"] {
        assert!(table.contains(row), "compare.md lacks {row:?}:\n{table}");
    }
    let png = image::open(out.join("compare.png")).expect("compare.png is a readable image");
    assert!(png.width() > 0 && png.height() > 0);

    // --replot rebuilds the same table from the runs on disk without training (only the wall
    // column, now summed from the metrics, may differ).
    std::fs::remove_file(out.join("compare.md")).ok();
    let res = Command::new(env!("CARGO_BIN_EXE_vldac"))
        .args(["compare", "--replot", "--algos", "vl-dac,rl4vlm:0.1", "--seeds", "1", "--window", "1"])
        .args(["--threshold", "0.5", "--out"])
        .arg(&out)
        .output()
        .expect("the vldac binary runs");
    assert!(res.status.success(), "replot failed: {}", String::from_utf8_lossy(&res.stderr));
    let again = std::fs::read_to_string(out.join("compare.md")).expect("compare.md is rewritten");
    let without_wall =
        |t: &str| -> Vec<String> { t.lines().map(|l| l.rsplitn(3, '|').nth(2).unwrap_or(l).to_string()).collect() };
    assert_eq!(without_wall(&again), without_wall(&table));
    std::fs::remove_dir_all(&out).ok();
}

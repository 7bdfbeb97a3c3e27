//! `vldac eval run --bench balrog` through the real binary: a Crafter episode with the tiny random
//! model (needs `cargo xtask setup balrog`; skipped with a message otherwise unless
//! `VLDAC_PYTHON_TESTS=1`), resume, and usage errors (no Python needed).

use std::path::Path;
use std::process::Command;

fn vldac(args: &[&str], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vldac"))
        .args(["eval", "run", "--bench", "balrog"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn crafter_episode_with_the_tiny_model_then_resume() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venvs/balrog/bin/python");
    if !py.exists() {
        let msg = format!("needs {} (run `cargo xtask setup balrog`)", py.display());
        assert!(std::env::var("VLDAC_PYTHON_TESTS").as_deref() != Ok("1"), "VLDAC_PYTHON_TESTS=1 but the test {msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let out = std::env::temp_dir().join(format!("vldac-balrog-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let args =
        ["--envs", "crafter", "--episodes", "1", "--tiny-random", "0", "--max-steps", "3", "--max-new-tokens", "4"];
    let o = vldac(&args, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("crafter/default") && table.contains("progression_%"), "{table}");
    assert!(err.contains("1 episodes played, 0 resumed"), "{err}");
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("crafter/default/default_run_00.json")).unwrap())
            .unwrap();
    assert_eq!(log["num_steps"], 3);
    assert_eq!(log["client"]["model_id"], "tiny-random-0");
    assert!(log["input_tokens"].as_u64().unwrap() > 1000, "prompt tokens are counted: {log}");
    assert!(log["output_tokens"].as_u64().unwrap() <= 12);
    assert_eq!(log["achievements"].as_object().unwrap().len(), 22);
    let p = log["progression"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["environments"]["crafter"]["episodes_played"], 1);
    // Again: the logged episode is kept, not replayed.
    let o = vldac(&args, &out);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 episodes played, 1 resumed"));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn balrog_usage_errors_name_the_problem() {
    let out = std::env::temp_dir().join(format!("vldac-balrog-cli-err-{}", std::process::id()));
    let o = vldac(&["--envs", "minecraft", "--tiny-random", "0"], &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("minecraft") && err.contains("crafter, nle"), "{err}");
    let o = vldac(&["--envs", "crafter", "--tasks", "nope", "--tiny-random", "0"], &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nope"), "{err}");
    let o = vldac(&["--envs", "crafter", "--agent", "react", "--tiny-random", "0"], &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("react"), "{err}");
    // A missing interpreter names the environment and the setup command.
    let o = vldac(&["--envs", "crafter", "--tiny-random", "0", "--python", "/nonexistent/python"], &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("crafter") && err.contains("cargo xtask setup balrog"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn native_episodes_with_the_tiny_model_then_resume() {
    // Native BabyAI-Text and Baba Is AI: no Python needed.
    for (env, task) in [("babyai", "BabyAI-MixedTrainLocal-v0/goto"), ("babaisai", "env/goto_win")] {
        let out = std::env::temp_dir().join(format!("vldac-balrog-cli-{env}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let args = ["--envs", env, "--tasks", task, "--episodes", "2", "--tiny-random", "0", "--max-steps", "3"];
        let o = vldac(&args, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{env}: {err}");
        assert!(err.contains("2 episodes played, 0 resumed"), "{env}: {err}");
        for i in 0..2 {
            let path = out.join(format!("{env}/{task}/{task}_run_{i:02}.json"));
            let log: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(log["num_steps"], 3, "{log}");
            assert!(log["input_tokens"].as_u64().unwrap() > 100, "prompt tokens are counted: {log}");
            let p = log["progression"].as_f64().unwrap();
            assert!(p == 0.0 || p == 1.0, "{env} progression is 0 or 1: {p}");
        }
        let o = vldac(&args, &out);
        assert!(String::from_utf8_lossy(&o.stderr).contains("0 episodes played, 2 resumed"), "{env}");
        std::fs::remove_dir_all(&out).ok();
    }
}

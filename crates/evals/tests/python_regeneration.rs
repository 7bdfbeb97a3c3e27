//! Re-runs the official scorers that install from PyPI (lmms-eval 0.7.3's MME, MMBench and
//! VisualWebBench code and GQA exact match, rouge 1.0.1) through `fixtures/gen_fixtures.py` into a temporary folder,
//! and checks that they still produce the committed expectations and that our scorers agree on
//! the freshly written parquet files.
//!
//! Needs `target/venvs/evals` (`cargo xtask setup python`). Skipped with a message when it is
//! missing, unless `VLDAC_PYTHON_TESTS=1`, which makes it mandatory. VSI-Bench and BALROG need
//! checkouts of their repositories: `VLDAC_THINKING_IN_SPACE=DIR` and `VLDAC_BALROG_SRC=DIR`
//! regenerate their pipeline cases too (`VLDAC_VISUALWEBBENCH_SRC=DIR` adds the cross-check with
//! the VisualWebBench repository's metrics); without them those parts are named and skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vldac_evals::Bench;

fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = root.join("target/venvs/evals/bin/python");
    let required = std::env::var("VLDAC_PYTHON_TESTS").is_ok_and(|v| v == "1");
    let usable = py.exists()
        && Command::new(&py)
            .args(["-c", "import lmms_eval, rouge, pyarrow, pandas, loguru"])
            .status()
            .is_ok_and(|s| s.success());
    match (usable, required) {
        (true, _) => Some(py),
        (false, true) => panic!(
            "VLDAC_PYTHON_TESTS=1 but {} lacks lmms-eval/rouge/pyarrow/pandas/loguru: run `cargo xtask setup python`",
            py.display()
        ),
        (false, false) => {
            eprintln!(
                "skipping python_regeneration: {} with lmms-eval 0.7.3 + rouge 1.0.1 not found (run `cargo xtask setup python`)",
                py.display()
            );
            None
        }
    }
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn official_pypi_scorers_reproduce_the_committed_fixtures() {
    let Some(py) = python() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = std::env::temp_dir().join(format!("vldac-evals-regen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new(&py);
    cmd.arg(fixtures.join("gen_fixtures.py")).arg("--out").arg(&out);
    // Checkouts of the repositories that are not on PyPI, when given, regenerate their parts too.
    let mut with_repos = Vec::new();
    for (var, flag, bench) in [
        ("VLDAC_THINKING_IN_SPACE", "--thinking-in-space", "vsibench"),
        ("VLDAC_BALROG_SRC", "--balrog", "balrog"),
        ("VLDAC_VISUALWEBBENCH_SRC", "--visualwebbench", ""),
    ] {
        match std::env::var(var) {
            Ok(dir) if !dir.is_empty() => {
                cmd.arg(flag).arg(dir);
                with_repos.push(bench);
            }
            _ => eprintln!("python_regeneration: {var} not set, {flag} part not regenerated"),
        }
    }
    let status = cmd.output().expect("run gen_fixtures.py");
    assert!(status.status.success(), "gen_fixtures.py failed:\n{}", String::from_utf8_lossy(&status.stderr));
    for bench in ["visualwebbench", "mmbench", "mme", "gqa"] {
        let fresh = json(&out.join(bench).join("expected.json"));
        let committed = json(&fixtures.join(bench).join("expected.json"));
        assert_eq!(fresh["scores"], committed["scores"], "{bench}: the official scorer's numbers changed");
        assert_eq!(
            std::fs::read_to_string(out.join(bench).join("predictions.jsonl")).unwrap(),
            std::fs::read_to_string(fixtures.join(bench).join("predictions.jsonl")).unwrap()
        );
        // Our loader and scorer on the freshly written parquet files.
        let b = Bench::from_name(bench).unwrap();
        let ours = b.score_file(&out.join(bench).join("data"), &out.join(bench).join("predictions.jsonl")).unwrap();
        let committed_ours =
            b.score_file(&fixtures.join(bench).join("data"), &fixtures.join(bench).join("predictions.jsonl")).unwrap();
        assert_eq!(ours, committed_ours);
    }
    // Pipeline level: the same replies, post-processed texts and scores.
    let fresh = json(&out.join("pipeline.json"));
    let committed = json(&fixtures.join("pipeline.json"));
    let mut benches = vec!["gqa", "mme", "mmbench", "visualwebbench"];
    benches.extend(with_repos.iter().filter(|b| !b.is_empty()));
    for bench in benches {
        assert_eq!(
            fresh["benches"][bench], committed["benches"][bench],
            "pipeline.json {bench}: the official pipeline changed"
        );
    }
    for k in ["lmms_eval", "py_spaces", "py_float"] {
        assert_eq!(fresh[k], committed[k], "pipeline.json {k}");
    }
    let fresh = json(&out.join("cases.json"));
    let committed = json(&fixtures.join("cases.json"));
    for (k, v) in fresh.as_object().unwrap() {
        assert_eq!(v, &committed[k], "cases.{k}");
    }
    std::fs::remove_dir_all(out).ok();
}

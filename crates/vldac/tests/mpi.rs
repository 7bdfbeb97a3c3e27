//! Distributed training under `mpirun` (feature `mpi`; `cargo xtask test --with-mpi`, and CI).
//!
//! - The embedded default with `rollout.num_envs = 8` for 6 iterations as one process and as
//!   `mpirun -np 2` and `-np 4`: identical `episode/*` metrics on every iteration, losses equal
//!   to 1e-4 relative; a one-process run resumed with 4 ranks continues it the same way.
//! - A rank killed with SIGKILL mid-run: every rank gone within 60 s, `mpirun` exits non-zero
//!   naming the rank; `--resume` with 2 ranks continues and matches the uninterrupted run.
//! - A rank that fails (a run directory that already has checkpoints, without `--resume`):
//!   every rank exits non-zero and the message names the rank.
//! - Replicas that diverge (two ranks given different learning rates, MPMD): the parameter
//!   checksum check stops the run naming the rank.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ITERATIONS: usize = 6;

fn out_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-mpi-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train_args(out: &Path, name: &str, iterations: usize, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["train".into()];
    for s in [
        format!("run.out_dir=\"{}\"", out.display()),
        format!("run.name={name}"),
        format!("run.iterations={iterations}"),
        "run.progress=false".into(),
        "run.checkpoint_every=1".into(),
        "run.replica_check_every=1".into(),
        "rollout.num_envs=8".into(),
    ] {
        a.push("--set".into());
        a.push(s);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn vldac() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vldac"));
    c.env("RAYON_NUM_THREADS", "1");
    c
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn mpirun(k: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.arg("-np").arg(k.to_string()).arg("--oversubscribe");
    if is_root() {
        c.arg("--allow-run-as-root");
    }
    // Each rank: one compute thread (2 shared cores).
    c.args(["-x", "RAYON_NUM_THREADS=1"]);
    c.arg(env!("CARGO_BIN_EXE_vldac"));
    c
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metrics(dir: &Path) -> Vec<Value> {
    vldac_train::metrics::read_jsonl(&dir.join("metrics.jsonl")).expect("metrics.jsonl")
}

/// `episode/*` identical, `loss/*` (and the other update statistics) equal to 1e-4 relative.
fn assert_same_run(a: &[Value], b: &[Value], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: iteration counts");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (x.as_object().unwrap(), y.as_object().unwrap());
        for (k, v) in x {
            if k.starts_with("time/") || k.ends_with("_per_s") || k == "update/seconds" {
                continue;
            }
            let w = y.get(k).unwrap_or_else(|| panic!("{what}: iteration {i} lacks {k}"));
            if k.starts_with("episode/") || k.starts_with("rollout/") {
                assert_eq!(v, w, "{what}: iteration {i} {k}");
            } else if let (Some(p), Some(q)) = (v.as_f64(), w.as_f64()) {
                let tol = 1e-4 * p.abs().max(q.abs()).max(1e-3);
                assert!((p - q).abs() <= tol, "{what}: iteration {i} {k}: {p} vs {q}");
            } else {
                assert_eq!(v, w, "{what}: iteration {i} {k}");
            }
        }
    }
}

#[test]
fn one_two_and_four_ranks_train_the_same_run() {
    let out = out_dir("equal");
    check(vldac().args(train_args(&out, "one", ITERATIONS, &[])).output().unwrap(), "1 process");
    let one = metrics(&out.join("one"));
    assert_eq!(one.len(), ITERATIONS);
    for k in [2, 4] {
        let name = format!("ranks{k}");
        check(mpirun(k).args(train_args(&out, &name, ITERATIONS, &[])).output().unwrap(), &format!("{k} ranks"));
        let run = out.join(&name);
        assert_same_run(&one, &metrics(&run), &format!("{k} ranks vs 1 process"));
        assert!(run.join("adapter").join("adapter_config.json").exists(), "rank 0 writes the adapter");
    }
    // A one-process run of 3 iterations, resumed with 4 ranks.
    check(vldac().args(train_args(&out, "switch", 3, &[])).output().unwrap(), "1 process, 3 iterations");
    check(
        mpirun(4).args(train_args(&out, "switch", ITERATIONS, &["--resume"])).output().unwrap(),
        "resumed with 4 ranks",
    );
    assert_same_run(&one, &metrics(&out.join("switch")), "1 process resumed with 4 ranks vs 1 process");
    let _ = std::fs::remove_dir_all(&out);
}

/// Rank `rank`'s process among the children of `mpirun` (by `OMPI_COMM_WORLD_RANK`).
fn rank_pid(mpirun: u32, rank: usize) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a.to_string()) else { continue };
        let ppid: u32 = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid != mpirun {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_ends_the_run_and_resume_continues_it() {
    let out = out_dir("kill");
    check(mpirun(2).args(train_args(&out, "full", ITERATIONS, &[])).output().unwrap(), "uninterrupted 2 ranks");
    let full = metrics(&out.join("full"));

    let run = out.join("part");
    let mut child = mpirun(2)
        .args(train_args(&out, "part", ITERATIONS, &[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for two finished iterations, then kill rank 1 during the third.
    let t0 = Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map(|s| s.lines().count()).unwrap_or(0) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(600), "no progress in 600 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let victim = rank_pid(child.id(), 1).expect("rank 1's process");
    let survivor = rank_pid(child.id(), 0).expect("rank 0's process");
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "ranks still running 60 s after rank 1 was killed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = killed.elapsed();
    let output = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "mpirun must fail: {text}");
    assert!(text.contains("rank 1"), "the message names rank 1:\n{text}");
    let state = std::fs::read_to_string(format!("/proc/{survivor}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z"), "rank 0 (pid {survivor}) still runs: {state}");
    eprintln!("all ranks gone {:.1} s after SIGKILL of rank 1", waited.as_secs_f64());

    check(mpirun(2).args(train_args(&out, "part", ITERATIONS, &["--resume"])).output().unwrap(), "resume");
    assert_same_run(&full, &metrics(&run), "killed and resumed vs uninterrupted (2 ranks)");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_failing_rank_ends_every_rank_naming_it() {
    let out = out_dir("fail");
    check(vldac().args(train_args(&out, "done", 1, &[])).output().unwrap(), "1 process");
    let t0 = Instant::now();
    let output = mpirun(2).args(train_args(&out, "done", 2, &[])).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("rank 0 of 2 failed") && text.contains("--resume"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn diverged_replicas_are_an_error_naming_the_rank() {
    // Two ranks of one run with different learning rates (MPMD): their parameters differ after
    // the first update, which the replica check (every iteration here) must catch.
    let out = out_dir("diverge");
    let mut c = Command::new("mpirun");
    c.arg("--oversubscribe");
    if is_root() {
        c.arg("--allow-run-as-root");
    }
    c.args(["-x", "RAYON_NUM_THREADS=1"]);
    for (k, lr) in ["1e-3", "2e-3"].iter().enumerate() {
        if k > 0 {
            c.arg(":");
        }
        c.args(["-np", "1", env!("CARGO_BIN_EXE_vldac")]);
        c.args(train_args(&out, "diverge", 3, &["--set", &format!("optim.lr_init={lr}")]));
    }
    let output = c.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("replicas diverged after iteration 0: rank 1 has parameter checksum"), "{text}");
    let _ = std::fs::remove_dir_all(&out);
}

//! `cargo xtask <command>`: the project's tasks, so a user needs only cargo.

mod device;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "vldac project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the whole test suite (release profile: model code is 45-110x slower unoptimised).
    Test {
        /// Also set up the Python peers/bridges and run the tests that need them.
        #[arg(long)]
        with_python: bool,
        /// Also install pip torch (target/venvs/tch), build with `tch` and run the model fixtures,
        /// the dtype tests and training iterations on `tch-cpu` (libtorch).
        #[arg(long)]
        with_tch: bool,
        /// Also install Open MPI (`setup mpi`), build with `mpi` and run the distributed tests
        /// (1 vs 2 vs 4 ranks, a killed rank, resume on another rank count). On by default when
        /// `CI` is set (`.ci/run`).
        #[arg(long)]
        with_mpi: bool,
        /// Extra arguments for `cargo test` (e.g. a test-name filter after `--`).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Train (no arguments: the embedded default on CPU); arguments go to `vldac train`.
    /// `--ranks K` (first): build with `mpi` and run `mpirun -np K vldac train ...`.
    Train {
        #[arg(long)]
        ranks: Option<usize>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// VL-DAC vs RL4VLM vs LOOP on the same env and seeds; arguments go to `vldac compare`.
    Compare {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Format check and clippy with -D warnings.
    Lint,
    /// What CI runs: `lint`, then `test`.
    Ci,
    /// Run the criterion benchmarks (all, or the named bench targets). `bench vlm-2b [--device
    /// cpu] [--dtypes f32,bf16] [--shapes 2b:4,2b] [--threads 2] [--reps 1] [--features cuda]
    /// [--load yes]`: ours vs HF transformers at the real Qwen2-VL shapes, one table (`--load`:
    /// also the load of a random bf16 checkpoint of each full shape, written once).
    Bench {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Install optional tools (Python venvs for bridges and fixture generators, the CUDA toolchain).
    Setup {
        #[command(subcommand)]
        what: setup::SetupTarget,
    },
    /// Same as `setup cuda`: offline LLVM so the `cuda` feature builds here.
    SetupCuda,
    /// On a machine with an NVIDIA GPU: build with `cuda`, run the model fixtures and 10 training
    /// iterations on `cuda`, and benchmark the 2B/7B shapes against HF transformers (one table in
    /// target/gpu-check.md).
    GpuCheck {
        #[arg(long, value_delimiter = ',', default_value = "2b,7b")]
        shapes: Vec<String>,
        #[arg(long)]
        skip_bench: bool,
    },
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, echoing it, and fails with its exit status.
pub fn run(mut cmd: Command) -> Result<()> {
    eprintln!("$ {:?}", cmd);
    let status = cmd.status().with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

fn test(with_python: bool, extra: &[String]) -> Result<()> {
    if with_python {
        setup::python_all()?;
        // SAFETY: single-threaded at this point; the variable is read by the test processes.
        unsafe { std::env::set_var("VLDAC_PYTHON_TESTS", "1") };
    }
    let mut c = cargo();
    c.args(["test", "--release", "--workspace"]).args(extra);
    run(c)
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// `mpirun -np k`, with `--allow-run-as-root` as root and `--oversubscribe` when `k` exceeds the
/// cores.
pub fn mpirun(k: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.current_dir(root()).arg("-np").arg(k.to_string());
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    if is_root {
        c.arg("--allow-run-as-root");
    }
    if k > std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) {
        c.arg("--oversubscribe");
    }
    c
}

/// The distributed tests: Open MPI installed, clippy of the `mpi` code (the workspace lint builds
/// without the feature), `vldac` built with `mpi`, crates/vldac/tests/mpi.rs.
fn test_mpi() -> Result<()> {
    setup::mpi()?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--release", "-p", "vldac-train", "-p", "vldac", "--features", "vldac/mpi,vldac-train/mpi"]);
    clippy.args(["--all-targets", "--", "-D", "warnings"]);
    run(clippy)?;
    let mut c = cargo();
    c.args(["test", "--release", "-p", "vldac", "--features", "mpi", "--test", "mpi", "--", "--test-threads=1"]);
    run(c)
}

fn lint() -> Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--release", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(clippy)
}

/// `bench vlm-2b` flags.
fn shape_bench_args(args: &[String]) -> Result<device::ShapeBench> {
    let mut o = device::ShapeBench {
        device: "cpu".into(),
        dtypes: vec!["f32".into(), "bf16".into()],
        shapes: vec!["2b:4".into(), "2b".into()],
        threads: 2,
        features: vec![],
        reps: 1,
        load: true,
    };
    let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else { bail!("bench vlm-2b: {flag} needs a value") };
        match flag.as_str() {
            "--device" => o.device = v.clone(),
            "--dtypes" => o.dtypes = list(v),
            "--shapes" => o.shapes = list(v),
            "--features" => o.features = list(v),
            "--threads" => o.threads = v.parse().with_context(|| format!("--threads {v}"))?,
            "--reps" => o.reps = v.parse().with_context(|| format!("--reps {v}"))?,
            "--load" => {
                o.load = match v.as_str() {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => bail!("bench vlm-2b: --load takes yes or no, got {v}"),
                }
            }
            other => bail!("bench vlm-2b: unknown flag {other}"),
        }
    }
    Ok(o)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let start = Instant::now();
    match cli.command {
        Task::Test { with_python, with_tch, with_mpi, args } => {
            test(with_python, &args)?;
            if with_tch {
                device::test_with_tch()?;
            }
            if with_mpi || std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
                test_mpi()?;
            }
        }
        Task::Train { ranks: None, args } => {
            let mut c = cargo();
            c.args(["run", "--release", "--quiet", "-p", "vldac", "--", "train"]).args(&args);
            run(c)?;
        }
        Task::Train { ranks: Some(k), args } => {
            let mut b = cargo();
            b.args(["build", "--release", "-p", "vldac", "--features", "mpi"]);
            run(b)?;
            let mut c = mpirun(k);
            c.arg(target_dir().join("release").join("vldac")).arg("train").args(&args);
            run(c)?;
        }
        Task::Compare { args } => {
            let mut c = cargo();
            c.args(["run", "--release", "--quiet", "-p", "vldac", "--", "compare"]).args(&args);
            run(c)?;
        }
        Task::Lint => lint()?,
        Task::Ci => {
            lint()?;
            test(false, &[])?;
        }
        Task::Bench { args } if args.first().is_some_and(|a| a == "vlm-2b") => {
            device::bench_shapes(&shape_bench_args(&args[1..])?)?;
        }
        Task::Bench { args } => {
            let mut c = cargo();
            c.args(["bench", "--workspace"]).args(&args);
            run(c)?;
        }
        Task::GpuCheck { shapes, skip_bench } => device::gpu_check(&shapes, skip_bench)?,
        Task::Setup { what } => setup::run(what)?,
        Task::SetupCuda => setup::cuda()?,
    }
    eprintln!("xtask: done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

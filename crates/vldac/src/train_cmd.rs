//! `vldac train`, `vldac plot` and `vldac compare`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::rc::Rc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vldac_train::config::TrainConfig;
use vldac_train::dist::{Collective, Single};
use vldac_train::metrics::read_jsonl;
use vldac_train::plot::{Panel, Series, write_png};
use vldac_train::trainer::Trainer;

use crate::env_cmd;

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML config (see configs/); omitted: the embedded default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. `--set run.seed=2 --set optim.lr_init=1e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue the run in `run.out_dir/run.name` from its newest checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// `--device` and `--dtype`, shared by every command that runs a model.
#[derive(Args, Clone, Debug, Default)]
pub struct PlacementArgs {
    /// auto | cpu | cuda[:N] | tch-cpu | tch-cuda[:N] (auto: the first CUDA GPU if this binary has
    /// `cuda` and a GPU is present, else cpu). Sets `run.device` for training.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<vldac_vlm::DeviceChoice>,
    /// Precision of the frozen base weights: f32 | bf16 | f16 (default: f32 on CPUs, bf16 on
    /// GPUs; LoRA adapters and the value head stay f32). Sets `model.dtype` for training.
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<vldac_vlm::Precision>,
}

impl PlacementArgs {
    /// The `--set` assignments these flags stand for (after the user's own, so the flags win).
    pub fn sets(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(d) = self.device {
            v.push(format!("run.device=\"{d}\""));
        }
        if let Some(d) = self.dtype {
            v.push(format!("model.dtype=\"{d}\""));
        }
        v
    }

    /// Resolves the flags for a command that runs a model outside training.
    pub fn resolve(&self) -> Result<vldac_vlm::Placement> {
        let p = vldac_vlm::device::resolve(
            self.device.unwrap_or_default(),
            self.dtype,
            vldac_vlm::device::launcher_local_rank(),
        )?;
        tracing::info!("model on {p}");
        Ok(p)
    }
}

fn load_config(config: Option<&Path>, sets: &[String], placement: &PlacementArgs) -> Result<TrainConfig> {
    let mut sets = sets.to_vec();
    sets.extend(placement.sets());
    match config {
        Some(p) => TrainConfig::from_file(p, &sets),
        None => TrainConfig::default_config(&sets),
    }
    .map_err(anyhow::Error::msg)
}

/// Trains one run; returns its directory and per-iteration success.
pub fn train(args: &TrainArgs, label: &str) -> Result<(PathBuf, Vec<f64>)> {
    train_in(args, label, Rc::new(Single))
}

/// `vldac train`: one process, or one rank of `mpirun -np K vldac train ...` (see
/// `vldac_train::dist`). An error on any rank ends every rank (MPI_Abort) with a message naming
/// the rank.
pub fn train_launched(args: &TrainArgs) -> Result<()> {
    let comm: Rc<dyn Collective> = Rc::from(vldac_train::dist::init()?);
    let label = if comm.size() > 1 { format!("train[rank {}/{}]", comm.rank(), comm.size()) } else { "train".into() };
    if let Err(e) = train_in(args, &label, comm.clone()) {
        if comm.size() > 1 {
            crate::stderr_line(&format!(
                "error: rank {} of {} failed, ending every rank: {e:#}",
                comm.rank(),
                comm.size()
            ));
            comm.abort(1);
        }
        return Err(e);
    }
    Ok(())
}

/// [`train`] as one rank of `comm`.
pub fn train_in(args: &TrainArgs, label: &str, comm: Rc<dyn Collective>) -> Result<(PathBuf, Vec<f64>)> {
    let cfg = load_config(args.config.as_deref(), &args.sets, &args.placement)?;
    let total = cfg.run.iterations as u64;
    let show = cfg.run.progress && comm.rank() == 0;
    let mut trainer = Trainer::new_in(cfg, &|id: &str| env_cmd::make(id), args.resume, comm)?;
    let envs = trainer.local_envs();
    crate::stderr_line(&format!(
        "{label}: training on {} (environments {}..{}) into {}",
        trainer.placement(),
        envs.start,
        envs.end,
        trainer.run_dir().display()
    ));
    let bar = if show { ProgressBar::new(total) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} it, ETA {eta} | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_string());
    let summary = trainer.train(|it, s| {
        let get = |k: &str| s.get(k).copied().unwrap_or(f64::NAN);
        let msg = format!(
            "success {:.2} return {:.2} value_loss {:.3} kl {:.4}",
            get("episode/success"),
            get("episode/return"),
            get("loss/value"),
            get("loss/kl")
        );
        bar.set_position(it + 1);
        bar.set_message(msg.clone());
        tracing::info!(iteration = it, "{msg}");
    })?;
    bar.finish();
    crate::stderr_line(&format!(
        "{label}: {} iterations in {:.1} s; metrics in {}",
        summary.iterations,
        summary.wall_s,
        summary.run_dir.display()
    ));
    Ok((summary.run_dir, summary.success))
}

/// `vldac plot RUN_DIR...`: learning curves from each run's metrics.jsonl.
pub fn plot(runs: &[PathBuf], out: Option<PathBuf>) -> Result<PathBuf> {
    let keys = ["episode/success", "episode/return", "loss/policy", "loss/value", "loss/kl", "value/mean"];
    let mut panels: Vec<Panel> = keys.iter().map(|k| Panel { title: k.to_string(), series: vec![] }).collect();
    for run in runs {
        let path = run.join("metrics.jsonl");
        let lines = read_jsonl(&path).with_context(|| format!("reading {}", path.display()))?;
        for (panel, key) in panels.iter_mut().zip(keys) {
            let points =
                lines.iter().filter_map(|l| Some((l.get("iteration")?.as_f64()?, l.get(key)?.as_f64()?))).collect();
            let label = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            panel.series.push(Series { label, points });
        }
    }
    let out = out.unwrap_or_else(|| runs[0].join("curves.png"));
    write_png(&panels, 3, &out).map_err(anyhow::Error::msg)?;
    Ok(out)
}

/// The settings each algorithm changes on top of the base config (the base sets the task,
/// model and budget; these switch the update rule as the paper's comparison does).
fn algorithm_sets(algo: &str) -> Result<Vec<String>> {
    Ok(match algo {
        "vl-dac" => vec![],
        "rl4vlm" => vec![
            "algo.algorithm=\"rl4vlm\"".into(),
            "algo.value_stop_grad=false".into(),
            "algo.kl_beta=0.0".into(),
            "algo.value_warmup_iterations=0".into(),
            "algo.thought_coef=0.5".into(),
        ],
        "loop" => vec![
            "algo.algorithm=\"loop\"".into(),
            "algo.value_coef=0.0".into(),
            "algo.kl_beta=0.0".into(),
            "algo.value_warmup_iterations=0".into(),
            "algo.normalize_advantages=false".into(),
            "algo.loop_group_size=4".into(),
        ],
        other => anyhow::bail!("unknown algorithm {other:?}: expected vl-dac, rl4vlm or loop"),
    })
}

#[derive(Args)]
pub struct CompareArgs {
    /// Environment id for every run.
    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "vl-dac,rl4vlm,loop")]
    pub algos: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Where runs, the table and the plot go.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// `vldac compare`: VL-DAC, RL4VLM and LOOP on the same env and seeds; a table and a plot.
pub fn compare(args: &CompareArgs) -> Result<()> {
    if let Some(k) = vldac_train::dist::launcher_size().filter(|&k| k > 1) {
        anyhow::bail!(
            "vldac compare runs as one process, not {k} MPI ranks: launch `vldac train` under mpirun instead"
        );
    }
    let mut rows: BTreeMap<String, Vec<(u64, f64, f64)>> = BTreeMap::new();
    let mut runs = Vec::new();
    for algo in &args.algos {
        for &seed in &args.seeds {
            let mut sets = args.sets.clone();
            if let Some(env) = &args.env {
                sets.push(format!("env.id={env}"));
            }
            sets.extend(algorithm_sets(algo)?);
            sets.push(format!("run.seed={seed}"));
            sets.push(format!("run.name={algo}-seed{seed}"));
            sets.push(format!("run.out_dir={}", args.out.display()));
            let t = TrainArgs { config: args.config.clone(), sets, resume: false, placement: args.placement.clone() };
            let (dir, success) = train(&t, &format!("{algo} seed {seed}"))?;
            let window = |xs: &[f64]| {
                let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
                if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
            };
            let k = success.len().min(5);
            rows.entry(algo.clone()).or_default().push((
                seed,
                window(&success[..k]),
                window(&success[success.len() - k..]),
            ));
            runs.push(dir);
        }
    }
    let mut table = String::from(
        "| algorithm | seed | success, first 5 iterations | success, last 5 iterations |\n|---|---|---|---|\n",
    );
    for (algo, r) in &rows {
        for (seed, first, last) in r {
            table.push_str(&format!("| {algo} | {seed} | {first:.3} | {last:.3} |\n"));
        }
        let n = r.len() as f64;
        let (f, l) = r.iter().fold((0.0, 0.0), |(a, b), (_, x, y)| (a + x, b + y));
        table.push_str(&format!("| **{algo}** | mean | {:.3} | {:.3} |\n", f / n, l / n));
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("compare.md"), &table)?;
    let png = plot(&runs, Some(args.out.join("compare.png")))?;
    println!("{table}");
    eprintln!("wrote {} and {}", args.out.join("compare.md").display(), png.display());
    Ok(())
}

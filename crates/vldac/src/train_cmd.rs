//! `vldac train`, `vldac plot` and `vldac compare`.

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
    if let Some(r) = trainer.perception_report() {
        crate::stderr_line(&format!(
            "{label}: perception pretraining on {} frames: held-out balanced accuracy {:.3} -> {:.3}, answer loss \
             {:.2} -> {:.2}, anchor drift {:.4}, {:.0} s (perception.json)",
            r.frames,
            r.held_out_balanced_accuracy_before,
            r.held_out_balanced_accuracy_after,
            r.loss_first,
            r.loss_last,
            r.anchor_drift,
            r.seconds
        ));
    }
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
            panel.series.push(Series::line(label, points));
        }
    }
    let out = out.unwrap_or_else(|| runs[0].join("curves.png"));
    write_png(&panels, 3, &out).map_err(anyhow::Error::msg)?;
    Ok(out)
}

/// RL4VLM's official thought weight λ (`thought_prob_coef`), used for a bare `rl4vlm`.
const RL4VLM_LAMBDA: f64 = 0.5;

/// One entry of `--algos`: `vl-dac`, `loop`, `rl4vlm` (the official λ = 0.5) or `rl4vlm:λ`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlgoSpec {
    /// `vl-dac`, `rl4vlm` or `loop`.
    pub algo: String,
    /// RL4VLM's thought weight λ (`algo.thought_coef`).
    pub lambda: Option<f64>,
}

impl std::str::FromStr for AlgoSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (algo, lambda) = match s.split_once(':') {
            Some((a, l)) => {
                let l: f64 = l.parse().map_err(|_| format!("`{s}`: λ after ':' must be a number, got {l:?}"))?;
                if !(0.0..=1.0).contains(&l) {
                    return Err(format!("`{s}`: λ must be in [0, 1]"));
                }
                (a, Some(l))
            }
            None => (s, None),
        };
        match (algo, lambda) {
            ("vl-dac" | "loop", None) => Ok(AlgoSpec { algo: algo.into(), lambda: None }),
            ("rl4vlm", l) => Ok(AlgoSpec { algo: algo.into(), lambda: Some(l.unwrap_or(RL4VLM_LAMBDA)) }),
            ("vl-dac" | "loop", Some(_)) => Err(format!("`{s}`: only rl4vlm takes a λ (rl4vlm:0.2)")),
            _ => Err(format!("unknown algorithm `{s}`: expected vl-dac, loop, rl4vlm or rl4vlm:λ")),
        }
    }
}

impl AlgoSpec {
    /// The name used for run directories and table rows (`rl4vlm-lambda0.5`).
    pub fn label(&self) -> String {
        match self.lambda {
            Some(l) => format!("{}-lambda{l}", self.algo),
            None => self.algo.clone(),
        }
    }

    /// The settings this algorithm changes on top of the base config (the base sets the task,
    /// model and budget; these switch the update rule as the paper's comparison does).
    fn sets(&self) -> Vec<String> {
        match self.algo.as_str() {
            "rl4vlm" => vec![
                "algo.algorithm=\"rl4vlm\"".into(),
                "algo.value_stop_grad=false".into(),
                "algo.kl_beta=0.0".into(),
                "algo.value_warmup_iterations=0".into(),
                format!("algo.thought_coef={}", self.lambda.unwrap_or(RL4VLM_LAMBDA)),
            ],
            "loop" => vec![
                "algo.algorithm=\"loop\"".into(),
                "algo.value_coef=0.0".into(),
                "algo.kl_beta=0.0".into(),
                "algo.value_warmup_iterations=0".into(),
                "algo.normalize_advantages=false".into(),
                "algo.loop_group_size=4".into(),
            ],
            _ => vec![],
        }
    }
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
    /// Algorithms: vl-dac, loop, rl4vlm (λ = 0.5) or rl4vlm:λ, e.g. `vl-dac,loop,rl4vlm,rl4vlm:0.1`.
    #[arg(long, value_delimiter = ',', default_value = "vl-dac,rl4vlm,loop")]
    pub algos: Vec<AlgoSpec>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Iterations in the first and last windows of the table.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Success rate (mean over `window` iterations) that counts as reached.
    #[arg(long, default_value_t = 0.8)]
    pub threshold: f64,
    /// Where runs, the table and the plot go.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Train nothing: rebuild the table and the plot from the runs already in `--out` (wall time
    /// is then the sum of their iterations' `time/iteration_s`).
    #[arg(long)]
    pub replot: bool,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

/// What one run's curves say, over windows of `w` iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStats {
    pub success_first: f64,
    pub success_last: f64,
    pub return_first: f64,
    pub return_last: f64,
    /// The first iteration (0-based) that ends a window whose mean success is ≥ the threshold.
    pub reached_at: Option<usize>,
}

/// The mean of the finite values (NaN when none).
fn finite_mean(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Mean and sample standard deviation (0 for one value) of the finite values.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let m = finite_mean(&v);
    if v.len() < 2 {
        return (m, if v.is_empty() { f64::NAN } else { 0.0 });
    }
    (m, (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// First and last `window` iterations of success and return (the window shrinks to half the run
/// when the run is shorter than two windows) and when the windowed success first reaches
/// `threshold`.
pub fn run_stats(success: &[f64], returns: &[f64], window: usize, threshold: f64) -> RunStats {
    let n = success.len().min(returns.len());
    let w = window.min(n / 2).max(1);
    let (s, r) = (&success[..n], &returns[..n]);
    let reached_at = (w..=n).find(|&end| finite_mean(&s[end - w..end]) >= threshold).map(|end| end - 1);
    RunStats {
        success_first: finite_mean(&s[..w.min(n)]),
        success_last: finite_mean(&s[n.saturating_sub(w)..]),
        return_first: finite_mean(&r[..w.min(n)]),
        return_last: finite_mean(&r[n.saturating_sub(w)..]),
        reached_at,
    }
}

/// Per-iteration values of `key` in a run's metrics.jsonl (NaN where an iteration has none).
fn metric_curve(run: &Path, key: &str) -> Result<Vec<f64>> {
    let path = run.join("metrics.jsonl");
    let lines = read_jsonl(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(lines
        .iter()
        .filter(|l| l.get("iteration").is_some())
        .map(|l| l.get(key).and_then(|v| v.as_f64()).unwrap_or(f64::NAN))
        .collect())
}

/// One finished run of a comparison.
#[derive(Clone)]
struct CompareRun {
    seed: u64,
    dir: PathBuf,
    wall_s: f64,
    success: Vec<f64>,
    returns: Vec<f64>,
}

fn fmt_ms((m, s): (f64, f64)) -> String {
    format!("{m:.3} ± {s:.3}")
}

/// The markdown table of a comparison.
fn compare_table(rows: &[(String, Vec<CompareRun>)], window: usize, threshold: f64) -> String {
    let mut t = format!(
        "| algorithm | seed | success, first {window} it. | success, last {window} it. | gain | return, first {window} it. | return, last {window} it. | first it. with {window}-it. success ≥ {threshold} | wall s |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for (label, runs) in rows {
        let stats: Vec<RunStats> = runs.iter().map(|r| run_stats(&r.success, &r.returns, window, threshold)).collect();
        for (r, st) in runs.iter().zip(&stats) {
            t.push_str(&format!(
                "| {label} | {} | {:.3} | {:.3} | {:+.3} | {:.3} | {:.3} | {} | {:.0} |\n",
                r.seed,
                st.success_first,
                st.success_last,
                st.success_last - st.success_first,
                st.return_first,
                st.return_last,
                st.reached_at.map_or("never".to_string(), |i| i.to_string()),
                r.wall_s
            ));
        }
        let col = |f: &dyn Fn(&RunStats) -> f64| mean_std(&stats.iter().map(f).collect::<Vec<_>>());
        let reached = stats.iter().filter(|s| s.reached_at.is_some()).count();
        t.push_str(&format!(
            "| **{label}** | mean ± std | {} | {} | {} | {} | {} | {reached} of {} seeds | {:.0} |\n",
            fmt_ms(col(&|s| s.success_first)),
            fmt_ms(col(&|s| s.success_last)),
            fmt_ms(col(&|s| s.success_last - s.success_first)),
            fmt_ms(col(&|s| s.return_first)),
            fmt_ms(col(&|s| s.return_last)),
            stats.len(),
            finite_mean(&runs.iter().map(|r| r.wall_s).collect::<Vec<_>>())
        ));
    }
    t
}

/// Mean across seeds per iteration, with a ±std band.
fn band_series(label: &str, curves: &[&[f64]]) -> Series {
    let n = curves.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut points = Vec::with_capacity(n);
    let mut band = Vec::with_capacity(n);
    for i in 0..n {
        let at: Vec<f64> = curves.iter().filter_map(|c| c.get(i).copied()).collect();
        let (m, s) = mean_std(&at);
        points.push((i as f64, m));
        band.push((i as f64, m - s, m + s));
    }
    Series { label: label.to_string(), points, band }
}

/// `vldac compare`: VL-DAC, RL4VLM (at one or more λ) and LOOP on the same config and seeds; a
/// table (`compare.md`) and curves with a band across seeds (`compare.png`).
pub fn compare(args: &CompareArgs) -> Result<()> {
    if let Some(k) = vldac_train::dist::launcher_size().filter(|&k| k > 1) {
        anyhow::bail!(
            "vldac compare runs as one process, not {k} MPI ranks: launch `vldac train` under mpirun instead"
        );
    }
    anyhow::ensure!(args.window > 0, "--window must be at least 1");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut rows: Vec<(String, Vec<CompareRun>)> = Vec::new();
    for spec in &args.algos {
        let label = spec.label();
        let mut runs = Vec::new();
        for &seed in &args.seeds {
            let name = format!("{label}-seed{seed}");
            let (dir, success, wall_s) = if args.replot {
                let dir = args.out.join(&name);
                let success = metric_curve(&dir, "episode/success")?;
                let wall = metric_curve(&dir, "time/iteration_s")?.iter().filter(|x| x.is_finite()).sum();
                (dir, success, wall)
            } else {
                let mut sets = args.sets.clone();
                if let Some(env) = &args.env {
                    sets.push(format!("env.id={env}"));
                }
                sets.extend(spec.sets());
                sets.push(format!("run.seed={seed}"));
                sets.push(format!("run.name={name}"));
                sets.push(format!("run.out_dir={}", args.out.display()));
                let t =
                    TrainArgs { config: args.config.clone(), sets, resume: false, placement: args.placement.clone() };
                let started = std::time::Instant::now();
                let (dir, success) = train(&t, &format!("{label} seed {seed}"))?;
                (dir, success, started.elapsed().as_secs_f64())
            };
            let returns = metric_curve(&dir, "episode/return")?;
            runs.push(CompareRun { seed, dir, wall_s, success, returns });
            // Rewrite the table after every run, so an interrupted comparison keeps what finished.
            let mut so_far = rows.clone();
            so_far.push((label.clone(), runs.clone()));
            std::fs::write(args.out.join("compare.md"), compare_table(&so_far, args.window, args.threshold))?;
        }
        rows.push((label, runs));
    }
    let table = compare_table(&rows, args.window, args.threshold);
    std::fs::write(args.out.join("compare.md"), &table)?;
    let mut panels = vec![
        Panel { title: "episode/success, mean +/- std over seeds".into(), series: vec![] },
        Panel { title: "episode/return, mean +/- std over seeds".into(), series: vec![] },
        Panel { title: "episode/success, every run".into(), series: vec![] },
    ];
    for (label, runs) in &rows {
        let succ: Vec<&[f64]> = runs.iter().map(|r| r.success.as_slice()).collect();
        let ret: Vec<&[f64]> = runs.iter().map(|r| r.returns.as_slice()).collect();
        panels[0].series.push(band_series(label, &succ));
        panels[1].series.push(band_series(label, &ret));
        for r in runs {
            let name = r.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            panels[2]
                .series
                .push(Series::line(name, r.success.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect()));
        }
    }
    let png = args.out.join("compare.png");
    write_png(&panels, 3, &png).map_err(anyhow::Error::msg)?;
    println!("{table}");
    crate::stderr_line(&format!("wrote {} and {}", args.out.join("compare.md").display(), png.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algo_specs_parse_with_and_without_lambda() {
        let p = |s: &str| s.parse::<AlgoSpec>();
        assert_eq!(p("vl-dac").unwrap(), AlgoSpec { algo: "vl-dac".into(), lambda: None });
        assert_eq!(p("rl4vlm").unwrap().lambda, Some(0.5));
        assert_eq!(p("rl4vlm:0.1").unwrap().label(), "rl4vlm-lambda0.1");
        assert!(p("rl4vlm:0.1").unwrap().sets().contains(&"algo.thought_coef=0.1".to_string()));
        assert!(p("loop:0.1").unwrap_err().contains("only rl4vlm"));
        assert!(p("rl4vlm:2").unwrap_err().contains("[0, 1]"));
        assert!(p("rl4vlm:x").unwrap_err().contains("number"));
        assert!(p("ppo").unwrap_err().contains("unknown algorithm"));
    }

    #[test]
    fn run_stats_windows_and_threshold() {
        // 20 iterations: success 0 for 10, then 1; return = success - 1.
        let s: Vec<f64> = (0..20).map(|i| if i < 10 { 0.0 } else { 1.0 }).collect();
        let r: Vec<f64> = s.iter().map(|x| x - 1.0).collect();
        let st = run_stats(&s, &r, 5, 0.8);
        assert_eq!((st.success_first, st.success_last), (0.0, 1.0));
        assert_eq!((st.return_first, st.return_last), (-1.0, 0.0));
        // The 5-iteration mean first reaches 0.8 in the window 9..=13 (4 of 5 ones), ending at 13.
        assert_eq!(st.reached_at, Some(13));
        assert_eq!(run_stats(&s, &r, 5, 1.5).reached_at, None);
        // NaN iterations (no episode ended) are left out of the means.
        let mut holes = s.clone();
        holes[19] = f64::NAN;
        assert_eq!(run_stats(&holes, &r, 5, 0.8).success_last, 1.0);
        // A run shorter than two windows uses half of it for each.
        let short = run_stats(&[0.0, 0.0, 1.0, 1.0], &[0.0; 4], 10, 0.8);
        assert_eq!((short.success_first, short.success_last), (0.0, 1.0));
    }

    #[test]
    fn mean_std_is_the_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, f64::NAN]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
        let band = band_series("a", &[&[0.0, 1.0], &[1.0]]);
        assert_eq!(band.points, vec![(0.0, 0.5), (1.0, 1.0)]);
        assert_eq!(band.band[1], (1.0, 1.0, 1.0));
    }
}

//! `vldac eval score | inspect`: benchmark scoring without a model (logic in `vldac-evals`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vldac_evals::{Bench, FrameSampling, LoadOptions, balrog};

// Parsed once per process: the size of the `Run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum EvalCommand {
    /// Score a predictions JSONL file ({"id", "prediction"} per line) as the official pipeline
    /// does: each raw reply (`response` when a line has one, else `prediction`) is post-processed
    /// (strip, stop strings, reasoning tags), then scored with the official metrics.
    /// For `--bench balrog`, `--predictions` is a BALROG results directory (<env>/<task>/*.json).
    Score {
        /// vsibench, visualwebbench, mmbench, mme, gqa or balrog.
        #[arg(long)]
        bench: String,
        /// The benchmark as downloaded (parquet/JSONL and media); not needed for balrog.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        predictions: PathBuf,
        /// Also write the score table as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Score only the items that have a prediction (an interim score of a running eval).
        #[arg(long)]
        allow_missing: bool,
    },
    /// Run a model on a benchmark: batched inference, per-item predictions (resumable) and scores.
    /// `--bench balrog` plays BALROG episodes instead (`--envs crafter,nle`): per-episode logs in
    /// BALROG's layout under --out, resumable, summary table.
    Run {
        #[arg(long)]
        bench: String,
        /// The benchmark as downloaded (not used by balrog).
        #[arg(long)]
        data: Option<PathBuf>,
        /// A Qwen2-VL checkpoint directory.
        #[arg(long, conflicts_with = "tiny_random")]
        model: Option<PathBuf>,
        /// A PEFT LoRA adapter directory (e.g. from VL-DAC training) applied to --model.
        #[arg(long, requires = "model")]
        adapter: Option<PathBuf>,
        /// The tiny random model with this seed (a smoke test that needs no files).
        #[arg(long)]
        tiny_random: Option<u64>,
        /// Where predictions.jsonl and scores go (an existing directory resumes).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        batch_size: usize,
        #[arg(long, default_value_t = 32)]
        frames: usize,
        #[arg(long, default_value = "floor")]
        sampling: String,
        #[command(flatten)]
        balrog: BalrogArgs,
        #[command(flatten)]
        placement: crate::train_cmd::PlacementArgs,
    },
    /// Print the loaded items (id, task, prompt, answer, generation settings, the reply
    /// post-processing, media) as JSON lines; with --predictions also each item's raw reply and
    /// its post-processed text.
    Inspect {
        #[arg(long)]
        bench: String,
        #[arg(long)]
        data: PathBuf,
        /// A predictions.jsonl (e.g. from `vldac eval run`): adds `response` (the raw reply) and
        /// `prediction` (after the official pipeline's post-processing) to each item.
        #[arg(long)]
        predictions: Option<PathBuf>,
        /// Only the first N items.
        #[arg(long)]
        limit: Option<usize>,
        /// Frames per video (VSI-Bench; reference setup 32).
        #[arg(long, default_value_t = 32)]
        frames: usize,
        /// Frame sampling: floor (reference np.linspace(..., dtype=int)) or round (qwen_vl_utils).
        #[arg(long, default_value = "floor")]
        sampling: String,
    },
}

/// `vldac eval run --bench balrog` options.
#[derive(clap::Args, Debug)]
pub struct BalrogArgs {
    /// BALROG environments, comma-separated: babyai, babaisai (native), crafter, nle (Python bridge).
    #[arg(long, value_delimiter = ',')]
    envs: Vec<String>,
    /// Only these tasks (comma-separated); default: BALROG's tasks of each environment.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Episodes per task (default: BALROG's, crafter 10, nle 5).
    #[arg(long)]
    episodes: Option<usize>,
    /// naive (answer with an action) or cot (think, then `ACTION: <action>`).
    #[arg(long, default_value = "naive")]
    agent: String,
    /// Images kept in the history; 0 makes a text-only agent (BALROG's default for LLMs).
    #[arg(long, default_value_t = 1)]
    max_image_history: usize,
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    /// Step cap per episode (default: each environment's own, crafter 2000).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Episode i of every task uses seed SEED + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Python with crafter / balrog-nle (default: target/venvs/balrog from `cargo xtask setup balrog`).
    #[arg(long)]
    python: Option<PathBuf>,
    /// BALROG's NetHack progression table (default: target/balrog/nle_achievements.json).
    #[arg(long)]
    nle_achievements: Option<PathBuf>,
}

fn load_model(
    model: Option<PathBuf>,
    adapter: Option<PathBuf>,
    tiny_random: Option<u64>,
    placement: &vldac_vlm::Placement,
) -> Result<crate::eval_model::VlmEvalModel> {
    match (model, tiny_random) {
        (Some(dir), _) => crate::eval_model::VlmEvalModel::from_dir(&dir, adapter.as_deref(), placement),
        (None, Some(seed)) => crate::eval_model::VlmEvalModel::tiny_random(seed, placement),
        (None, None) => anyhow::bail!("vldac eval run: give --model DIR (or --tiny-random SEED)"),
    }
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Run {
            bench,
            data,
            model,
            adapter,
            tiny_random,
            out,
            batch_size,
            frames,
            sampling,
            balrog: ba,
            placement,
        } => {
            // The device first: one this binary cannot use fails before anything is written.
            let placement = placement.resolve()?;
            let is_balrog = bench.eq_ignore_ascii_case("balrog");
            if is_balrog {
                // Check the plan before loading a model.
                let args = crate::eval_balrog::BalrogRunArgs {
                    envs: ba.envs,
                    tasks: ba.tasks,
                    episodes: ba.episodes,
                    agent: crate::eval_balrog::agent_config(&ba.agent, ba.max_image_history, ba.max_new_tokens)?,
                    max_steps: ba.max_steps,
                    seed: ba.seed,
                    python: ba.python,
                    nle_achievements: ba.nle_achievements,
                    out,
                };
                crate::eval_balrog::plan(&args)?;
                let mut m = load_model(model, adapter, tiny_random, &placement)?;
                return crate::eval_balrog::run(&args, &mut m);
            }
            let Some(data) = data else { bail!("--data DIR is required for {bench}") };
            let mut m = load_model(model, adapter, tiny_random, &placement)?;
            let b = Bench::from_name(&bench)?;
            let sampling: FrameSampling = sampling.parse().map_err(anyhow::Error::msg)?;
            let items = b.load(&data, LoadOptions { frames, sampling })?;
            let opts = vldac_evals::RunOptions { batch_size, out_dir: out.clone(), progress: true };
            let summary = vldac_evals::run_eval(b, &items, &mut m, &opts)?;
            println!("{}", summary.table.render());
            eprintln!(
                "{} generated, {} resumed; predictions and scores in {}",
                summary.generated,
                summary.resumed,
                out.display()
            );
        }
        EvalCommand::Score { bench, data, predictions, json, allow_missing } => {
            let table = if bench.eq_ignore_ascii_case("balrog") {
                balrog::summary_table(&balrog::summarize(&predictions)?)
            } else {
                let b = Bench::from_name(&bench)?;
                let Some(data) = data else { bail!("--data DIR is required for {bench}") };
                b.score_file_with(&data, &predictions, allow_missing)?
            };
            print!("{}", table.render());
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&table)?)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
        EvalCommand::Inspect { bench, data, predictions, limit, frames, sampling } => {
            let b = Bench::from_name(&bench)?;
            let sampling: FrameSampling = sampling.parse().map_err(anyhow::Error::msg)?;
            let items = b.load(&data, LoadOptions { frames, sampling })?;
            let preds = predictions.as_deref().map(vldac_evals::read_predictions).transpose()?;
            let pipeline = b.pipeline();
            for it in items.iter().take(limit.unwrap_or(usize::MAX)) {
                let media: Vec<String> =
                    it.media.iter().map(|m| format!("{m:?}").chars().take(120).collect()).collect();
                let mut line = serde_json::json!({
                    "id": it.id, "task": it.task, "prompt": it.prompt, "answer": it.gold,
                    "options": it.options, "max_new_tokens": it.max_new_tokens, "greedy": true,
                    "until": pipeline.until, "postprocess": pipeline.source, "media": media,
                });
                if let Some(rec) = preds.as_ref().and_then(|p| p.get(&it.id)) {
                    line["response"] = rec.raw_reply().into();
                    line["prediction"] = b.postprocess(it, rec.raw_reply()).into();
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}

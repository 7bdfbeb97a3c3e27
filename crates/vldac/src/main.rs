//! The `vldac` binary: wires configs to objects to loops. Logic lives in the library crates.

mod env_cmd;
mod eval_balrog;
mod eval_cmd;
mod eval_model;
mod train_cmd;
mod vlm_cmd;

use anyhow::Result;
use clap::{Parser, Subcommand};
use rand::SeedableRng;
use serde_json::json;
use vldac_core::{ActionSpace, InvalidActionPolicy, decode_action};

#[derive(Parser)]
#[command(name = "vldac", version, about = "VL-DAC: RL fine-tuning of vision-language models in synthetic worlds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Decode a model reply into an action, as the trainer does (prints JSON).
    Parse {
        /// The model's reply text.
        text: String,
        /// Comma-separated action labels (e.g. "stand,hit"); omit for a free-text space.
        #[arg(long)]
        labels: Option<String>,
        /// Actions are named by number ("action": 2) rather than by label.
        #[arg(long)]
        numbered: bool,
    },
    /// Train a VLM with VL-DAC (no --config: the embedded default, on CPU, no download).
    Train(train_cmd::TrainArgs),
    /// Write learning curves (PNG) of one or more run directories.
    Plot {
        runs: Vec<std::path::PathBuf>,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Run VL-DAC, RL4VLM and LOOP on the same environment and seeds; write a table and a plot.
    Compare(train_cmd::CompareArgs),
    /// Look at and replay environments.
    Env {
        #[command(subcommand)]
        command: env_cmd::EnvCommand,
    },
    /// Score benchmark predictions and inspect benchmark data.
    Eval {
        #[command(subcommand)]
        command: eval_cmd::EvalCommand,
    },
    /// Run a Qwen2-VL model: generate replies or dump logits.
    Vlm {
        #[command(subcommand)]
        command: vlm_cmd::VlmCommand,
    },
}

/// Writes `line` and a newline to stderr in one write. `eprintln!` writes each formatted piece
/// separately (stderr is unbuffered), and `mpirun` interleaves those pieces across ranks.
pub(crate) fn stderr_line(line: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), format!("{line}\n").as_bytes());
}

fn main() {
    // Before anything allocates: burn's freed CPU tensors are reused instead of page-faulted in
    // again (vldac_vlm::host_alloc; MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ override).
    vldac_vlm::host_alloc::keep_freed_memory();
    if let Err(e) = run() {
        stderr_line(&format!("error: {e:#}"));
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VLDAC_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Parse { text, labels, numbered } => {
            let space = match labels {
                None => ActionSpace::Text,
                Some(l) => {
                    let labels: Vec<String> = l.split(',').map(|s| s.trim().to_string()).collect();
                    if numbered { ActionSpace::numbered(labels) } else { ActionSpace::labelled(labels) }
                }
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let d = decode_action(&text, &space, &InvalidActionPolicy::RandomLegal, &mut rng);
            let out = json!({
                "valid": d.is_valid(),
                "action": serde_json::to_value(&d.action)?,
                "error": d.error.map(|e| e.to_string()),
                "thoughts": d.response.and_then(|r| r.thoughts),
            });
            println!("{out}");
        }
        Command::Env { command } => env_cmd::run(command)?,
        Command::Train(args) => train_cmd::train_launched(&args)?,
        Command::Plot { runs, out } => {
            if runs.is_empty() {
                anyhow::bail!("vldac plot: give at least one run directory");
            }
            let png = train_cmd::plot(&runs, out)?;
            eprintln!("wrote {}", png.display());
        }
        Command::Compare(args) => train_cmd::compare(&args)?,
        Command::Eval { command } => eval_cmd::run(command)?,
        Command::Vlm { command } => vlm_cmd::run(command)?,
    }
    Ok(())
}

//! `vldac env list | render | replay`: dispatch by environment id to the environment crates.
//!
//! Each environment crate owns its registry (`make`), its renderer and its replay format; this
//! file only routes an id to the right crate. Add one arm per family.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use vldac_core::{Environment, Frame};

#[derive(Subcommand)]
pub enum EnvCommand {
    /// List the registered environment ids.
    List,
    /// Reset an environment with a seed and write its observation as PNG.
    Render {
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Observation size WIDTHxHEIGHT (environments with a fixed size ignore it).
        #[arg(long)]
        size: Option<String>,
        /// A top-down map instead of the agent's view (MiniWorld).
        #[arg(long)]
        top_down: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay a scenario file and print one JSON object per step.
    Replay {
        #[arg(long)]
        env: String,
        #[arg(long)]
        scenario: PathBuf,
    },
}

/// Every registered id, by family.
pub fn all_ids() -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    // FAMILY-IDS: each environment crate appends its ids here.
    ids.extend(vldac_gym_cards::IDS.iter().map(|s| s.to_string()));
    ids.extend(vldac_miniworld::ids().into_iter().map(String::from));
    ids.extend(vldac_textenv::registry::ids());
    ids.extend(vldac_babyai::ids());
    ids.extend(vldac_babaisai::ids());
    ids
}

/// Builds an environment by id.
pub fn make(id: &str) -> Result<Box<dyn Environment>> {
    // FAMILY-MAKE: each environment crate adds an arm here.
    if vldac_gym_cards::IDS.contains(&id) {
        return Ok(vldac_gym_cards::make(id)?);
    }
    if vldac_miniworld::is_miniworld_id(id) {
        return Ok(vldac_miniworld::make(id)?);
    }
    if let Some(env) = vldac_textenv::registry::make(id) {
        return Ok(env?);
    }
    if vldac_babyai::is_babyai_id(id) {
        return Ok(Box::new(vldac_babyai::make(id)?));
    }
    if vldac_babaisai::is_babaisai_id(id) {
        return Ok(vldac_babaisai::make(id)?);
    }
    bail!("unknown environment id {id:?}; `vldac env list` shows the known ids")
}

fn parse_size(size: &str) -> Result<(u32, u32)> {
    let (w, h) = size.split_once(['x', 'X']).with_context(|| format!("--size {size:?}: expected WIDTHxHEIGHT"))?;
    let w: u32 = w.trim().parse().with_context(|| format!("--size {size:?}: bad width"))?;
    let h: u32 = h.trim().parse().with_context(|| format!("--size {size:?}: bad height"))?;
    if w == 0 || h == 0 || w > 8192 || h > 8192 {
        bail!("--size {size:?}: width and height must be in 1..=8192");
    }
    Ok((w, h))
}

fn render(env: &str, seed: u64, size: Option<(u32, u32)>, top_down: bool) -> Result<Frame> {
    let _ = (size, top_down);
    // FAMILY-RENDER: families with sizes or map views add an arm here.
    if vldac_miniworld::is_miniworld_id(env) {
        return Ok(vldac_miniworld::render(env, seed, size, top_down)?);
    }
    if vldac_babyai::is_babyai_id(env) {
        return Ok(vldac_babyai::render(env, seed, top_down)?);
    }
    let mut e = make(env)?;
    let (obs, _) = e.reset(Some(seed))?;
    obs.frames.last().cloned().with_context(|| format!("{env} has no image observation"))
}

fn replay(env: &str, scenario: &serde_json::Value) -> Result<Vec<serde_json::Value>> {
    // FAMILY-REPLAY: each family adds an arm here.
    if vldac_gym_cards::IDS.contains(&env) {
        return Ok(vldac_gym_cards::replay(scenario)?);
    }
    if vldac_miniworld::is_miniworld_id(env) {
        return Ok(vldac_miniworld::replay(env, scenario)?);
    }
    if let Some(lines) = vldac_textenv::registry::replay(env, scenario) {
        return Ok(lines?);
    }
    if vldac_babyai::is_babyai_id(env) {
        return vldac_babyai::replay(env, scenario).map_err(anyhow::Error::msg);
    }
    if vldac_babaisai::is_babaisai_id(env) {
        return Ok(vldac_babaisai::replay(env, scenario)?);
    }
    bail!("no replay format for environment id {env:?}")
}

pub fn run(cmd: EnvCommand) -> Result<()> {
    match cmd {
        EnvCommand::List => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for id in all_ids() {
                // A closed pipe (`vldac env list | head`) ends the listing quietly.
                if writeln!(out, "{id}").is_err() {
                    break;
                }
            }
        }
        EnvCommand::Render { env, seed, size, top_down, out } => {
            let size = size.as_deref().map(parse_size).transpose()?;
            let frame = render(&env, seed, size, top_down)?;
            frame.save_png(&out).map_err(anyhow::Error::msg)?;
            eprintln!("wrote {} ({}x{})", out.display(), frame.width(), frame.height());
        }
        EnvCommand::Replay { env, scenario } => {
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("cannot read scenario {}", scenario.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("scenario {} is not valid JSON", scenario.display()))?;
            if let Some(file_env) = json.get("env").and_then(|v| v.as_str())
                && file_env != env
            {
                bail!("scenario {} is for {file_env:?}, but --env is {env:?}", scenario.display());
            }
            for line in replay(&env, &json)? {
                println!("{line}");
            }
        }
    }
    Ok(())
}

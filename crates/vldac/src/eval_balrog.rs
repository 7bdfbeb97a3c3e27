//! `vldac eval run --bench balrog`: BALROG episodes with our VLM (logic in `vldac_evals::balrog`).
//!
//! Environments are built here by name; each BALROG environment family adds one arm at the
//! `BALROG-ENVS` marks (its tasks, its episode count and its constructor).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use vldac_evals::EvalError;
use vldac_evals::balrog::{self, AgentConfig, AgentKind, BalrogEnv, CoreEnv, SuiteEntry, SuiteEvent};
use vldac_evals::balrog_bridge::{BridgedEnv, BridgedKind, NleObsMode};

/// Options of a BALROG run.
#[derive(Debug, Clone)]
pub struct BalrogRunArgs {
    pub envs: Vec<String>,
    /// Only these tasks (of any listed environment); empty = each environment's BALROG tasks.
    pub tasks: Vec<String>,
    /// Episodes per task; `None` = BALROG's per-environment counts.
    pub episodes: Option<usize>,
    pub agent: AgentConfig,
    /// Caps every episode at this many steps (`None` = each environment's own budget).
    pub max_steps: Option<usize>,
    pub seed: u64,
    pub python: Option<PathBuf>,
    pub nle_achievements: Option<PathBuf>,
    pub out: PathBuf,
}

/// BALROG's BabyAI tasks: MixedTrainLocal restricted to one instruction kind each.
const BABYAI_TASKS: [&str; 5] = [
    "BabyAI-MixedTrainLocal-v0/goto",
    "BabyAI-MixedTrainLocal-v0/pickup",
    "BabyAI-MixedTrainLocal-v0/open",
    "BabyAI-MixedTrainLocal-v0/putnext",
    "BabyAI-MixedTrainLocal-v0/pick_up_seq_go_to",
];

/// BALROG's tasks and episode counts (`balrog/config/config.yaml`).
fn default_tasks(env: &str) -> Option<(Vec<&'static str>, usize)> {
    Some(match env {
        "crafter" => (vec!["default"], 10),
        "nle" => (vec!["NetHackChallenge-v0"], 5),
        "babyai" => (BABYAI_TASKS.to_vec(), 10),
        "babaisai" => (vldac_babaisai::BALROG_TASKS.to_vec(), 3),
        // BALROG-ENVS (tasks): a native family adds `"name" => (tasks, episodes per task)`.
        _ => return None,
    })
}

/// Builds one environment for a task.
fn make_env(env: &str, task: &str, args: &BalrogRunArgs) -> Result<Box<dyn BalrogEnv>, EvalError> {
    let python = args.python.clone().unwrap_or_else(vldac_evals::balrog_bridge::default_python);
    let vlm = args.agent.max_image_history > 0;
    let e: Box<dyn BalrogEnv> = match env {
        "crafter" => {
            let mut b = BridgedEnv::start(&python, &BridgedKind::crafter())?;
            b.frames = vlm;
            cap(&mut b, args.max_steps);
            Box::new(b)
        }
        "nle" => {
            if task != "NetHackChallenge-v0" {
                return Err(EvalError::Usage(format!("nle has one task, NetHackChallenge-v0 (got {task:?})")));
            }
            // BALROG gives text agents the ASCII map ("hybrid") and VLM agents an image instead.
            let mode = if vlm { NleObsMode::Language } else { NleObsMode::Hybrid };
            let table =
                args.nle_achievements.clone().unwrap_or_else(vldac_evals::balrog_bridge::default_nle_achievements);
            if !table.exists() {
                return Err(EvalError::Usage(format!(
                    "nle: BALROG's Dlvl/Xp progression table {} is missing: run `cargo xtask setup balrog` where \
                     GitHub is reachable (or with VLDAC_BALROG_SRC=<BALROG checkout>), or pass --nle-achievements FILE",
                    table.display()
                )));
            }
            let mut b = BridgedEnv::start(&python, &BridgedKind::nle(mode, Some(table)))?;
            b.frames = vlm;
            cap(&mut b, args.max_steps);
            Box::new(b)
        }
        "babyai" => {
            let e = vldac_babyai::make(task).map_err(|e| EvalError::Env(format!("babyai: {e}")))?;
            // The level ends its own episodes at BALROG's budget (64 or 128 steps).
            Box::new(
                CoreEnv::new(e, args.max_steps.unwrap_or(1000))?
                    .with_default_action(vldac_babyai::BALROG_DEFAULT_ACTION)?
                    .with_instruction(|obs| vldac_babyai::balrog_instruction_prompt(&obs.task)),
            )
        }
        "babaisai" => {
            // `make` takes BALROG's task names (`env/goto_win`) as well as our ids.
            let e = vldac_babaisai::make(task).map_err(|e| EvalError::Env(format!("babaisai: {e}")))?;
            // The peer ends its own episodes after 100 steps.
            Box::new(
                CoreEnv::new(e, args.max_steps.unwrap_or(100))?
                    .with_default_action("idle")?
                    .with_instruction(|_| vldac_babaisai::balrog_instruction_prompt()),
            )
        }
        // BALROG-ENVS (constructors): a native family adds one arm building a `CoreEnv` with its
        // default action and instruction prompt.
        other => {
            return Err(EvalError::Usage(format!(
                "unknown BALROG environment {other:?} (available: babyai, babaisai, crafter, nle)"
            )));
        }
    };
    Ok(e)
}

fn cap(b: &mut BridgedEnv, max_steps: Option<usize>) {
    if let Some(n) = max_steps {
        b.set_max_steps(n.min(b.max_steps()));
    }
}

/// The plan: every listed environment with its (filtered) tasks.
pub fn plan(args: &BalrogRunArgs) -> Result<Vec<SuiteEntry>> {
    let mut plan = Vec::new();
    for env in &args.envs {
        let Some((tasks, episodes)) = default_tasks(env) else {
            bail!("unknown BALROG environment {env:?} in --envs (available: crafter, nle)");
        };
        let mut tasks: Vec<String> = tasks.into_iter().map(str::to_string).collect();
        if !args.tasks.is_empty() {
            tasks.retain(|t| args.tasks.contains(t));
        }
        if !tasks.is_empty() {
            plan.push(SuiteEntry { env: env.clone(), tasks, episodes: args.episodes.unwrap_or(episodes) });
        }
    }
    for t in &args.tasks {
        if !plan.iter().any(|e| e.tasks.contains(t)) {
            bail!("--tasks {t:?} is not a task of {:?}", args.envs);
        }
    }
    if plan.is_empty() {
        bail!("nothing to run: give --envs (crafter, nle)");
    }
    Ok(plan)
}

/// Runs the plan with `model`, shows progress, writes BALROG's summaries and prints the table.
pub fn run(args: &BalrogRunArgs, model: &mut dyn vldac_evals::Model) -> Result<()> {
    let plan = plan(args)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("balrog [{elapsed_precise}] {bar:30} {pos}/{len} episodes | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut make = |env: &str, task: &str| make_env(env, task, args);
    let counts = balrog::run_plan(&plan, &mut make, model, &args.agent, args.seed, &args.out, &mut |ev| match ev {
        SuiteEvent::Planned { total, done } => {
            bar.set_length(*total as u64);
            bar.set_position(*done as u64);
        }
        SuiteEvent::EpisodeStart { env, task, episode } => bar.set_message(format!("{env}/{task} #{episode}")),
        SuiteEvent::Step(s) => {
            if s.step % 5 == 0 || s.step == s.max_steps {
                bar.set_message(format!(
                    "{}/{} #{} step {}/{} progression {:.3}",
                    s.env, s.task, s.episode, s.step, s.max_steps, s.progression
                ));
            }
        }
        SuiteEvent::EpisodeEnd { env, task, episode, progression, steps } => {
            bar.inc(1);
            bar.println(format!("{env}/{task} #{episode}: progression {progression:.4} in {steps} steps"));
        }
    });
    bar.finish_and_clear();
    let counts = counts?;
    let summary = balrog::write_summary(&args.out)?;
    print!("{}", balrog::summary_table(&summary).render());
    eprintln!(
        "{} episodes played, {} resumed; logs and summary.json in {}",
        counts.played,
        counts.resumed,
        args.out.display()
    );
    Ok(())
}

/// `--agent naive|cot` etc. into BALROG's agent settings.
pub fn agent_config(kind: &str, max_image_history: usize, max_new_tokens: usize) -> Result<AgentConfig> {
    let kind: AgentKind = kind.parse().map_err(anyhow::Error::msg)?;
    Ok(AgentConfig { kind, max_image_history, max_new_tokens, ..AgentConfig::default() })
}

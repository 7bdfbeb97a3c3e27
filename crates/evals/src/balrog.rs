//! BALROG: agentic play scored by *progression* (0–1 per episode).
//!
//! * [`summarize`]: the official aggregation (`balrog/utils.py::collect_and_summarize_results`)
//!   over a results tree `<dir>/<env>/<task>/*.json` of per-episode logs: env score = mean
//!   progression of all its episodes ×100, standard error = population std / √n, overall =
//!   mean of env scores, overall SE = √(Σ SE²) / n_envs.
//! * [`PromptBuilder`] + [`Agent`]: BALROG's history prompt (`prompt_builder/history.py`) and its
//!   naive and chain-of-thought agents (`agents/naive.py`, `agents/chain_of_thought.py`).
//! * [`run_episode`]: the evaluator loop (`evaluator.py::run_episode`) — invalid outputs fall back
//!   to the environment's default action with BALROG's feedback text — over a [`BalrogEnv`];
//!   [`CoreEnv`] adapts any labelled [`vldac_core::Environment`].

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vldac_core::{Action, ActionSpace, Environment, Frame};

use crate::EvalError;
use crate::model::{ChatMessage, GenerationConfig, Model, Request, Role, Visual};

// ---------------------------------------------------------------------------------------------
// Aggregation

/// One task's (or environment's) result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressStat {
    pub progression_percentage: f64,
    pub standard_error: f64,
    pub episodes_played: usize,
}

/// One environment's summary (`<env>_summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSummary {
    pub progression_percentage: f64,
    pub standard_error: f64,
    pub average_steps: f64,
    pub episodes_played: usize,
    pub tasks: BTreeMap<String, ProgressStat>,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// The whole run (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub average_progress: f64,
    pub standard_error: f64,
    pub environments: BTreeMap<String, EnvSummary>,
    pub total_input_tokens: i64,
    pub total_output_tokens: i64,
}

fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    let mean = if n > 0 { xs.iter().sum::<f64>() / n as f64 } else { 0.0 };
    let se = if n > 1 {
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        sd / (n as f64).sqrt()
    } else {
        0.0
    };
    (mean, se)
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn collect_json(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), EvalError> {
    let rd = std::fs::read_dir(dir).map_err(|e| EvalError::Io(format!("cannot list {}: {e}", dir.display())))?;
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_json(&p, out)?;
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
            && name.ends_with(".json")
            && !name.ends_with("_summary.json")
            && name != "summary.json"
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Aggregates a BALROG results tree (our runs or BALROG's own output).
pub fn summarize(dir: &Path) -> Result<Summary, EvalError> {
    let rd = std::fs::read_dir(dir).map_err(|e| EvalError::Io(format!("cannot list {}: {e}", dir.display())))?;
    let mut env_dirs: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    env_dirs.sort();
    let mut environments = BTreeMap::new();
    let mut env_means = Vec::new();
    let (mut tin, mut tout) = (0i64, 0i64);
    for env_dir in env_dirs {
        let env = env_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let mut files = Vec::new();
        collect_json(&env_dir, &mut files)?;
        if files.is_empty() {
            continue;
        }
        let mut progress = Vec::new();
        let mut tasks: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let (mut steps, mut ein, mut eout) = (0.0f64, 0i64, 0i64);
        for f in &files {
            let text =
                std::fs::read_to_string(f).map_err(|e| EvalError::Io(format!("cannot read {}: {e}", f.display())))?;
            let log: Value = serde_json::from_str(&text)
                .map_err(|e| EvalError::Data(format!("{}: invalid episode log: {e}", f.display())))?;
            let p = num(&log, "progression");
            progress.push(p);
            let task = log.get("task").map(|t| t.as_str().map(str::to_string).unwrap_or(t.to_string()));
            tasks.entry(task.unwrap_or_else(|| "null".into())).or_default().push(p);
            steps += num(&log, "num_steps");
            ein += num(&log, "input_tokens") as i64;
            eout += num(&log, "output_tokens") as i64;
        }
        let (m, se) = mean_se(&progress);
        env_means.push((m, se * 100.0));
        tin += ein;
        tout += eout;
        let tasks = tasks
            .into_iter()
            .map(|(t, xs)| {
                let (tm, tse) = mean_se(&xs);
                (
                    t,
                    ProgressStat {
                        progression_percentage: 100.0 * tm,
                        standard_error: 100.0 * tse,
                        episodes_played: xs.len(),
                    },
                )
            })
            .collect();
        environments.insert(
            env,
            EnvSummary {
                progression_percentage: 100.0 * m,
                standard_error: 100.0 * se,
                average_steps: steps / files.len() as f64,
                episodes_played: files.len(),
                tasks,
                input_tokens: ein,
                output_tokens: eout,
            },
        );
    }
    let n = env_means.len();
    let (avg, se) = if n > 0 {
        let avg = env_means.iter().map(|e| e.0).sum::<f64>() / n as f64;
        let ss: f64 = env_means.iter().map(|e| e.1 * e.1).sum();
        (avg, ss.sqrt() / n as f64)
    } else {
        (0.0, 0.0)
    };
    Ok(Summary {
        average_progress: 100.0 * avg,
        standard_error: se,
        environments,
        total_input_tokens: tin,
        total_output_tokens: tout,
    })
}

/// Aggregates `dir` and writes BALROG's own summary files there (`<env>/<env>_summary.json`
/// and `summary.json`), so BALROG's tooling reads our runs.
pub fn write_summary(dir: &Path) -> Result<Summary, EvalError> {
    let s = summarize(dir)?;
    let write = |p: std::path::PathBuf, v: &Value| {
        let text = serde_json::to_string_pretty(v).map_err(|e| EvalError::Io(e.to_string()))?;
        std::fs::write(&p, text).map_err(|e| EvalError::Io(format!("cannot write {}: {e}", p.display())))
    };
    let mut envs = serde_json::Map::new();
    for (env, e) in &s.environments {
        write(dir.join(env).join(format!("{env}_summary.json")), &serde_json::to_value(e).unwrap_or_default())?;
        envs.insert(
            env.clone(),
            json!({"progression_percentage": e.progression_percentage, "standard_error": e.standard_error,
                   "episodes_played": e.episodes_played}),
        );
    }
    write(
        dir.join("summary.json"),
        &json!({"average_progress": s.average_progress, "standard_error": s.standard_error, "environments": envs,
                "total_input_tokens": s.total_input_tokens, "total_output_tokens": s.total_output_tokens,
                "client": Value::Null, "agent": Value::Null}),
    )?;
    Ok(s)
}

/// The summary as a score table (overall, per environment, per task).
pub fn summary_table(s: &Summary) -> crate::item::ScoreTable {
    let mut t = crate::item::ScoreTable::new("balrog");
    let total: usize = s.environments.values().map(|e| e.episodes_played).sum();
    t.push("overall", "progression_%", s.average_progress, total);
    t.push("overall", "standard_error", s.standard_error, total);
    for (env, e) in &s.environments {
        t.push(env, "progression_%", e.progression_percentage, e.episodes_played);
        t.push(env, "standard_error", e.standard_error, e.episodes_played);
        for (task, ts) in &e.tasks {
            t.push(&format!("{env}/{task}"), "progression_%", ts.progression_percentage, ts.episodes_played);
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Prompting

/// What an environment shows the agent at one step (BALROG's `obs["text"]` and `obs["image"]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BalrogObs {
    pub long_term_context: String,
    pub short_term_context: String,
    pub image: Option<Frame>,
}

#[derive(Debug, Clone)]
enum Event {
    Observation { text: String, image: Option<Frame> },
    Action { action: String, reasoning: Option<String> },
}

/// BALROG's `HistoryPromptBuilder`: the instruction as the first user turn, then alternating
/// observation (user) and action (assistant) turns, with the newest `max_text_history` texts,
/// `max_image_history` images and `max_cot_history` reasonings kept.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    pub max_text_history: usize,
    pub max_image_history: usize,
    pub max_cot_history: usize,
    system_prompt: Option<String>,
    events: VecDeque<Event>,
    last_short_term: String,
    previous_reasoning: Option<String>,
}

impl PromptBuilder {
    pub fn new(max_text_history: usize, max_image_history: usize, max_cot_history: usize) -> Self {
        PromptBuilder {
            max_text_history,
            max_image_history,
            max_cot_history,
            system_prompt: None,
            events: VecDeque::new(),
            last_short_term: String::new(),
            previous_reasoning: None,
        }
    }

    fn cap(&self) -> usize {
        self.max_text_history.max(self.max_image_history) * 2
    }

    fn push(&mut self, e: Event) {
        self.events.push_back(e);
        while self.events.len() > self.cap() {
            self.events.pop_front();
        }
    }

    pub fn set_instruction(&mut self, text: String) {
        self.system_prompt = Some(text);
    }

    pub fn update_observation(&mut self, obs: &BalrogObs) {
        self.last_short_term = obs.short_term_context.clone();
        self.push(Event::Observation { text: obs.long_term_context.clone(), image: obs.image.clone() });
    }

    pub fn update_action(&mut self, action: &str) {
        let reasoning = self.previous_reasoning.clone();
        self.push(Event::Action { action: action.into(), reasoning });
    }

    pub fn update_reasoning(&mut self, reasoning: &str) {
        self.previous_reasoning = Some(reasoning.into());
    }

    /// The chat messages of the current step.
    pub fn messages(&mut self) -> Vec<ChatMessage> {
        let mut out = Vec::new();
        if let Some(s) = self.system_prompt.as_ref().filter(|s| !s.is_empty()) {
            out.push(ChatMessage::user(Vec::new(), s.clone()));
        }
        let n = self.events.len();
        let mut include_text = vec![false; n];
        let mut include_image = vec![false; n];
        let (mut tn, mut im) = (self.max_text_history, self.max_image_history);
        for i in (0..n).rev() {
            if let Event::Observation { image, .. } = &self.events[i] {
                if tn > 0 {
                    include_text[i] = true;
                    tn -= 1;
                }
                if im > 0 && image.is_some() {
                    include_image[i] = true;
                    im -= 1;
                }
            }
        }
        // Reasoning beyond the newest `max_cot_history` is dropped for good (as BALROG mutates).
        let mut rn = self.max_cot_history;
        for e in self.events.iter_mut().rev() {
            if let Event::Action { reasoning, .. } = e {
                if rn > 0 && reasoning.is_some() {
                    rn -= 1;
                } else {
                    *reasoning = None;
                }
            }
        }
        for (i, e) in self.events.iter().enumerate() {
            match e {
                Event::Observation { text, image } => {
                    let mut parts: Vec<&str> = Vec::new();
                    if i == n - 1 {
                        parts.push("Current Observation:");
                        if !self.last_short_term.is_empty() {
                            parts.push(&self.last_short_term);
                        }
                    } else {
                        parts.push("Observation:");
                    }
                    if include_text[i] {
                        parts.push(text);
                    }
                    let mut visuals = Vec::new();
                    if include_image[i]
                        && let Some(f) = image
                    {
                        visuals.push(Visual::Image(f.clone()));
                        parts.push("Image observation provided.");
                    }
                    out.push(ChatMessage { role: Role::User, visuals, text: parts.join("\n") });
                }
                Event::Action { action, reasoning } => {
                    let text = match reasoning {
                        Some(r) => format!("Previous plan:\n{r}"),
                        None => action.clone(),
                    };
                    out.push(ChatMessage::assistant(text));
                }
            }
        }
        out
    }
}

/// Which BALROG agent prompts the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Answer with an action only.
    Naive,
    /// Think step by step, end with `ACTION: <action>`.
    Cot,
}

impl std::str::FromStr for AgentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "naive" => Ok(AgentKind::Naive),
            "cot" | "chain_of_thought" => Ok(AgentKind::Cot),
            _ => Err(format!("unknown BALROG agent {s:?} (expected naive or cot)")),
        }
    }
}

pub const NAIVE_INSTRUCTION: &str = "You always have to output one of the above actions at a time and no other text. You always have to output an action until the episode terminates.";
pub const COT_INSTRUCTION: &str = "First think about what's the best course of action step by step.\nFinally, provide a single output action at the end of the message in the form of: ACTION: <action>";

/// `re.sub(r"[^a-zA-Z\s:]", "", s)` (`\s` of a `str` pattern is Python's whitespace).
pub fn filter_letters(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphabetic() || crate::pyfmt::is_py_space(*c) || *c == ':').collect()
}

/// The action a raw reply names, as BALROG's pipeline reads it: the vLLM/OpenAI client strips
/// the completion (`client.py`), then naive keeps the filtered text (`agents/naive.py`) and CoT
/// the filtered text after the last `ACTION:`, stripped (`agents/chain_of_thought.py`).
pub fn extract_action(kind: AgentKind, reply: &str) -> String {
    let f = filter_letters(crate::pyfmt::strip(reply));
    match kind {
        AgentKind::Naive => f,
        AgentKind::Cot => crate::pyfmt::strip(f.rsplit("ACTION:").next().unwrap_or("")).to_string(),
    }
}

/// Agent settings (BALROG's `config.agent` defaults: text history 16, CoT history 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub kind: AgentKind,
    pub max_text_history: usize,
    /// ≥ 1 makes it a VLM agent (the newest frames are attached).
    pub max_image_history: usize,
    pub max_cot_history: usize,
    pub max_new_tokens: usize,
    pub temperature: f32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            kind: AgentKind::Naive,
            max_text_history: 16,
            max_image_history: 1,
            max_cot_history: 1,
            max_new_tokens: 1024,
            temperature: 0.0,
        }
    }
}

/// A BALROG agent: prompt builder + model call + answer extraction.
pub struct Agent {
    pub config: AgentConfig,
    pub prompt: PromptBuilder,
}

impl Agent {
    pub fn new(config: AgentConfig) -> Self {
        let prompt = PromptBuilder::new(config.max_text_history, config.max_image_history, config.max_cot_history);
        Agent { config, prompt }
    }

    /// The request for this step (after recording `prev_action` and `obs`).
    pub fn request(&mut self, obs: &BalrogObs, prev_action: Option<&str>) -> Request {
        if let Some(a) = prev_action {
            self.prompt.update_action(a);
        }
        self.prompt.update_observation(obs);
        let mut messages = self.prompt.messages();
        let instr = match self.config.kind {
            AgentKind::Naive => NAIVE_INSTRUCTION,
            AgentKind::Cot => COT_INSTRUCTION,
        };
        if let Some(last) = messages.last_mut()
            && (last.role == Role::User || self.config.kind == AgentKind::Cot)
        {
            last.text.push_str("\n\n");
            last.text.push_str(instr);
        }
        Request {
            messages,
            generation: GenerationConfig {
                max_new_tokens: self.config.max_new_tokens,
                temperature: self.config.temperature,
            },
        }
    }

    /// Turns the model's reply into the candidate action (and remembers CoT reasoning).
    pub fn read_reply(&mut self, reply: &str) -> String {
        if self.config.kind == AgentKind::Cot {
            // The reasoning BALROG keeps is the client's stripped completion.
            self.prompt.update_reasoning(crate::pyfmt::strip(reply));
        }
        extract_action(self.config.kind, reply)
    }
}

// ---------------------------------------------------------------------------------------------
// Episodes

/// What the BALROG evaluator needs from an environment.
pub trait BalrogEnv {
    /// The first user message: rules, goal and the action list.
    fn instruction_prompt(&self) -> String;
    /// The exact action strings the agent may output.
    fn language_action_space(&self) -> Vec<String>;
    /// Taken when the output is not a valid action.
    fn default_action(&self) -> String;
    fn reset(&mut self, seed: u64) -> Result<BalrogObs, EvalError>;
    /// (obs, reward, terminated, truncated)
    fn step(&mut self, action: &str) -> Result<(BalrogObs, f64, bool, bool), EvalError>;
    /// Progression of the current episode in [0, 1].
    fn progression(&self) -> f64;
    fn max_steps(&self) -> usize;
    /// Extra per-episode statistics merged into the episode log (BALROG's `env.get_stats()`,
    /// e.g. Crafter's achievements, NetHack's reached levels); an object or null.
    fn stats(&self) -> Value {
        Value::Null
    }
}

impl<E: BalrogEnv + ?Sized> BalrogEnv for Box<E> {
    fn instruction_prompt(&self) -> String {
        (**self).instruction_prompt()
    }
    fn language_action_space(&self) -> Vec<String> {
        (**self).language_action_space()
    }
    fn default_action(&self) -> String {
        (**self).default_action()
    }
    fn reset(&mut self, seed: u64) -> Result<BalrogObs, EvalError> {
        (**self).reset(seed)
    }
    fn step(&mut self, action: &str) -> Result<(BalrogObs, f64, bool, bool), EvalError> {
        (**self).step(action)
    }
    fn progression(&self) -> f64 {
        (**self).progression()
    }
    fn max_steps(&self) -> usize {
        (**self).max_steps()
    }
    fn stats(&self) -> Value {
        (**self).stats()
    }
}

/// Builds an environment's instruction prompt from its reset observation.
pub type InstructionFn = Box<dyn Fn(&vldac_core::Observation) -> String>;

/// Adapts a vldac environment with a labelled discrete action space. Progression is 1 once a
/// positive reward was seen (BALROG's rule for BabyAI and Baba Is AI). Environments that know
/// BALROG's own instruction prompt supply it with [`CoreEnv::with_instruction`]; otherwise a
/// generic one lists the labels.
pub struct CoreEnv<E: Environment> {
    pub env: E,
    pub max_steps: usize,
    /// Index of the action taken for invalid outputs (BALROG's BabyAI uses "go forward").
    pub default_action: usize,
    labels: Vec<String>,
    got_reward: bool,
    instruction: Option<InstructionFn>,
    reset_obs: vldac_core::Observation,
}

impl<E: Environment> CoreEnv<E> {
    pub fn new(env: E, max_steps: usize) -> Result<Self, EvalError> {
        let labels = match &env.spec().action_space {
            ActionSpace::Discrete { labels, .. } if !labels.is_empty() => labels.clone(),
            _ => {
                return Err(EvalError::Usage(format!(
                    "{}: BALROG episodes need a labelled discrete action space",
                    env.spec().id
                )));
            }
        };
        Ok(CoreEnv {
            env,
            max_steps,
            default_action: 0,
            labels,
            got_reward: false,
            instruction: None,
            reset_obs: vldac_core::Observation::default(),
        })
    }

    /// Sets the fallback action by label (the error lists the labels).
    pub fn with_default_action(mut self, label: &str) -> Result<Self, EvalError> {
        self.default_action = self
            .labels
            .iter()
            .position(|l| l == label)
            .ok_or_else(|| EvalError::Usage(format!("default action {label:?} is not one of {:?}", self.labels)))?;
        Ok(self)
    }

    /// Uses the environment's own instruction prompt, built from the episode's reset
    /// observation (e.g. BabyAI's prompt names the mission).
    pub fn with_instruction(mut self, f: impl Fn(&vldac_core::Observation) -> String + 'static) -> Self {
        self.instruction = Some(Box::new(f));
        self
    }

    fn convert(&self, obs: &vldac_core::Observation) -> BalrogObs {
        BalrogObs {
            long_term_context: obs.text.clone().unwrap_or_else(|| format!("Your goal is {}.", obs.task)),
            short_term_context: String::new(),
            image: obs.last_frame().cloned(),
        }
    }

    fn env_err(&self, e: vldac_core::EnvError) -> EvalError {
        EvalError::Env(format!("{}: {e}", self.env.spec().id))
    }
}

impl<E: Environment> BalrogEnv for CoreEnv<E> {
    fn instruction_prompt(&self) -> String {
        if let Some(f) = &self.instruction {
            return f(&self.reset_obs);
        }
        format!(
            "You are an agent playing {}. Your goal: {}.\n\nYou can take the following actions:\n{}\n\nIn a moment I will present you an observation.",
            self.env.spec().id,
            self.reset_obs.task,
            self.labels.iter().map(|l| format!("- {l}")).collect::<Vec<_>>().join("\n")
        )
    }
    fn language_action_space(&self) -> Vec<String> {
        self.labels.clone()
    }
    fn default_action(&self) -> String {
        self.labels[self.default_action].clone()
    }
    fn reset(&mut self, seed: u64) -> Result<BalrogObs, EvalError> {
        let (obs, _) = self.env.reset(Some(seed)).map_err(|e| self.env_err(e))?;
        self.got_reward = false;
        let converted = self.convert(&obs);
        self.reset_obs = obs;
        Ok(converted)
    }
    fn step(&mut self, action: &str) -> Result<(BalrogObs, f64, bool, bool), EvalError> {
        let i = self.labels.iter().position(|l| l == action).unwrap_or(self.default_action);
        let s = self.env.step(&Action::Discrete(i)).map_err(|e| self.env_err(e))?;
        if s.reward > 0.0 {
            self.got_reward = true;
        }
        Ok((self.convert(&s.obs), s.reward, s.terminated, s.truncated))
    }
    fn progression(&self) -> f64 {
        if self.got_reward { 1.0 } else { 0.0 }
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
}

/// Where an episode stands (for progress bars).
#[derive(Debug, Clone, PartialEq)]
pub struct StepEvent<'a> {
    pub env: &'a str,
    pub task: &'a str,
    pub episode: usize,
    /// Steps taken so far in this episode.
    pub step: usize,
    pub max_steps: usize,
    pub progression: f64,
}

/// The log file of one episode: `<out>/<env>/<task>/<task>_run_<idx>.json` (BALROG's layout;
/// task names with `/`, like BabyAI's, become sub-directories as in BALROG).
pub fn episode_log_path(out_dir: &Path, env_name: &str, task: &str, episode_idx: usize) -> std::path::PathBuf {
    out_dir.join(env_name).join(task).join(format!("{task}_run_{episode_idx:02}.json"))
}

/// Plays one episode as BALROG's evaluator does and writes its log to
/// `<out_dir>/<env_name>/<task>/<task>_run_<idx>.json` (the layout [`summarize`] reads).
#[allow(clippy::too_many_arguments)]
pub fn run_episode<E: BalrogEnv + ?Sized, M: Model + ?Sized>(
    env: &mut E,
    model: &mut M,
    config: &AgentConfig,
    env_name: &str,
    task: &str,
    episode_idx: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<Value, EvalError> {
    run_episode_with(env, model, config, env_name, task, episode_idx, seed, out_dir, &mut |_| {})
}

/// [`run_episode`] that reports every step to `on_step`.
#[allow(clippy::too_many_arguments)]
pub fn run_episode_with<E: BalrogEnv + ?Sized, M: Model + ?Sized>(
    env: &mut E,
    model: &mut M,
    config: &AgentConfig,
    env_name: &str,
    task: &str,
    episode_idx: usize,
    seed: u64,
    out_dir: &Path,
    on_step: &mut dyn FnMut(&StepEvent),
) -> Result<Value, EvalError> {
    let mut agent = Agent::new(config.clone());
    let mut obs = env.reset(seed)?;
    agent.prompt.set_instruction(env.instruction_prompt());
    let valid = env.language_action_space();
    let max_steps = env.max_steps();
    let mut freq: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    let (mut ret, mut steps, mut done) = (0.0f64, 0usize, false);
    let (mut tokens_in, mut tokens_out) = (0u64, 0u64);
    let mut prev: Option<String> = None;
    for step in 0..max_steps {
        let req = agent.request(&obs, prev.as_deref());
        let replies = model.generate(std::slice::from_ref(&req))?;
        if let Some(u) = model.last_usage().first() {
            tokens_in += u.input_tokens;
            tokens_out += u.output_tokens;
        }
        let reply = replies
            .into_iter()
            .next()
            .ok_or_else(|| EvalError::Model(crate::model::ModelError(format!("{} returned no reply", model.name()))))?;
        let candidate = agent.read_reply(&reply);
        let action = if valid.contains(&candidate) {
            candidate.clone()
        } else {
            failed.push(candidate.clone());
            env.default_action()
        };
        *freq.entry(action.clone()).or_default() += 1;
        let (mut o, r, term, trunc) = env.step(&action)?;
        ret += r;
        if action != candidate {
            o.long_term_context = format!(
                "\n\nYour previous output did not contain a valid action. Defaulted to action: {action}\n\nObservation:\n{}",
                o.long_term_context
            );
        }
        obs = o;
        prev = Some(candidate);
        steps = step + 1;
        on_step(&StepEvent {
            env: env_name,
            task,
            episode: episode_idx,
            step: steps,
            max_steps,
            progression: env.progression(),
        });
        if term || trunc {
            done = true;
            break;
        }
    }
    let mut log = json!({
        "task": task,
        "action_frequency": freq,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "episode_return": ret,
        "num_steps": steps,
        "failed_candidates": failed,
        "progression": env.progression(),
    });
    if done {
        log["done"] = Value::Bool(true);
    }
    // BALROG: `episode_log.update(env.get_stats())`, then seed, agent and client.
    if let (Value::Object(extra), Some(map)) = (env.stats(), log.as_object_mut()) {
        for (k, v) in extra {
            map.insert(k, v);
        }
    }
    log["seed"] = json!(seed);
    log["agent"] = json!(config);
    log["client"] = json!({"model_id": model.name()});
    let path = episode_log_path(out_dir, env_name, task, episode_idx);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(&log).map_err(|e| EvalError::Io(e.to_string()))?;
    // Written whole then renamed, so an interrupted run never leaves a half log that resume trusts.
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, text).map_err(|e| EvalError::Io(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(|e| EvalError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok(log)
}

/// Plays `episodes` episodes of every task (seed = `base_seed + episode index`), skipping the
/// episodes whose log already exists (a crashed run resumes), then writes the summaries.
/// `make_env(task)` builds the environment of a task.
#[allow(clippy::too_many_arguments)]
pub fn run_suite<E, M, F>(
    mut make_env: F,
    model: &mut M,
    config: &AgentConfig,
    env_name: &str,
    tasks: &[&str],
    episodes: usize,
    base_seed: u64,
    out_dir: &Path,
) -> Result<Summary, EvalError>
where
    E: BalrogEnv + 'static,
    M: Model + ?Sized,
    F: FnMut(&str) -> Result<E, EvalError>,
{
    let plan: Vec<SuiteEntry> =
        vec![SuiteEntry { env: env_name.into(), tasks: tasks.iter().map(|t| t.to_string()).collect(), episodes }];
    let mut make = |_: &str, task: &str| make_env(task).map(|e| Box::new(e) as Box<dyn BalrogEnv>);
    run_plan(&plan, &mut make, model, config, base_seed, out_dir, &mut |_| {})?;
    write_summary(out_dir)
}

/// One environment of a BALROG run: its tasks and the episodes per task.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteEntry {
    pub env: String,
    pub tasks: Vec<String>,
    pub episodes: usize,
}

/// What [`run_plan`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SuiteEvent<'a> {
    /// Before the first episode: how many episodes the plan has and how many are already logged.
    Planned {
        total: usize,
        done: usize,
    },
    EpisodeStart {
        env: &'a str,
        task: &'a str,
        episode: usize,
    },
    Step(StepEvent<'a>),
    EpisodeEnd {
        env: &'a str,
        task: &'a str,
        episode: usize,
        progression: f64,
        steps: usize,
    },
}

/// Builds the environment of `(env, task)` for [`run_plan`].
pub type MakeEnv<'a> = dyn FnMut(&str, &str) -> Result<Box<dyn BalrogEnv>, EvalError> + 'a;

/// The counts of a [`run_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanCounts {
    pub played: usize,
    pub resumed: usize,
}

/// Plays a multi-environment plan: episode `i` of every task uses seed `base_seed + i`;
/// episodes with a log are skipped (resume). `make_env(env, task)` is called once per task and
/// the environment is reset for each of its episodes.
pub fn run_plan<M: Model + ?Sized>(
    plan: &[SuiteEntry],
    make_env: &mut MakeEnv,
    model: &mut M,
    config: &AgentConfig,
    base_seed: u64,
    out_dir: &Path,
    observer: &mut dyn FnMut(&SuiteEvent),
) -> Result<PlanCounts, EvalError> {
    let total: usize = plan.iter().map(|e| e.tasks.len() * e.episodes).sum();
    let logged = |env: &str, task: &str, i: usize| episode_log_path(out_dir, env, task, i).exists();
    let resumed = plan
        .iter()
        .flat_map(|e| e.tasks.iter().flat_map(move |t| (0..e.episodes).map(move |i| (e, t, i))))
        .filter(|(e, t, i)| logged(&e.env, t, *i))
        .count();
    observer(&SuiteEvent::Planned { total, done: resumed });
    let mut played = 0;
    for entry in plan {
        for task in &entry.tasks {
            let mut env: Option<Box<dyn BalrogEnv>> = None;
            for i in 0..entry.episodes {
                if logged(&entry.env, task, i) {
                    continue;
                }
                if env.is_none() {
                    env = Some(make_env(&entry.env, task)?);
                }
                let Some(e) = env.as_mut() else { continue };
                observer(&SuiteEvent::EpisodeStart { env: &entry.env, task, episode: i });
                let log =
                    run_episode_with(e, model, config, &entry.env, task, i, base_seed + i as u64, out_dir, &mut |s| {
                        observer(&SuiteEvent::Step(s.clone()))
                    })?;
                played += 1;
                observer(&SuiteEvent::EpisodeEnd {
                    env: &entry.env,
                    task,
                    episode: i,
                    progression: num(&log, "progression"),
                    steps: num(&log, "num_steps") as usize,
                });
            }
        }
    }
    Ok(PlanCounts { played, resumed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_extraction_matches_balrog() {
        assert_eq!(extract_action(AgentKind::Naive, "go forward."), "go forward");
        assert_eq!(extract_action(AgentKind::Cot, "I see a key. ACTION: pick up\n"), "pick up");
        assert_eq!(extract_action(AgentKind::Cot, "no marker here 1"), "no marker here");
    }

    #[test]
    fn prompt_history_marks_current_observation() {
        let mut b = PromptBuilder::new(16, 1, 1);
        b.set_instruction("rules".into());
        b.update_observation(&BalrogObs { long_term_context: "a".into(), ..Default::default() });
        b.update_action("left");
        b.update_observation(&BalrogObs { long_term_context: "b".into(), ..Default::default() });
        let m = b.messages();
        let texts: Vec<&str> = m.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(texts, vec!["rules", "Observation:\na", "left", "Current Observation:\nb"]);
    }
}

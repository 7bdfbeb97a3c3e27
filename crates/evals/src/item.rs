//! The common item type every loader produces, prediction files, and score tables.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EvalError;
use crate::media::Media;

/// The reference answer of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gold {
    /// An option index (VisualWebBench's multiple-choice tasks).
    Index(i64),
    /// One reference text (a letter, a number as text, a caption, "Yes").
    Text(String),
    /// Several acceptable references (VisualWebBench webqa).
    AnyOf(Vec<String>),
}

impl Gold {
    pub fn as_text(&self) -> String {
        match self {
            Gold::Index(i) => i.to_string(),
            Gold::Text(s) => s.clone(),
            Gold::AnyOf(v) => v.join(" | "),
        }
    }
}

/// One benchmark question, ready for inference and scoring.
#[derive(Debug, Clone)]
pub struct Item {
    /// Unique key within the benchmark (used in prediction files).
    pub id: String,
    /// The group it is scored in (question type, task, category).
    pub task: String,
    /// Visuals, shown before the text.
    pub media: Vec<Media>,
    /// The user text, built with the benchmark's official template.
    pub prompt: String,
    pub options: Vec<String>,
    pub gold: Gold,
    /// The benchmark's generation budget.
    pub max_new_tokens: usize,
    /// Fields a scorer needs beyond the above (MME question_id, MMBench index and categories).
    pub extra: Map<String, Value>,
}

/// One line of a predictions file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub id: String,
    #[serde(default)]
    pub task: String,
    /// The reply after the official pipeline's post-processing (what the task's scorer sees).
    /// In files from other tools that have no `response`, the model's raw reply.
    pub prediction: String,
    /// The raw model reply, as decoded (scoring starts from it when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Gold>,
}

impl PredictionRecord {
    /// The model's reply as it came: `response` when the record has one, else `prediction`.
    pub fn raw_reply(&self) -> &str {
        self.response.as_deref().unwrap_or(&self.prediction)
    }
}

/// Reads a predictions JSONL file into `id → record` (a later line for the same id wins, so a
/// resumed run may re-append). Accepts `{"id", "prediction"}` at minimum.
pub fn read_predictions(path: &Path) -> Result<HashMap<String, PredictionRecord>, EvalError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| EvalError::Io(format!("cannot read {}: {e}", path.display())))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // A run killed mid-write leaves a truncated last line; it is redone on resume.
            Err(_) if i + 1 == text.lines().count() => break,
            Err(e) => return Err(EvalError::Data(format!("{} line {}: invalid JSON: {e}", path.display(), i + 1))),
        };
        // Ids may be written as numbers by other tools.
        if let Some(id) = v.get("id").filter(|x| x.is_number()).map(|x| x.to_string()) {
            v["id"] = Value::String(id);
        }
        let rec: PredictionRecord = serde_json::from_value(v).map_err(|e| {
            EvalError::Data(format!("{} line {}: expected {{\"id\", \"prediction\"}}: {e}", path.display(), i + 1))
        })?;
        out.insert(rec.id.clone(), rec);
    }
    Ok(out)
}

/// Appends records to a predictions file (flushed, so an interrupted run keeps them).
pub fn append_predictions(path: &Path, recs: &[PredictionRecord]) -> Result<(), EvalError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| EvalError::Io(format!("cannot open {}: {e}", path.display())))?;
    let mut buf = String::new();
    for r in recs {
        buf.push_str(&serde_json::to_string(r).map_err(|e| EvalError::Io(e.to_string()))?);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| EvalError::Io(format!("cannot write {}: {e}", path.display())))
}

/// The prediction of every item, in item order; an error lists missing ids.
pub fn predictions_for<'a>(
    items: &[Item],
    preds: &'a HashMap<String, PredictionRecord>,
) -> Result<Vec<&'a str>, EvalError> {
    let missing: Vec<&str> = items.iter().filter(|it| !preds.contains_key(&it.id)).map(|it| it.id.as_str()).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).copied().collect();
        return Err(EvalError::Data(format!(
            "{} of {} items have no prediction (e.g. ids {shown:?}); finish the run (it resumes) or pass a complete file",
            missing.len(),
            items.len()
        )));
    }
    Ok(items.iter().map(|it| preds[&it.id].prediction.as_str()).collect())
}

/// The raw reply of every item, in item order: a record's `response` when present, else its
/// `prediction`; an error lists missing ids.
pub fn replies_for<'a>(
    items: &[Item],
    preds: &'a HashMap<String, PredictionRecord>,
) -> Result<Vec<&'a str>, EvalError> {
    predictions_for(items, preds)?;
    Ok(items.iter().map(|it| preds[&it.id].raw_reply()).collect())
}

/// One number of a score table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Task / question type / category, or `overall`.
    pub task: String,
    pub metric: String,
    pub value: f64,
    /// Items that entered the number.
    pub n: usize,
}

/// Per-task and overall scores of one benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreTable {
    pub bench: String,
    pub scores: Vec<Score>,
    /// Things a reader must know (dropped items, deviations forced by partial data).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl ScoreTable {
    pub fn new(bench: &str) -> Self {
        ScoreTable { bench: bench.into(), scores: Vec::new(), notes: Vec::new() }
    }

    pub fn push(&mut self, task: &str, metric: &str, value: f64, n: usize) {
        self.scores.push(Score { task: task.into(), metric: metric.into(), value, n });
    }

    /// The value of `task`/`metric`, if present.
    pub fn get(&self, task: &str, metric: &str) -> Option<f64> {
        self.scores.iter().find(|s| s.task == task && s.metric == metric).map(|s| s.value)
    }

    /// A fixed-width text table.
    pub fn render(&self) -> String {
        let tw = self.scores.iter().map(|s| s.task.len()).max().unwrap_or(4).max(4);
        let mw = self.scores.iter().map(|s| s.metric.len()).max().unwrap_or(6).max(6);
        let mut out = format!("{}\n{:tw$}  {:mw$}  {:>9}  {:>6}\n", self.bench, "task", "metric", "score", "n");
        for s in &self.scores {
            out.push_str(&format!("{:tw$}  {:mw$}  {:>9.3}  {:>6}\n", s.task, s.metric, s.value, s.n));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

//! Dispatch by benchmark name.

use std::path::Path;

use crate::item::{Item, ScoreTable, read_predictions, replies_for};
use crate::media::FrameSampling;
use crate::pipeline::{LMMS_DEFAULT_UNTIL, Pipeline};
use crate::{EvalError, gqa, mmbench, mme, visualwebbench, vsibench};

const LMMS_SOURCE: &str = "lmms-eval 0.7.3: models/simple/qwen2_vl.py cuts at the YAML's `until` and strips; \
evaluator.py removes the default --reasoning_tags (api/reasoning.py, strips); api/task.py process_results strips";
/// `_default_template_mmbench_en_yaml`'s `generation_kwargs.until`.
const MMBENCH_UNTIL: [&str; 1] = ["ASSISTANT:"];

/// The item benchmarks (BALROG is episodic: see [`crate::balrog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    VsiBench,
    VisualWebBench,
    MmBench,
    Mme,
    Gqa,
}

/// Loader settings that apply to some benchmarks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Frames per video (VSI-Bench).
    pub frames: usize,
    pub sampling: FrameSampling,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let v = vsibench::VsiOptions::default();
        LoadOptions { frames: v.frames, sampling: v.sampling }
    }
}

impl Bench {
    pub const ALL: [Bench; 5] = [Bench::VsiBench, Bench::VisualWebBench, Bench::MmBench, Bench::Mme, Bench::Gqa];

    pub fn name(self) -> &'static str {
        match self {
            Bench::VsiBench => "vsibench",
            Bench::VisualWebBench => "visualwebbench",
            Bench::MmBench => "mmbench",
            Bench::Mme => "mme",
            Bench::Gqa => "gqa",
        }
    }

    /// Parses a benchmark name (case and `-`/`_` insensitive).
    pub fn from_name(name: &str) -> Result<Bench, EvalError> {
        let n: String = name.to_ascii_lowercase().chars().filter(|c| *c != '-' && *c != '_').collect();
        Bench::ALL.into_iter().find(|b| b.name() == n).ok_or_else(|| {
            EvalError::Usage(format!(
                "unknown benchmark {name:?}; known: {}, balrog",
                Bench::ALL.map(|b| b.name()).join(", ")
            ))
        })
    }

    /// Loads the items from the benchmark's official on-disk format.
    pub fn load(self, dir: &Path, opts: LoadOptions) -> Result<Vec<Item>, EvalError> {
        if !dir.exists() {
            return Err(EvalError::Io(format!("data directory {} does not exist", dir.display())));
        }
        let items = match self {
            Bench::VsiBench => {
                vsibench::load(dir, vsibench::VsiOptions { frames: opts.frames, sampling: opts.sampling })
            }
            Bench::VisualWebBench => visualwebbench::load(dir),
            Bench::MmBench => mmbench::load(dir),
            Bench::Mme => mme::load(dir),
            Bench::Gqa => gqa::load(dir),
        }?;
        let mut seen = std::collections::HashSet::new();
        for it in &items {
            if !seen.insert(it.id.as_str()) {
                let tables = crate::rows::table_files(dir)
                    .map(|f| f.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                return Err(EvalError::Data(format!(
                    "{}: duplicate item id {:?} (tables read: {tables}); if these are several variants of the \
                     benchmark, pass one table file as --data",
                    dir.display(),
                    it.id
                )));
            }
        }
        Ok(items)
    }

    /// The official pipeline's post-processing of a reply (see [`crate::pipeline`]).
    pub fn pipeline(self) -> Pipeline {
        match self {
            Bench::VsiBench => Pipeline::strip_only(
                "thinking-in-space@51e089c: models/qwen2vl.py returns the reply as is; api/task.py process_results strips it",
            ),
            Bench::Gqa => Pipeline::lmms_eval(&LMMS_DEFAULT_UNTIL, LMMS_SOURCE),
            Bench::Mme => Pipeline::lmms_eval(&LMMS_DEFAULT_UNTIL, LMMS_SOURCE),
            Bench::VisualWebBench => Pipeline::lmms_eval(&LMMS_DEFAULT_UNTIL, LMMS_SOURCE),
            Bench::MmBench => Pipeline::lmms_eval(&MMBENCH_UNTIL, LMMS_SOURCE),
        }
    }

    /// The official pipeline's post-processing of a raw model reply: the text the task's
    /// `process_results` receives, which is what [`Bench::score`] scores.
    pub fn postprocess(self, _item: &Item, response: &str) -> String {
        self.pipeline().apply(response)
    }

    /// Scores raw model replies (in item order) as the official pipeline does: each reply
    /// through [`Bench::postprocess`], then the task's scorer and aggregation.
    pub fn score_replies(self, items: &[Item], replies: &[&str]) -> Result<ScoreTable, EvalError> {
        if items.len() != replies.len() {
            return Err(EvalError::Usage(format!("{} items but {} replies", items.len(), replies.len())));
        }
        let processed: Vec<String> = items.iter().zip(replies).map(|(it, r)| self.postprocess(it, r)).collect();
        let refs: Vec<&str> = processed.iter().map(String::as_str).collect();
        self.score(items, &refs)
    }

    /// Scores post-processed predictions (what the task's `process_results` receives) given in
    /// item order: the task functions and aggregation only, no reply post-processing.
    pub fn score(self, items: &[Item], preds: &[&str]) -> Result<ScoreTable, EvalError> {
        if items.len() != preds.len() {
            return Err(EvalError::Usage(format!("{} items but {} predictions", items.len(), preds.len())));
        }
        match self {
            Bench::VsiBench => vsibench::score(items, preds),
            Bench::VisualWebBench => visualwebbench::score(items, preds),
            Bench::MmBench => mmbench::score(items, preds),
            Bench::Mme => mme::score(items, preds),
            Bench::Gqa => gqa::score(items, preds),
        }
    }

    /// `vldac eval score`: loads the data, reads a predictions JSONL file and scores it as the
    /// official pipeline does. Each record's raw reply is its `response` field when present
    /// (files written by [`crate::runner::run_eval`]), else its `prediction` field (files from
    /// other tools: the model's reply as it came); it goes through [`Bench::postprocess`] first.
    pub fn score_file(self, data: &Path, predictions: &Path) -> Result<ScoreTable, EvalError> {
        self.score_file_with(data, predictions, false)
    }

    /// As [`Bench::score_file`]; with `allow_missing`, items without a prediction are left out
    /// (an interim score of a running eval; the table notes it) instead of being an error.
    pub fn score_file_with(
        self,
        data: &Path,
        predictions: &Path,
        allow_missing: bool,
    ) -> Result<ScoreTable, EvalError> {
        let mut items = self.load(data, LoadOptions::default())?;
        let preds = read_predictions(predictions)?;
        let total = items.len();
        if allow_missing {
            items.retain(|it| preds.contains_key(&it.id));
            if items.is_empty() {
                return Err(EvalError::Data(format!(
                    "{}: none of the {total} items has a prediction",
                    predictions.display()
                )));
            }
        }
        let p = replies_for(&items, &preds)?;
        let mut table = self.score_replies(&items, &p)?;
        if items.len() < total {
            table
                .notes
                .push(format!("partial: scored {} of {total} items (the others have no prediction yet)", items.len()));
        }
        Ok(table)
    }
}

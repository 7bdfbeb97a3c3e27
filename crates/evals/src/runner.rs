//! The eval loop: batched inference over benchmark items with resumable JSONL predictions.
//!
//! `out_dir/predictions.jsonl` gets one line per item, appended and flushed after every batch;
//! a rerun with the same `out_dir` skips the items already there. Each line keeps the raw reply
//! (`response`) next to the official pipeline's post-processed text (`prediction`). When every
//! item has a prediction the run is scored and `out_dir/scores.json` + `scores.txt` are written.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::EvalError;
use crate::bench::Bench;
use crate::item::{Item, PredictionRecord, ScoreTable, append_predictions, read_predictions, replies_for};
use crate::model::{Model, Request};

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Requests per `Model::generate` call.
    pub batch_size: usize,
    pub out_dir: PathBuf,
    /// Print a progress line on stderr.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Items whose predictions were already in the file.
    pub resumed: usize,
    /// Items generated in this run.
    pub generated: usize,
    pub table: ScoreTable,
}

/// Builds the model request of an item (decodes its images / samples its video).
pub fn request_for(item: &Item) -> Result<Request, EvalError> {
    let visuals = item
        .media
        .iter()
        .map(|m| m.load().map_err(|e| EvalError::Media(format!("item {}: {e}", item.id))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request::single(visuals, item.prompt.clone(), item.max_new_tokens))
}

/// Runs `model` on every item without a prediction yet, then scores all predictions.
pub fn run_eval<M: Model + ?Sized>(
    bench: Bench,
    items: &[Item],
    model: &mut M,
    opts: &RunOptions,
) -> Result<RunSummary, EvalError> {
    if opts.batch_size == 0 {
        return Err(EvalError::Usage("batch size must be at least 1".into()));
    }
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| EvalError::Io(format!("cannot create {}: {e}", opts.out_dir.display())))?;
    let pred_path = opts.out_dir.join("predictions.jsonl");
    let existing = if pred_path.exists() { read_predictions(&pred_path)? } else { Default::default() };
    let pending: Vec<&Item> = items.iter().filter(|it| !existing.contains_key(&it.id)).collect();
    let resumed = items.len() - pending.len();
    let start = Instant::now();
    let mut generated = 0usize;
    for chunk in pending.chunks(opts.batch_size) {
        let reqs = chunk.iter().map(|it| request_for(it)).collect::<Result<Vec<_>, _>>()?;
        let replies = model.generate(&reqs)?;
        if replies.len() != reqs.len() {
            return Err(EvalError::Model(crate::model::ModelError(format!(
                "{} returned {} replies for {} requests",
                model.name(),
                replies.len(),
                reqs.len()
            ))));
        }
        let recs: Vec<PredictionRecord> = chunk
            .iter()
            .zip(replies)
            .map(|(it, r)| PredictionRecord {
                id: it.id.clone(),
                task: it.task.clone(),
                prediction: bench.postprocess(it, &r),
                response: Some(r),
                answer: Some(it.gold.clone()),
            })
            .collect();
        append_predictions(&pred_path, &recs)?;
        generated += recs.len();
        if opts.progress {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let rate = generated as f64 / secs;
            let left = (pending.len() - generated) as f64 / rate.max(1e-9);
            eprint!(
                "\r{} {}/{} items  {:.2} items/s  eta {:.0}s   ",
                bench.name(),
                resumed + generated,
                items.len(),
                rate,
                left
            );
            std::io::stderr().flush().ok();
        }
    }
    if opts.progress {
        eprintln!();
    }
    let all = read_predictions(&pred_path)?;
    // Scored from the raw replies, so a file resumed across versions is post-processed alike.
    let replies = replies_for(items, &all)?;
    let table = bench.score_replies(items, &replies)?;
    let json = serde_json::to_string_pretty(&table).map_err(|e| EvalError::Io(e.to_string()))?;
    let write = |name: &str, text: &str| {
        let p = opts.out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| EvalError::Io(format!("cannot write {}: {e}", p.display())))
    };
    write("scores.json", &json)?;
    write("scores.txt", &table.render())?;
    Ok(RunSummary { resumed, generated, table })
}

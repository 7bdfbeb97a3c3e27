//! VisualWebBench (web-page understanding and grounding, 7 tasks).
//!
//! Data as downloaded from the Hub: one folder per task config (`web_caption/`, `webqa/`, …)
//! holding `test-*.parquet` with `id, task_type, website, image, image_size, bbox, elem_desc,
//! options, instruction, question, answer`; a single folder with a `task_type` column works too.
//! Prompts are the official `utils/prompts.py` (identical in lmms-eval 0.7.3's copy), generation
//! and reply post-processing lmms-eval 0.7.3's `visualwebbench_*.yaml` (16 new tokens; see
//! [`crate::pipeline`]), the metrics the official `utils/eval_utils.py`.

use std::path::Path;

use serde_json::Value;

use crate::EvalError;
use crate::item::{Gold, Item, ScoreTable};
use crate::mcq::visualwebbench_choice;
use crate::pyfmt::{list_repr, py_len};
use crate::rouge;
use crate::rows::{Row, read_table_dir_split};

pub const TASKS: [&str; 7] =
    ["web_caption", "heading_ocr", "webqa", "element_ocr", "element_ground", "action_prediction", "action_ground"];

const CAPTION_PROMPT: &str = "You are given a screenshot of a webpage. Please generate the meta web description information of this webpage, i.e., content attribute in <meta name=\"description\" content=\"\"> HTML element.\n\nYou should use the following format, and do not output any explanation or any other contents:\n<meta name=\"description\" content=\"YOUR ANSWER\">\n";
const HEADING_PROMPT: &str = "You are given a screenshot of a webpage. Please generate the main text within the screenshot, which can be regarded as the heading of the webpage.\n\nYou should directly tell me the main content, and do not output any explanation or any other contents.\n";
const WEBQA_PROMPT: &str = "{question}\nYou should directly tell me your answer in the fewest words possible, and do not output any explanation or any other contents.\n";
const ELEMENT_OCR_PROMPT: &str = "You are given a screenshot of a webpage with a red rectangle bounding box. The [x1, y1, x2, y2] coordinates of the bounding box is {bbox_ratio}.\nPlease perform OCR in the bounding box and recognize the text content within the red bounding box.\n\nYou should use the following format:\nThe text content within the red bounding box is: <YOUR ANSWER>\n";
const ELEMENT_GROUND_PROMPT: &str = "In this website screenshot, I have labeled IDs for some HTML elements as candicates. Tell me which one best matches the description: {element_desc}\n\nYou should directly tell me your choice in a single uppercase letter, and do not output any explanation or any other contents.\n";
const ACTION_PREDICTION_PROMPT: &str = "You are given a screenshot of a webpage with a red rectangle bounding box. The [x1, y1, x2, y2] coordinates of the bounding box is {bbox_ratio}.\nPlease select the best webpage description that matches the new webpage after clicking the selected element in the bounding box:\n{choices_text}\n\nYou should directly tell me your choice in a single uppercase letter, and do not output any explanation or any other contents.\n";
const ACTION_GROUND_PROMPT: &str = "In this website screenshot, I have labeled IDs for some HTML elements as candicates. Tell me which one I should click to complete the following task: {instruction}\n\nYou should directly tell me your choice in a single uppercase letter, and do not output any explanation or any other contents.\n";

fn is_mc(task: &str) -> bool {
    matches!(task, "element_ground" | "action_prediction" | "action_ground")
}

fn prompt(task: &str, row: &Row) -> Result<String, EvalError> {
    let repr = |k: &str| row.get(k).map(list_repr).ok_or_else(|| row.bad(k, "missing"));
    Ok(match task {
        "web_caption" => CAPTION_PROMPT.to_string(),
        "heading_ocr" => HEADING_PROMPT.to_string(),
        "webqa" => WEBQA_PROMPT.replace("{question}", row.str("question")?),
        "element_ocr" => ELEMENT_OCR_PROMPT.replace("{bbox_ratio}", &repr("bbox")?),
        "element_ground" => ELEMENT_GROUND_PROMPT.replace("{element_desc}", row.str("elem_desc")?),
        "action_prediction" => ACTION_PREDICTION_PROMPT
            .replace("{bbox_ratio}", &repr("bbox")?)
            .replace("{choices_text}", &repr("options")?),
        "action_ground" => ACTION_GROUND_PROMPT.replace("{instruction}", row.str("instruction")?),
        other => return Err(row.bad("task_type", &format!("unknown task {other:?}"))),
    })
}

fn gold(task: &str, row: &Row) -> Result<Gold, EvalError> {
    match (task, row.get("answer")) {
        (t, _) if is_mc(t) => Ok(Gold::Index(row.int("answer")?)),
        ("webqa", Some(Value::Array(a))) => {
            Ok(Gold::AnyOf(a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect()))
        }
        ("webqa", Some(Value::String(s))) => Ok(Gold::AnyOf(vec![s.clone()])),
        (_, Some(Value::String(s))) => Ok(Gold::Text(s.clone())),
        (_, _) => Err(row.bad("answer", "missing or not text")),
    }
}

/// Loads all tasks present under `dir`.
pub fn load(dir: &Path) -> Result<Vec<Item>, EvalError> {
    let mut sources: Vec<(Option<&str>, std::path::PathBuf)> =
        TASKS.iter().filter(|t| dir.join(t).is_dir()).map(|t| (Some(*t), dir.join(t))).collect();
    if sources.is_empty() {
        sources.push((None, dir.to_path_buf()));
    }
    let mut items = Vec::new();
    for (task_dir, path) in sources {
        for row in read_table_dir_split(&path, "test")? {
            let task = match (row.opt_str("task_type"), task_dir) {
                (Some(t), _) => t.to_string(),
                (None, Some(t)) => t.to_string(),
                (None, None) => return Err(row.bad("task_type", "missing (and the folder is not named after a task)")),
            };
            if !TASKS.contains(&task.as_str()) {
                return Err(row.bad("task_type", &format!("unknown task {task:?}")));
            }
            let options = match row.get("options") {
                Some(Value::Array(a)) if task == "action_prediction" => {
                    a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect()
                }
                _ => Vec::new(),
            };
            items.push(Item {
                id: format!("{task}/{}", row.id_of("id")?),
                prompt: prompt(&task, &row)?,
                gold: gold(&task, &row)?,
                media: vec![row.image("image", crate::rows::base_dir(&path))?],
                // Every lmms-eval 0.7.3 visualwebbench_*.yaml: max_new_tokens 16.
                max_new_tokens: 16,
                options,
                task,
                extra: Default::default(),
            });
        }
    }
    Ok(items)
}

/// Scores predictions (in item order) per task with the official metrics (×100), plus
/// `overall` = mean of the seven main metrics (the paper's average column).
pub fn score(items: &[Item], preds: &[&str]) -> Result<ScoreTable, EvalError> {
    let mut table = ScoreTable::new("visualwebbench");
    let mut mains = Vec::new();
    for task in TASKS {
        let idx: Vec<usize> = (0..items.len()).filter(|&i| items[i].task == task).collect();
        if idx.is_empty() {
            continue;
        }
        match task {
            "web_caption" | "heading_ocr" | "element_ocr" => {
                let pairs: Vec<(String, String)> = idx
                    .iter()
                    .map(|&i| {
                        let p = preds[i];
                        let empty = p.is_empty() || (task == "element_ocr" && py_len(p) == 1);
                        (if empty { " ".to_string() } else { p.to_string() }, items[i].gold.as_text())
                    })
                    .collect();
                let (r1, r2, rl) = rouge::avg_f(&pairs).map_err(|(k, e)| {
                    EvalError::Score(format!(
                        "VisualWebBench {task} item {}: rouge raised \"{e}\" (the official scorer stops here too)",
                        items[idx[k]].id
                    ))
                })?;
                table.push(task, "rouge_1", r1 * 100.0, idx.len());
                table.push(task, "rouge_2", r2 * 100.0, idx.len());
                table.push(task, "rouge_l", rl * 100.0, idx.len());
                mains.push(rl * 100.0);
            }
            "webqa" => {
                let mut f1s = Vec::new();
                for &i in &idx {
                    let p = if preds[i].is_empty() { " " } else { preds[i] };
                    let golds = match &items[i].gold {
                        Gold::AnyOf(g) => g.clone(),
                        g => vec![g.as_text()],
                    };
                    // Any rouge error (or no golds) drops the sample from the mean, as `except: pass` does.
                    let scores: Result<Vec<f64>, _> = golds.iter().map(|g| rouge::rouge_1_f(p, g)).collect();
                    match scores {
                        Ok(s) if !s.is_empty() => f1s.push(s.into_iter().fold(f64::NEG_INFINITY, f64::max)),
                        _ => {}
                    }
                }
                if f1s.len() < idx.len() {
                    table.notes.push(format!(
                        "webqa: {} of {} predictions dropped from the mean (rouge could not score them, as in the official scorer)",
                        idx.len() - f1s.len(),
                        idx.len()
                    ));
                }
                if f1s.is_empty() {
                    return Err(EvalError::Score(
                        "VisualWebBench webqa: every prediction was dropped (division by zero in the official scorer)"
                            .into(),
                    ));
                }
                let f1 = f1s.iter().sum::<f64>() / f1s.len() as f64 * 100.0;
                table.push(task, "f1", f1, f1s.len());
                mains.push(f1);
            }
            _ => {
                let hits: Vec<bool> = idx
                    .iter()
                    .map(|&i| matches!(items[i].gold, Gold::Index(g) if g == visualwebbench_choice(preds[i], 8)))
                    .collect();
                let acc = hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64 * 100.0;
                table.push(task, "accuracy", acc, idx.len());
                mains.push(acc);
            }
        }
    }
    if mains.len() < TASKS.len() {
        table.notes.push(format!("overall averages the {} tasks present, not all 7", mains.len()));
    }
    let overall = mains.iter().sum::<f64>() / mains.len().max(1) as f64;
    table.scores.insert(
        0,
        crate::item::Score { task: "overall".into(), metric: "average".into(), value: overall, n: items.len() },
    );
    Ok(table)
}

//! MMBench (dev) multiple choice with CircularEval, scored as lmms-eval's `mmbench_en_dev_static`
//! (`MMBench_Evaluator.eval_result(eval_method="static")`: option/text inference, then the
//! regex extractor instead of a GPT judge).
//!
//! Data: the Hub parquet (`index, question, hint, A, B, C, D, answer, category, L2-category,
//! image, source, split`), rows with `index >= 1e6` being the circular (rotated-option) copies.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::EvalError;
use crate::item::{Gold, Item, ScoreTable};
use crate::mcq::{extract_mcq_answer, mmbench_can_infer};
use crate::pyfmt::strip;
use crate::rows::read_table_dir_split;

const SYS_PROMPT: &str = "There are several options:";
const POST_PROMPT: &str = "Answer with the option's letter from the given choices directly.";
const CIRCULAR: i64 = 1_000_000;

/// Loads MMBench rows from `dir`.
pub fn load(dir: &Path) -> Result<Vec<Item>, EvalError> {
    let mut items = Vec::new();
    for row in read_table_dir_split(dir, "dev")? {
        let index = row.int("index")?;
        let question = row.str("question")?;
        // Options present and non-empty, sorted by letter (A–E), skipping the text "nan".
        let mut options = Vec::new();
        let mut opts_text = format!("{SYS_PROMPT}\n");
        let mut choices = serde_json::Map::new();
        for l in ["A", "B", "C", "D", "E"] {
            if let Some(v) = row.get(l) {
                let t = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                if !t.is_empty() && t != "nan" {
                    opts_text.push_str(&format!("{l}. {t}\n"));
                    options.push(t.clone());
                    if l != "E" {
                        choices.insert(l.into(), Value::String(t));
                    }
                }
            }
        }
        let opts_text = opts_text.trim_end_matches('\n');
        let query = match row.opt_str("hint") {
            Some(h) if h != "nan" => format!("{h} {question} {opts_text}"),
            _ => format!("{question} {opts_text}"),
        };
        let category = row.opt_str("category").unwrap_or("").to_string();
        let l2 = row.opt_str("L2-category").or(row.opt_str("l2-category")).unwrap_or("").to_string();
        let mut extra = serde_json::Map::new();
        extra.insert("index".into(), index.into());
        extra.insert("category".into(), category.clone().into());
        extra.insert("l2_category".into(), l2.into());
        extra.insert("choices".into(), Value::Object(choices));
        items.push(Item {
            id: index.to_string(),
            task: category,
            media: vec![row.image("image", crate::rows::base_dir(dir))?],
            prompt: format!("{query}\n{POST_PROMPT}"),
            options,
            gold: Gold::Text(row.str("answer")?.to_string()),
            max_new_tokens: 1024,
            extra,
        });
    }
    Ok(items)
}

fn choices_of(it: &Item) -> Vec<(char, String)> {
    it.extra
        .get("choices")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter().filter_map(|(k, v)| Some((k.chars().next()?, v.as_str().unwrap_or("").to_string()))).collect()
        })
        .unwrap_or_default()
}

/// 1 if every circular copy of a question is answered right (`eval_sub_data`, static path).
fn circular_hit(rows: &[(&Item, &str)]) -> bool {
    let mut pred: Vec<Option<char>> = Vec::with_capacity(rows.len());
    for (it, p) in rows {
        let pr = mmbench_can_infer(p, &choices_of(it));
        if let Some(c) = pr
            && it.gold.as_text() != c.to_string()
        {
            return false;
        }
        pred.push(pr);
    }
    for ((it, p), pr) in rows.iter().zip(&pred) {
        if pr.is_some() {
            continue;
        }
        let mut letters: Vec<String> = choices_of(it).into_iter().map(|(c, _)| c.to_string()).collect();
        letters.sort();
        if letters.is_empty() {
            letters = ["A", "B", "C", "D", "E", "F", "G", "H"].iter().map(|s| s.to_string()).collect();
        }
        let refs: Vec<&str> = letters.iter().map(String::as_str).collect();
        let x = extract_mcq_answer(p, &refs);
        if x.is_empty() || x != it.gold.as_text() {
            return false;
        }
    }
    true
}

/// CircularEval accuracy ×100, overall and per category / L2 category.
pub fn score(items: &[Item], preds: &[&str]) -> Result<ScoreTable, EvalError> {
    let mut rows: Vec<(i64, &Item, String)> = Vec::with_capacity(items.len());
    for (it, p) in items.iter().zip(preds) {
        let idx = it
            .extra
            .get("index")
            .and_then(Value::as_i64)
            .ok_or_else(|| EvalError::Score(format!("MMBench item {}: no index", it.id)))?;
        rows.push((idx, it, strip(p).to_string()));
    }
    rows.sort_by_key(|r| r.0);
    let mut groups: BTreeMap<i64, Vec<(&Item, &str)>> = BTreeMap::new();
    for (idx, it, p) in &rows {
        groups.entry(idx.rem_euclid(CIRCULAR)).or_default().push((it, p.as_str()));
    }
    let mut hits: Vec<(&Item, bool)> = Vec::new();
    for (idx, it, _) in rows.iter().filter(|r| r.0 < CIRCULAR) {
        hits.push((it, circular_hit(groups.get(idx).map(Vec::as_slice).unwrap_or(&[]))));
    }
    if hits.is_empty() {
        return Err(EvalError::Score("MMBench: no main questions (index < 1000000)".into()));
    }
    let mut table = ScoreTable::new("mmbench");
    let acc = |v: &[bool]| v.iter().filter(|h| **h).count() as f64 / v.len() as f64 * 100.0;
    let all: Vec<bool> = hits.iter().map(|h| h.1).collect();
    table.push("overall", "circular_accuracy", acc(&all), all.len());
    for (key, prefix) in [("category", "category"), ("l2_category", "l2")] {
        let mut by: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for (it, h) in &hits {
            let k = it.extra.get(key).and_then(Value::as_str).unwrap_or("").to_string();
            by.entry(k).or_default().push(*h);
        }
        for (k, v) in by {
            if !k.is_empty() {
                table.push(&format!("{prefix}:{k}"), "circular_accuracy", acc(&v), v.len());
            }
        }
    }
    Ok(table)
}

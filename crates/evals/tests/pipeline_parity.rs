//! Pipeline-level parity: generated raw replies (whitespace of every Python kind, newlines,
//! reasoning blocks, option letters in many forms, numbers with units and Unicode digits, empty
//! replies) scored end to end by the official code (`fixtures/pipeline_official.py` wrote
//! `fixtures/pipeline.json`). Ours must give the same post-processed text for every reply and
//! the same scores to 1e-9. Needs no Python.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Map, Value, json};
use vldac_evals::balrog::{AgentKind, extract_action};
use vldac_evals::pyfmt::{float_repr, is_py_space, py_float};
use vldac_evals::{Bench, Gold, Item, ScoreTable, gqa, vsibench};

fn fixture() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipeline.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn bench(name: &str) -> Value {
    let v = fixture();
    let b = v["benches"][name].clone();
    assert!(b.is_object(), "pipeline.json has no {name}: regenerate it with the official checkouts (gen_fixtures.py)");
    b
}

#[track_caller]
fn close(ours: Option<f64>, official: f64, what: &str) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: missing from our table"));
    assert!((ours - official).abs() <= 1e-9, "{what}: ours {ours} vs official {official}");
}

fn item(id: String, task: &str, gold: Gold, extra: Map<String, Value>) -> Item {
    Item {
        id,
        task: task.to_string(),
        media: Vec::new(),
        prompt: String::new(),
        options: Vec::new(),
        gold,
        max_new_tokens: 16,
        extra,
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect()
}

/// Every reply post-processed as officially; returns the table of `score_replies`.
fn run(b: Bench, items: &[Item], data: &Value) -> ScoreTable {
    let replies = strs(&data["replies"]);
    let processed = strs(&data["processed"]);
    assert_eq!(replies.len(), items.len());
    for ((it, r), p) in items.iter().zip(&replies).zip(&processed) {
        assert_eq!(b.postprocess(it, r), *p, "{} item {}: reply {r:?}", b.name(), it.id);
    }
    b.score_replies(items, &replies).unwrap()
}

#[test]
fn python_whitespace_and_float_match_cpython() {
    let v = fixture();
    let spaces: HashSet<u32> = v["py_spaces"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect();
    for cp in 0..=0x10FFFFu32 {
        if let Some(c) = char::from_u32(cp) {
            assert_eq!(is_py_space(c), spaces.contains(&cp), "U+{cp:04X}");
        }
    }
    for case in v["py_float"].as_array().unwrap() {
        let t = case["text"].as_str().unwrap();
        assert_eq!(py_float(t).map(float_repr).as_deref(), case["repr"].as_str(), "float({t:?})");
    }
}

#[test]
fn vsibench_pipeline_matches_thinking_in_space() {
    let data = bench("vsibench");
    let items: Vec<Item> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            item(
                d["id"].to_string(),
                d["question_type"].as_str().unwrap(),
                Gold::Text(d["ground_truth"].as_str().unwrap().into()),
                Map::new(),
            )
        })
        .collect();
    let table = run(Bench::VsiBench, &items, &data);
    let processed = strs(&data["processed"]);
    for ((it, p), s) in items.iter().zip(&processed).zip(data["item_scores"].as_array().unwrap()) {
        let ours = vsibench::item_score(&it.task, p, &it.gold.as_text()).unwrap();
        close(Some(ours), s.as_f64().unwrap(), &format!("item {} {p:?}", it.id));
    }
    let scores = data["scores"].as_object().unwrap();
    assert_eq!(scores.len(), 9);
    for (key, v) in scores {
        let v = v.as_f64().unwrap();
        let ours = if key == "overall" {
            table.get("overall", "score")
        } else if let Some(t) = key.strip_suffix("_accuracy") {
            table.get(t, "accuracy")
        } else {
            table.get(key.strip_suffix("_MRA:.5:.95:.05").unwrap(), "MRA:.5:.95:.05")
        };
        close(ours, v, key);
    }
    let raw = Bench::VsiBench.score(&items, &strs(&data["replies"])).unwrap();
    let (r, o) = (raw.get("overall", "score").unwrap(), table.get("overall", "score").unwrap());
    eprintln!("VSI-Bench overall on the generated replies: raw text {r:.2}, official pipeline {o:.2}");
    assert!(o - r > 1.0);
}

#[test]
fn gqa_pipeline_matches_lmms_eval() {
    let data = bench("gqa");
    let items: Vec<Item> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            item(d["id"].as_str().unwrap().into(), "gqa", Gold::Text(d["answer"].as_str().unwrap().into()), Map::new())
        })
        .collect();
    assert_eq!(strs(&data["until"]), Bench::Gqa.pipeline().until);
    let table = run(Bench::Gqa, &items, &data);
    let processed = strs(&data["processed"]);
    for ((it, p), s) in items.iter().zip(&processed).zip(data["item_scores"].as_array().unwrap()) {
        let hit = gqa::normalize(p) == gqa::normalize(&it.gold.as_text());
        assert_eq!(hit as u8 as f64, s.as_f64().unwrap(), "item {} {p:?} vs {:?}", it.id, it.gold.as_text());
    }
    close(table.get("overall", "exact_match"), data["scores"]["exact_match"].as_f64().unwrap(), "exact_match");
    // What scoring the raw text (no post-processing) would have said.
    let raw = Bench::Gqa.score(&items, &strs(&data["replies"])).unwrap();
    let (r, o) = (raw.get("overall", "exact_match").unwrap(), table.get("overall", "exact_match").unwrap());
    eprintln!("GQA exact match on the generated replies: raw text {r:.2}, official pipeline {o:.2}");
    assert!(o - r > 10.0);
}

#[test]
fn mme_pipeline_matches_lmms_eval() {
    let data = bench("mme");
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let items: Vec<Item> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let qid = d["question_id"].as_str().unwrap().to_string();
            let k = seen.entry(qid.clone()).or_insert(0);
            let id = format!("{qid}#{k}");
            *k += 1;
            let mut extra = Map::new();
            extra.insert("question_id".into(), json!(qid));
            item(id, d["category"].as_str().unwrap(), Gold::Text(d["answer"].as_str().unwrap().into()), extra)
        })
        .collect();
    assert_eq!(strs(&data["until"]), Bench::Mme.pipeline().until);
    let table = run(Bench::Mme, &items, &data);
    close(
        table.get("perception", "mme_perception_score"),
        data["scores"]["mme_perception_score"].as_f64().unwrap(),
        "perception",
    );
    close(
        table.get("cognition", "mme_cognition_score"),
        data["scores"]["mme_cognition_score"].as_f64().unwrap(),
        "cognition",
    );
}

#[test]
fn mmbench_pipeline_matches_lmms_eval_static() {
    let data = bench("mmbench");
    let items: Vec<Item> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut choices = Map::new();
            for l in ["A", "B", "C", "D"] {
                if let Some(t) = d[l].as_str().filter(|t| *t != "nan") {
                    choices.insert(l.into(), json!(t));
                }
            }
            let mut extra = Map::new();
            extra.insert("index".into(), d["index"].clone());
            extra.insert("category".into(), d["category"].clone());
            extra.insert("l2_category".into(), d["L2-category"].clone());
            extra.insert("choices".into(), Value::Object(choices));
            item(
                d["index"].to_string(),
                d["category"].as_str().unwrap(),
                Gold::Text(d["answer"].as_str().unwrap().into()),
                extra,
            )
        })
        .collect();
    assert_eq!(strs(&data["until"]), Bench::MmBench.pipeline().until);
    let table = run(Bench::MmBench, &items, &data);
    let s = &data["scores"];
    close(table.get("overall", "circular_accuracy"), s["overall"].as_f64().unwrap(), "overall");
    for (prefix, key) in [("category", "category"), ("l2", "l2")] {
        for (k, v) in s[key].as_object().unwrap() {
            close(table.get(&format!("{prefix}:{k}"), "circular_accuracy"), v.as_f64().unwrap(), k);
        }
    }
}

#[test]
fn visualwebbench_pipeline_matches_lmms_eval_and_eval_utils() {
    let data = bench("visualwebbench");
    let items: Vec<Item> = data["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let task = d["task_type"].as_str().unwrap();
            let gold = match &d["answer"] {
                Value::Number(n) => Gold::Index(n.as_i64().unwrap()),
                Value::Array(a) => Gold::AnyOf(a.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
                Value::String(s) => Gold::Text(s.clone()),
                other => panic!("answer {other}"),
            };
            item(format!("{task}/{}", d["id"].as_str().unwrap()), task, gold, Map::new())
        })
        .collect();
    let table = run(Bench::VisualWebBench, &items, &data);
    let mut n = 0;
    for (task, metrics) in data["scores"].as_object().unwrap() {
        for (metric, v) in metrics.as_object().unwrap() {
            close(table.get(task, metric), v.as_f64().unwrap(), &format!("{task}/{metric}"));
            n += 1;
        }
    }
    assert_eq!(n, 3 * 3 + 1 + 3, "all 7 tasks' metrics compared");
}

#[test]
fn balrog_replies_become_the_official_actions() {
    let data = bench("balrog");
    let space = strs(&data["action_space"]);
    let default = data["default_action"].as_str().unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for c in cases {
        let kind = if c["kind"] == "naive" { AgentKind::Naive } else { AgentKind::Cot };
        let reply = c["reply"].as_str().unwrap();
        let cand = extract_action(kind, reply);
        assert_eq!(cand, c["candidate"].as_str().unwrap(), "{kind:?} {reply:?}");
        let action = if space.contains(&cand.as_str()) { cand.as_str() } else { default };
        assert_eq!(action, c["action"].as_str().unwrap(), "{kind:?} {reply:?}");
    }
}

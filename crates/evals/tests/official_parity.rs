//! Our scorers against the numbers the official Python scorers produced on the same fixture data
//! and predictions (`fixtures/gen_fixtures.py` wrote `expected.json`), at the level of the task
//! functions (predictions as the task's `process_results` receives them). Tolerance 1e-9.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vldac_evals::balrog;
use vldac_evals::{Bench, ScoreTable};

fn fixture(bench: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(bench)
}

fn expected(bench: &str) -> Value {
    let p = fixture(bench).join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Task-function level: the fixture predictions go to the task's scorer as they are (the
/// official scorers were called on them directly). `tests/pipeline_parity.rs` checks the whole
/// pipeline from raw replies.
fn score(bench: &str) -> ScoreTable {
    let b = Bench::from_name(bench).unwrap();
    let dir = fixture(bench);
    let items = b.load(&dir.join("data"), Default::default()).unwrap();
    let preds = vldac_evals::read_predictions(&dir.join("predictions.jsonl")).unwrap();
    let p = vldac_evals::item::predictions_for(&items, &preds).unwrap();
    b.score(&items, &p).unwrap()
}

#[track_caller]
fn close(ours: Option<f64>, official: f64, what: &str) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: missing from our table"));
    assert!((ours - official).abs() <= 1e-9, "{what}: ours {ours} vs official {official}");
}

#[test]
fn vsibench_matches_thinking_in_space() {
    let exp = expected("vsibench");
    let table = score("vsibench");
    let scores = exp["scores"].as_object().unwrap();
    assert_eq!(scores.len(), 9, "overall + 8 question-type groups");
    for (key, v) in scores {
        let v = v.as_f64().unwrap();
        if key == "overall" {
            close(table.get("overall", "score"), v, key);
        } else if let Some(t) = key.strip_suffix("_accuracy") {
            close(table.get(t, "accuracy"), v, key);
        } else {
            let t = key.strip_suffix("_MRA:.5:.95:.05").unwrap();
            close(table.get(t, "MRA:.5:.95:.05"), v, key);
        }
    }
    // Per-item scores too (they pin the MRA threshold quirk and the answer parsing).
    let items = Bench::VsiBench.load(&fixture("vsibench").join("data"), Default::default()).unwrap();
    let preds = vldac_evals::read_predictions(&fixture("vsibench").join("predictions.jsonl")).unwrap();
    for it in &items {
        let official = exp["per_item"][&it.id].as_f64().unwrap();
        let ours = vldac_evals::vsibench::item_score(&it.task, &preds[&it.id].prediction, &it.gold.as_text()).unwrap();
        close(Some(ours), official, &format!("item {}", it.id));
    }
}

#[test]
fn visualwebbench_matches_official_eval_utils() {
    let exp = expected("visualwebbench");
    let table = score("visualwebbench");
    let mut n = 0;
    for (task, metrics) in exp["scores"].as_object().unwrap() {
        for (metric, v) in metrics.as_object().unwrap() {
            close(table.get(task, metric), v.as_f64().unwrap(), &format!("{task}/{metric}"));
            n += 1;
        }
    }
    assert_eq!(n, 3 * 3 + 1 + 3, "all 7 tasks' metrics compared");
    // The '.' webqa prediction is dropped from the mean, as officially.
    assert!(table.notes.iter().any(|x| x.contains("webqa: 1 of 3")), "{:?}", table.notes);
}

#[test]
fn mmbench_matches_lmms_eval_static_circular_eval() {
    let exp = expected("mmbench");
    let table = score("mmbench");
    close(table.get("overall", "circular_accuracy"), exp["scores"]["overall"].as_f64().unwrap(), "overall");
    for (prefix, key) in [("category", "category"), ("l2", "l2")] {
        for (k, v) in exp["scores"][key].as_object().unwrap() {
            close(table.get(&format!("{prefix}:{k}"), "circular_accuracy"), v.as_f64().unwrap(), k);
        }
    }
}

#[test]
fn mme_matches_lmms_eval() {
    let exp = expected("mme");
    let table = score("mme");
    close(
        table.get("perception", "mme_perception_score"),
        exp["scores"]["mme_perception_score"].as_f64().unwrap(),
        "P",
    );
    close(table.get("cognition", "mme_cognition_score"), exp["scores"]["mme_cognition_score"].as_f64().unwrap(), "C");
}

#[test]
fn balrog_summary_matches_collect_and_summarize_results() {
    let exp = expected("balrog");
    let s = balrog::summarize(&fixture("balrog").join("data")).unwrap();
    let e = &exp["scores"];
    close(Some(s.average_progress), e["average_progress"].as_f64().unwrap(), "average_progress");
    close(Some(s.standard_error), e["standard_error"].as_f64().unwrap(), "standard_error");
    assert_eq!(s.total_input_tokens, e["total_input_tokens"].as_i64().unwrap());
    assert_eq!(s.environments.len(), exp["env_summaries"].as_object().unwrap().len());
    for (env, es) in exp["env_summaries"].as_object().unwrap() {
        let ours = &s.environments[env];
        for k in ["progression_percentage", "standard_error", "average_steps"] {
            let v = serde_json::to_value(ours).unwrap()[k].as_f64();
            close(v, es[k].as_f64().unwrap(), &format!("{env}/{k}"));
        }
        assert_eq!(ours.episodes_played as u64, es["episodes_played"].as_u64().unwrap());
        for (task, ts) in es["tasks"].as_object().unwrap() {
            let t = &ours.tasks[task];
            close(Some(t.progression_percentage), ts["progression_percentage"].as_f64().unwrap(), task);
            close(Some(t.standard_error), ts["standard_error"].as_f64().unwrap(), task);
        }
    }
}

/// Function-level parity on random and hand-picked strings (`fixtures/cases.json`).
mod cases {
    use super::*;
    use vldac_evals::{mcq, mme, rouge, vsibench};

    fn cases(name: &str) -> Vec<Value> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v[name].as_array().unwrap().clone()
    }

    #[test]
    fn rouge_matches_rouge_1_0_1() {
        let cs = cases("rouge");
        assert!(cs.len() >= 400);
        let mut errors = 0;
        for c in cs {
            let (h, r) = (c["hyp"].as_str().unwrap(), c["ref"].as_str().unwrap());
            match rouge::score(h, r) {
                Err(e) => {
                    assert_eq!(c["error"].as_str(), Some(e.to_string().as_str()), "{h:?} / {r:?}");
                    errors += 1;
                }
                Ok(s) => {
                    for (k, prf) in [("r1", s.rouge_1), ("r2", s.rouge_2), ("rl", s.rouge_l)] {
                        for (stat, v) in [("f", prf.f), ("p", prf.p), ("r", prf.r)] {
                            close(Some(v), c[k][stat].as_f64().unwrap(), &format!("{k}.{stat} of {h:?} / {r:?}"));
                        }
                    }
                }
            }
        }
        assert!(errors > 0, "the cases exercise the empty-hypothesis error");
    }

    #[test]
    fn visualwebbench_choice_parser_matches() {
        for c in cases("vwb_choice") {
            let t = c["text"].as_str().unwrap();
            assert_eq!(mcq::visualwebbench_choice(t, 8), c["index"].as_i64().unwrap(), "{t:?}");
        }
    }

    #[test]
    fn mcq_extract_matches() {
        for c in cases("mcq_extract") {
            let t = c["text"].as_str().unwrap();
            assert_eq!(mcq::extract_mcq_answer(t, &["A", "B", "C", "D"]), c["answer"].as_str().unwrap(), "{t:?}");
        }
    }

    #[test]
    fn mmbench_can_infer_matches() {
        let ch: Vec<(char, String)> = [('A', "cat"), ('B', "the mat"), ('C', "yes"), ('D', "3")]
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
        for c in cases("mmbench_can_infer") {
            let t = c["text"].as_str().unwrap();
            let ours = mcq::mmbench_can_infer(t, &ch).map(|c| c.to_string()).unwrap_or_default();
            assert_eq!(ours, c["answer"].as_str().unwrap(), "{t:?}");
        }
    }

    #[test]
    fn mme_parse_matches() {
        for c in cases("mme_parse") {
            let t = c["text"].as_str().unwrap();
            assert_eq!(mme::parse_pred_ans(t), c["label"].as_str().unwrap(), "{t:?}");
        }
    }

    #[test]
    fn vsibench_item_scores_match() {
        for c in cases("vsibench_item") {
            let t = c["text"].as_str().unwrap();
            let qt = if c.get("mca").is_some() { "route_planning" } else { "object_abs_distance" };
            let ours = vsibench::item_score(qt, t, c["gt"].as_str().unwrap()).unwrap();
            close(Some(ours), c["score"].as_f64().unwrap(), &format!("{qt} {t:?}"));
        }
    }
}

#[test]
fn mmbench_opencompass_tsv_scores_the_same() {
    let exp = expected("mmbench");
    let dir = fixture("mmbench");
    // No prediction of this fixture changes under the pipeline's post-processing.
    let table = Bench::MmBench.score_file(&dir.join("data_tsv"), &dir.join("predictions.jsonl")).unwrap();
    close(table.get("overall", "circular_accuracy"), exp["scores"]["overall"].as_f64().unwrap(), "overall (tsv)");
    let items = Bench::MmBench.load(&dir.join("data_tsv"), Default::default()).unwrap();
    let pq = Bench::MmBench.load(&dir.join("data"), Default::default()).unwrap();
    let prompts = |v: &[vldac_evals::Item]| v.iter().map(|i| (i.id.clone(), i.prompt.clone())).collect::<Vec<_>>();
    assert_eq!(prompts(&items), prompts(&pq));
    assert!(matches!(
        vldac_evals::runner::request_for(&items[0]).unwrap().messages[0].visuals[0],
        vldac_evals::Visual::Image(_)
    ));
}

#[test]
fn gqa_matches_lmms_eval_exact_match() {
    let exp = expected("gqa");
    let table = score("gqa");
    close(table.get("overall", "exact_match"), exp["scores"]["exact_match"].as_f64().unwrap(), "exact_match");
    let items = Bench::Gqa.load(&fixture("gqa").join("data"), Default::default()).unwrap();
    let preds = vldac_evals::read_predictions(&fixture("gqa").join("predictions.jsonl")).unwrap();
    for it in &items {
        let ours =
            vldac_evals::gqa::normalize(&preds[&it.id].prediction) == vldac_evals::gqa::normalize(&it.gold.as_text());
        assert_eq!(ours as u8 as f64, exp["per_item"][&it.id].as_f64().unwrap(), "item {}", it.id);
    }
}

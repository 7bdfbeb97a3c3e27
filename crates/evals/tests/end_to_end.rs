//! End-to-end evals on the fixtures with tiny deterministic models: loading, media decoding,
//! batching, post-processing, resumable prediction files, scoring; and BALROG episodes.

use std::path::{Path, PathBuf};

use vldac_core::{Action, ActionSpace, EnvError, EnvSpec, Environment, Frame, Info, Observation, Step};
use vldac_evals::balrog::{self, AgentConfig, AgentKind, CoreEnv};
use vldac_evals::runner::{RunOptions, run_eval};
use vldac_evals::{Bench, LoadOptions, Model, ModelError, Request, Role, Visual, read_predictions};

fn fixture(bench: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(bench).join("data")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vldac-evals-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Answers from what it sees: the number of video frames for numeric questions, and for
/// multiple choice the letter given by the first frame's red channel (frames encode their index).
/// Optionally fails on a given call, to test resuming.
struct FrameCounter {
    calls: usize,
    fail_on_call: Option<usize>,
    batch_sizes: Vec<usize>,
}

impl Model for FrameCounter {
    fn name(&self) -> String {
        "frame-counter".into()
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        self.calls += 1;
        if self.fail_on_call == Some(self.calls) {
            return Err(ModelError("simulated out-of-memory".into()));
        }
        self.batch_sizes.push(batch.len());
        Ok(batch
            .iter()
            .map(|r| {
                let m = &r.messages[0];
                assert_eq!(m.role, Role::User);
                let frames = match &m.visuals[..] {
                    [Visual::Video(f)] => f,
                    other => panic!("expected one video, got {other:?}"),
                };
                if m.text.contains("Options:") {
                    let red = frames[1].get(0, 0).unwrap()[0];
                    ["A", "B. x", "c", "(D)"][(red / 20) as usize % 4].to_string()
                } else {
                    format!("{} meters", frames.len())
                }
            })
            .collect())
    }
}

#[test]
fn vsibench_run_samples_frames_batches_resumes_and_scores() {
    let items = Bench::VsiBench.load(&fixture("vsibench"), LoadOptions { frames: 4, ..Default::default() }).unwrap();
    assert_eq!(items.len(), 18);
    // The reference sampling of 4 of 10 frames is np.linspace(0, 9, 4, dtype=int) = [0, 3, 6, 9].
    let req = vldac_evals::runner::request_for(&items[0]).unwrap();
    let Visual::Video(frames) = &req.messages[0].visuals[0] else { panic!() };
    let reds: Vec<u8> = frames.iter().map(|f| f.get(0, 0).unwrap()[0]).collect();
    assert_eq!(reds, vec![0, 60, 120, 180]);

    let out = tmp("vsi");
    let opts = RunOptions { batch_size: 5, out_dir: out.clone(), progress: false };
    let mut failing = FrameCounter { calls: 0, fail_on_call: Some(2), batch_sizes: vec![] };
    let err = run_eval(Bench::VsiBench, &items, &mut failing, &opts).unwrap_err();
    assert!(err.to_string().contains("simulated out-of-memory"));
    assert_eq!(read_predictions(&out.join("predictions.jsonl")).unwrap().len(), 5, "first batch kept");

    let mut model = FrameCounter { calls: 0, fail_on_call: None, batch_sizes: vec![] };
    let summary = run_eval(Bench::VsiBench, &items, &mut model, &opts).unwrap();
    assert_eq!((summary.resumed, summary.generated), (5, 13));
    assert_eq!(model.batch_sizes, vec![5, 5, 3]);
    let preds = read_predictions(&out.join("predictions.jsonl")).unwrap();
    assert_eq!(preds.len(), 18);
    assert_eq!(preds["0"].prediction, "4 meters");
    // Scoring the written file gives the run's table, and it is what the official rules say:
    // counting gt 4 → "4 meters" parses to 4 → MRA 1.
    let again = Bench::VsiBench.score_file(&fixture("vsibench"), &out.join("predictions.jsonl")).unwrap();
    assert_eq!(again, summary.table);
    assert_eq!(vldac_evals::vsibench::item_score("object_counting", "4 meters", "4").unwrap(), 1.0);
    assert!(std::fs::read_to_string(out.join("scores.txt")).unwrap().contains("overall"));

    // A finished run resumes to nothing.
    let s2 = run_eval(Bench::VsiBench, &items, &mut model, &opts).unwrap();
    assert_eq!((s2.resumed, s2.generated), (18, 0));
    std::fs::remove_dir_all(out).ok();
}

/// Checks the screenshot it is given and answers in each task's requested format.
struct WebAnswerer;

impl Model for WebAnswerer {
    fn name(&self) -> String {
        "web-answerer".into()
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        Ok(batch
            .iter()
            .map(|r| {
                let m = &r.messages[0];
                let [Visual::Image(img)] = &m.visuals[..] else { panic!("one image expected") };
                assert_eq!((img.width(), img.height()), (80, 50));
                let t = &m.text;
                if t.contains("<meta name=\"description\"") {
                    "<meta name=\"description\" content=\"Acme Hardware sells tools\">\n\nHope this helps.".to_string()
                } else if t.contains("OCR") {
                    "\u{3000}Add to cart\n".to_string()
                } else if t.contains("single uppercase letter") {
                    "<think>the search box</think> B\n".to_string()
                } else {
                    "Welcome to Acme".to_string()
                }
            })
            .collect())
    }
}

#[test]
fn visualwebbench_run_postprocesses_like_lmms_eval() {
    let items = Bench::VisualWebBench.load(&fixture("visualwebbench"), LoadOptions::default()).unwrap();
    assert_eq!(items.len(), 20);
    let ocr = items.iter().find(|i| i.id == "element_ocr/element_ocr_0").unwrap();
    assert!(ocr.prompt.contains("bounding box is [0.125, 0.2, 0.5, 0.4]."), "{}", ocr.prompt);
    let ap = items.iter().find(|i| i.task == "action_prediction").unwrap();
    assert!(ap.prompt.contains("['Cart - Acme', 'Login page', \"Jane's blog\", 'Search results']"), "{}", ap.prompt);

    let out = tmp("vwb");
    let opts = RunOptions { batch_size: 8, out_dir: out.clone(), progress: false };
    let s = run_eval(Bench::VisualWebBench, &items, &mut WebAnswerer, &opts).unwrap();
    let preds = read_predictions(&out.join("predictions.jsonl")).unwrap();
    // lmms-eval's pipeline: cut at "\n\n", reasoning blocks removed, stripped; the raw reply is kept.
    let cap = &preds["web_caption/web_caption_0"];
    assert_eq!(cap.prediction, "<meta name=\"description\" content=\"Acme Hardware sells tools\">");
    assert!(cap.response.as_deref().unwrap().ends_with("Hope this helps."));
    assert_eq!(preds["element_ocr/element_ocr_0"].prediction, "Add to cart");
    assert_eq!(preds["element_ground/element_ground_0"].prediction, "B");
    assert!(items.iter().all(|i| i.max_new_tokens == 16), "every visualwebbench_*.yaml: 16 new tokens");
    // Element OCR item 0 is an exact match; "B" is right for 2 of 3 element_ground items.
    assert!((s.table.get("element_ground", "accuracy").unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert!(s.table.get("element_ocr", "rouge_l").unwrap() > 30.0);
    std::fs::remove_dir_all(out).ok();
}

/// Always answers "yes" / "A" — checks MME and MMBench run through images and score.
struct Constant(&'static str);

impl Model for Constant {
    fn name(&self) -> String {
        format!("constant-{}", self.0)
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        for r in batch {
            assert!(matches!(r.messages[0].visuals[..], [Visual::Image(_)]));
        }
        Ok(vec![format!(" {} ", self.0); batch.len()])
    }
}

#[test]
fn mme_and_mmbench_runs_score() {
    let items = Bench::Mme.load(&fixture("mme"), LoadOptions::default()).unwrap();
    let out = tmp("mme");
    let s = run_eval(
        Bench::Mme,
        &items,
        &mut Constant("Yes"),
        &RunOptions { batch_size: 3, out_dir: out.clone(), progress: false },
    )
    .unwrap();
    // "Yes" everywhere: every image has one yes and one no → acc 50, acc+ 0 → 50 per category.
    assert_eq!(s.table.get("perception", "mme_perception_score"), Some(100.0));
    assert_eq!(s.table.get("cognition", "mme_cognition_score"), Some(50.0));
    std::fs::remove_dir_all(&out).ok();

    let items = Bench::MmBench.load(&fixture("mmbench"), LoadOptions::default()).unwrap();
    let s = run_eval(
        Bench::MmBench,
        &items,
        &mut Constant("A"),
        &RunOptions { batch_size: 4, out_dir: out.clone(), progress: false },
    )
    .unwrap();
    // A constant letter can never pass CircularEval (the right letter moves with rotation).
    assert_eq!(s.table.get("overall", "circular_accuracy"), Some(0.0));
    std::fs::remove_dir_all(out).ok();
}

// --- BALROG ---------------------------------------------------------------------------------

/// A corridor: start at 0, reward 1 on reaching cell 3.
struct Corridor {
    spec: EnvSpec,
    pos: i32,
}

impl Corridor {
    fn new() -> Self {
        Corridor {
            spec: EnvSpec {
                id: "Corridor-v0".into(),
                action_space: ActionSpace::labelled(["go left", "go right"]),
                max_episode_steps: Some(10),
                max_image_obs_len: 1,
            },
            pos: 0,
        }
    }
    fn obs(&self) -> Observation {
        Observation::image(Frame::filled(4, 4, [self.pos as u8 * 50, 0, 0]))
            .with_task("reach the end of the corridor")
            .with_text(format!("You are at cell {}.", self.pos))
    }
}

impl Environment for Corridor {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn reset(&mut self, _seed: Option<u64>) -> Result<(Observation, Info), EnvError> {
        self.pos = 0;
        Ok((self.obs(), Info::new()))
    }
    fn step(&mut self, action: &Action) -> Result<Step, EnvError> {
        self.pos += if action == &Action::Discrete(1) { 1 } else { -1 };
        let done = self.pos >= 3;
        Ok(Step {
            obs: self.obs(),
            reward: if done { 1.0 } else { 0.0 },
            terminated: done,
            truncated: false,
            info: Info::new(),
        })
    }
}

/// Replies in the agent's format; the first reply is invalid to exercise the fallback.
struct Walker {
    cot: bool,
    seen: Vec<Request>,
}

impl Model for Walker {
    fn name(&self) -> String {
        "walker".into()
    }
    fn generate(&mut self, batch: &[Request]) -> Result<Vec<String>, ModelError> {
        self.seen.extend(batch.iter().cloned());
        let first = self.seen.len() == 1;
        Ok(batch
            .iter()
            .map(|_| match (first, self.cot) {
                (true, _) => "fly".to_string(),
                (false, false) => "go right.".to_string(),
                (false, true) => "The end is to the right. ACTION: go right".to_string(),
            })
            .collect())
    }
}

#[test]
fn balrog_episodes_with_naive_and_cot_agents() {
    let out = tmp("balrog");
    for (kind, cot) in [(AgentKind::Naive, false), (AgentKind::Cot, true)] {
        let mut env = CoreEnv::new(Corridor::new(), 10).unwrap().with_default_action("go left").unwrap();
        assert!(CoreEnv::new(Corridor::new(), 10).unwrap().with_default_action("jump").is_err());
        let mut model = Walker { cot, seen: vec![] };
        let cfg = AgentConfig { kind, ..Default::default() };
        let task = format!("corridor-{kind:?}");
        let log = balrog::run_episode(&mut env, &mut model, &cfg, "toy", &task, 0, 1, &out).unwrap();
        // "fly" → default "go left" (to -1), then 4 × "go right" reaches 3.
        assert_eq!(log["num_steps"], 5);
        assert_eq!(log["progression"], 1.0);
        assert_eq!(log["failed_candidates"][0], "fly");
        let second = &model.seen[1].messages;
        assert_eq!(
            second[0].text.lines().next().unwrap(),
            "You are an agent playing Corridor-v0. Your goal: reach the end of the corridor."
        );
        let last = second.last().unwrap();
        assert!(last.text.starts_with("Current Observation:\n\n\nYour previous output did not contain a valid action. Defaulted to action: go left"), "{}", last.text);
        assert!(last.text.contains("Image observation provided."));
        assert!(matches!(last.visuals[..], [Visual::Image(_)]));
        let instr = if cot { balrog::COT_INSTRUCTION } else { balrog::NAIVE_INSTRUCTION };
        assert!(last.text.ends_with(instr));
        // The assistant turn in history is the raw candidate (naive) or the previous plan (CoT).
        let asst = &second[second.len() - 2];
        assert_eq!(asst.role, Role::Assistant);
        assert_eq!(asst.text, if cot { "Previous plan:\nfly" } else { "fly" });
    }
    let s = balrog::write_summary(&out).unwrap();
    assert_eq!(s.average_progress, 100.0);
    assert_eq!(s.environments["toy"].episodes_played, 2);
    // The summary files are skipped when aggregating again, as BALROG skips them.
    assert!(out.join("summary.json").exists() && out.join("toy/toy_summary.json").exists());
    assert_eq!(balrog::summarize(&out).unwrap(), s);
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn data_can_be_one_table_file() {
    let file = fixture("vsibench").join("test-00000-of-00001.parquet");
    let items = Bench::VsiBench.load(&file, LoadOptions { frames: 2, ..Default::default() }).unwrap();
    assert_eq!(items.len(), 18);
    assert!(vldac_evals::runner::request_for(&items[0]).is_ok(), "videos resolve next to the file");
}

#[test]
fn balrog_suite_resumes_from_existing_logs() {
    let out = tmp("balrog-suite");
    let mut model = Walker { cot: false, seen: vec![] };
    let cfg = AgentConfig::default();
    let make = |_: &str| CoreEnv::new(Corridor::new(), 10);
    let s = balrog::run_suite(make, &mut model, &cfg, "toy", &["a", "b"], 2, 0, &out).unwrap();
    assert_eq!(s.environments["toy"].episodes_played, 4);
    let calls = model.seen.len();
    std::fs::remove_file(out.join("toy/b/b_run_01.json")).unwrap();
    let s = balrog::run_suite(make, &mut model, &cfg, "toy", &["a", "b"], 2, 0, &out).unwrap();
    assert_eq!(s.environments["toy"].episodes_played, 4);
    assert_eq!(model.seen.len() - calls, 3, "only the missing episode was replayed (3 steps right)");
    std::fs::remove_dir_all(out).ok();
}

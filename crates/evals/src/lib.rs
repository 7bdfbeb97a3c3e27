//! # vldac-evals
//!
//! Benchmarks for measuring what VL-DAC training transfers, each loaded from its official
//! on-disk format and a model's raw reply scored exactly as the official pipeline scores it end
//! to end: the harness's reply post-processing ([`pipeline`]), the task's scorer, the aggregation
//! (locked by replies and fixtures the official code scored, see `fixtures/gen_fixtures.py`):
//!
//! * [`vsibench`]: VSI-Bench (multiple-choice accuracy and Mean Relative Accuracy);
//! * [`visualwebbench`]: VisualWebBench's 7 tasks (ROUGE-1/2/L of `rouge==1.0.1`, F1, accuracy);
//! * [`mmbench`]: MMBench CircularEval (static extraction), [`mme`]: MME perception/cognition,
//!   [`gqa`]: GQA exact match;
//! * [`balrog`]: BALROG's progression aggregation and its naive / chain-of-thought agent
//!   prompting over any [`vldac_core::Environment`]; [`balrog_bridge`]: Crafter and NetHack
//!   through their Python packages (`crafter`, `balrog-nle`) with BALROG's observations.
//!
//! Inference goes through the [`Model`] trait (batched chat requests with images or videos);
//! [`runner`] batches items, appends predictions to a JSONL file, resumes from it, and scores.

pub mod balrog;
pub mod balrog_bridge;
pub mod bench;
pub mod gqa;
pub mod item;
pub mod mcq;
pub mod media;
pub mod mmbench;
pub mod mme;
pub mod model;
pub mod pipeline;
pub mod pyfmt;
pub mod rouge;
pub mod rows;
pub mod runner;
pub mod visualwebbench;
pub mod vsibench;

pub use bench::{Bench, LoadOptions};
pub use item::{Gold, Item, PredictionRecord, Score, ScoreTable, read_predictions};
pub use media::{FrameSampling, Media};
pub use model::{ChatMessage, GenerationConfig, Model, ModelError, Request, Role, TokenUsage, Visual};
pub use pipeline::Pipeline;
pub use runner::{RunOptions, RunSummary, run_eval};

/// Every failure names the file, row, field or item it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Io(String),
    /// The benchmark data does not have the expected schema.
    #[error("{0}")]
    Data(String),
    /// An image or video could not be read.
    #[error("{0}")]
    Media(String),
    /// The official scorer would fail on these predictions (the message says why).
    #[error("{0}")]
    Score(String),
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error("{0}")]
    Usage(String),
    /// An environment (or its Python bridge) failed; the message names it.
    #[error("{0}")]
    Env(String),
}

//! # vldac-train
//!
//! The trainer: Qwen2-VL (vldac-vlm) as a VL-DAC actor-critic (vldac-dac) in any vldac-core
//! environment, with batched rollouts, configs with `--set` overrides, atomic checkpoints and
//! exact resume, metrics (JSONL + TensorBoard) and learning-curve plots.

pub mod checkpoint;
pub mod config;
pub mod dist;
pub mod grammar;
pub mod metrics;
pub mod overrides;
pub mod perception;
pub mod plot;
pub mod policy;
pub mod trainer;

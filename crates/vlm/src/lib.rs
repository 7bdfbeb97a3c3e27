//! Qwen2-VL in burn: load HF checkpoints (or build a small random model in code), preprocess
//! images and chat prompts exactly like transformers, run the vision tower and the M-RoPE
//! language model, generate with a KV cache, and train LoRA adapters plus a value head.
//!
//! Entry points: [`Vlm`] (model + tokenizer + image processor), [`Qwen2Vl`] (the burn module),
//! [`generate`], [`score`], [`lora`], [`ValueHead`].

pub mod bench;
pub mod config;
pub mod cpu_bf16;
pub mod device;
pub mod error;
pub mod hf_files;
pub mod host_alloc;
pub mod image_proc;
pub mod model;
pub mod nn;
pub mod rope;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use config::{Qwen2VlConfig, TextConfig, VisionConfig};
pub use device::{DeviceChoice, DeviceError, Placement, Precision};
pub use error::{Result, VlmError};
pub use hf_files::{GenerationDefaults, ModelDirs};
pub use image_proc::{ImageProcessor, PixelValues, smart_resize};
pub use model::{Batch, Forward, Prompt, Qwen2Vl};
pub use text::KvCache;
pub use tokenizer::{ChatMessage, Content, Qwen2VlTokenizer, Role};
pub use weights::{HostTensor, RandomWeights, RawTensor, SafetensorsWeights, SaveDtype, TensorSink, WeightSource};

pub mod generate;
pub mod lora;
pub mod pipeline;
pub mod score;
pub mod value_head;

pub use generate::{DecodeOptions, DecodeRules, FreeDecoding, GenerateConfig, Generation, generate, generate_with};
pub use lora::{LoraConfig, apply_lora, apply_lora_seeded, load_peft_adapter, merge_lora, save_peft_adapter};
pub use pipeline::Vlm;
pub use score::{ScoreOutput, score, score_with};
pub use value_head::{ValueHead, ValueHeadConfig};

//! The host all-reduce of one optimiser step's gradients at the LoRA sizes of Qwen2-VL-2B/7B:
//!
//! ```text
//! cargo build --release -p vldac-train --features mpi --example allreduce_bench
//! mpirun -np 2 target/release/examples/allreduce_bench [REPS]
//! ```
//!
//! Trainable parameters are counted from the official hub configs (crates/vlm/fixtures): LoRA of
//! rank 8 on q/k/v/o/gate/up/down of every decoder layer, plus the configs' value head
//! (hidden → 3072 → 2048 → 1). Each size is reduced `REPS` times (default 10) as
//! `Collective::all_reduce_sum_f32` does in training; rank 0 prints the median and the rate.

use std::time::Instant;

use anyhow::{Context, Result};
use vldac_train::dist;

fn lora_params(cfg: &serde_json::Value, rank: u64) -> Result<(u64, u64)> {
    // transformers ≥ 5 nests the text fields under text_config.
    let get = |k: &str| {
        cfg.get(k)
            .or_else(|| cfg.get("text_config").and_then(|t| t.get(k)))
            .and_then(|v| v.as_u64())
            .with_context(|| format!("config field {k}"))
    };
    let (h, i, layers) = (get("hidden_size")?, get("intermediate_size")?, get("num_hidden_layers")?);
    let (heads, kv) = (get("num_attention_heads")?, get("num_key_value_heads")?);
    let kv_dim = h / heads * kv;
    // LoRA on a d_in → d_out projection: A [r, d_in] + B [d_out, r].
    let lora = |d_in: u64, d_out: u64| rank * (d_in + d_out);
    let per_layer = lora(h, h) + 2 * lora(h, kv_dim) + lora(h, h) + 2 * lora(h, i) + lora(i, h);
    Ok((layers * per_layer, h))
}

fn value_head(h: u64) -> u64 {
    let dims = [h, 3072, 2048, 1];
    dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

fn main() -> Result<()> {
    let comm = dist::init()?;
    let reps: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let hub = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vlm/fixtures/hf_configs/hub");
    for model in ["Qwen2-VL-2B-Instruct", "Qwen2-VL-7B-Instruct"] {
        let path = hub.join(model).join("config.json");
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).with_context(|| path.display().to_string())?)?;
        let (lora, h) = lora_params(&cfg, 8)?;
        for (what, n) in [("LoRA r=8", lora), ("LoRA r=8 + value head", lora + value_head(h))] {
            let n = n as usize;
            let mut buf: Vec<f32> = (0..n).map(|k| (k % 97) as f32 * 1e-3).collect();
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                comm.barrier()?;
                let t = Instant::now();
                comm.all_reduce_sum_f32(&mut buf)?;
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            if comm.rank() == 0 {
                println!(
                    "{model}: {what} = {n} f32 ({:.1} MiB); {} ranks: median {:.1} ms per all-reduce, min {:.1} ms, \
                     {reps} reps",
                    n as f64 * 4.0 / (1 << 20) as f64,
                    comm.size(),
                    med * 1e3,
                    times[0] * 1e3,
                );
            }
        }
    }
    Ok(())
}

//! Where a step's time goes: the dynamics alone (a run of steps without rendering), then rendering
//! alone (the last state, again and again).
//!
//! `cargo run --release -p vldac-miniworld --example parts -- MiniWorld-OneRoom-v0 80x60 5000`

use std::time::Instant;

use vldac_core::Environment;
use vldac_miniworld::{MiniWorld, MiniWorldConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let id = args.get(1).map_or("MiniWorld-OneRoom-v0", String::as_str);
    let size = args.get(2).map_or("80x60", String::as_str);
    let steps: usize = args.get(3).map_or(Ok(5_000), |s| s.parse())?;
    let (w, h) = size.split_once('x').ok_or("size must be WxH")?;
    let cfg = MiniWorldConfig { obs_width: w.parse()?, obs_height: h.parse()?, ..MiniWorldConfig::default() };
    let mut env = MiniWorld::with_config(id, cfg)?;
    let pattern = [2usize, 2, 0, 2, 2, 1, 2, 3, 2, 1];
    env.reset(Some(0))?;
    let t0 = Instant::now();
    for k in 0..steps {
        if env.sim_step(pattern[k % pattern.len()])?.terminated {
            env.reset(None)?;
        }
    }
    let sim = t0.elapsed().as_secs_f64() / steps as f64;
    let t0 = Instant::now();
    let mut sum = 0u64;
    for _ in 0..steps {
        sum += env.render_obs().pixels()[0] as u64;
    }
    let render = t0.elapsed().as_secs_f64() / steps as f64;
    println!("{id} {size}: dynamics {:.1} µs, render {:.1} µs per step ({sum})", sim * 1e6, render * 1e6);
    Ok(())
}

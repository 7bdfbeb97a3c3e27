//! Step+render throughput of one env, for `bench/peer_speed.py`: prints
//! `{"steps_per_s": ..., "cpu_us_per_step": ...}` for the timed loop only (after a warm-up, so
//! texture generation and start-up are not counted, as they are not on the peer's side).
//!
//! `cargo run --release -p vldac-miniworld --example speed -- MiniWorld-OneRoom-v0 80x60 20000`

use std::time::Instant;

use vldac_core::{Action, Environment};
use vldac_miniworld::{MiniWorld, MiniWorldConfig};

/// This thread's CPU time in ns (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let id = args.get(1).map_or("MiniWorld-OneRoom-v0", String::as_str);
    let size = args.get(2).map_or("80x60", String::as_str);
    let steps: usize = args.get(3).map_or(Ok(20_000), |s| s.parse())?;
    let (w, h) = size.split_once('x').ok_or("size must be WxH")?;
    let cfg = MiniWorldConfig { obs_width: w.parse()?, obs_height: h.parse()?, ..MiniWorldConfig::default() };
    let mut env = MiniWorld::with_config(id, cfg)?;
    let pattern = [2usize, 2, 0, 2, 2, 1, 2, 3, 2, 1];
    env.reset(Some(0))?;
    for k in 0..200 {
        if env.step(&Action::Discrete(pattern[k % pattern.len()]))?.done() {
            env.reset(None)?;
        }
    }
    env.reset(Some(0))?;
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    for k in 0..steps {
        if env.step(&Action::Discrete(pattern[k % pattern.len()]))?.done() {
            env.reset(None)?;
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let cpu = match (c0, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
        _ => dt,
    };
    println!(
        "{{\"env\": \"{id}\", \"size\": \"{size}\", \"steps\": {steps}, \"steps_per_s\": {:.1}, \"cpu_us_per_step\": {:.2}}}",
        steps as f64 / dt,
        cpu / steps as f64 * 1e6
    );
    Ok(())
}

//! Hash of every frame along a walk, to check that a renderer change keeps frames byte-identical
//! (`cargo run --release -p vldac-miniworld --example frame_hash -- 500`).

use std::hash::{Hash, Hasher};

use vldac_core::{Action, Environment};
use vldac_miniworld::{MiniWorld, MiniWorldConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).map_or(Ok(500), |s| s.parse())?;
    let pattern = [2usize, 2, 0, 2, 2, 1, 2, 3, 2, 1];
    for id in ["MiniWorld-OneRoom-v0", "MiniWorld-Hallway-v0", "MiniWorld-FourRooms-v0", "MiniWorld-WallGap-v0"] {
        for (w, h) in [(80, 60), (224, 224)] {
            let cfg = MiniWorldConfig { obs_width: w, obs_height: h, ..MiniWorldConfig::default() };
            let mut env = MiniWorld::with_config(id, cfg)?;
            env.reset(Some(0))?;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            for k in 0..steps {
                env.render_obs().pixels().hash(&mut hasher);
                if env.step(&Action::Discrete(pattern[k % pattern.len()]))?.done() {
                    env.reset(None)?;
                }
            }
            println!("{id} {w}x{h}: {:016x}", hasher.finish());
        }
    }
    Ok(())
}

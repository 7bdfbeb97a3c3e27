//! numpy's `Generator(PCG64(SeedSequence(seed)))`, the generator gymnasium gives every env as
//! `np_random`, so that `reset(Some(seed))` builds the same world as the Python peer. The
//! implementation is shared with Gym-Cards in [`vldac_core::rng::Generator`].

pub use vldac_core::rng::Generator as NpRandom;

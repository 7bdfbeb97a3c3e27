//! numpy's `Generator(PCG64(SeedSequence(seed)))`, which gymnasium gives every environment as
//! `np_random`; MiniGrid draws `integers(low, high)` and `uniform(low, high)` from it. The
//! implementation is shared with MiniWorld and Gym-Cards in [`vldac_core::rng::Generator`].

pub use vldac_core::rng::Generator as NpRandom;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_match_numpy() {
        // g = np.random.default_rng(123456789012); [int(g.integers(0, 4)) for _ in range(10)]
        let mut r = NpRandom::new(123_456_789_012);
        let v: Vec<i64> = (0..10).map(|_| r.integers(0, 4)).collect();
        assert_eq!(v, [3, 2, 2, 0, 0, 1, 1, 1, 1, 1]);
        // A one-value range draws nothing.
        let (mut a, mut b) = (NpRandom::new(9), NpRandom::new(9));
        assert_eq!(a.integers(7, 8), 7);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}

//! numpy's `Generator(PCG64(SeedSequence(seed)))`, which gymnasium gives every environment as
//! `np_random`, with the two draws MiniGrid makes: `integers(low, high)` (Lemire's bounded
//! 32-bit method on PCG64's buffered 32-bit outputs) and `uniform(low, high)`.
//!
//! Written from the published algorithms (O'Neill's PCG64 XSL-RR, numpy's SeedSequence hash
//! mixing, Lemire's nearly-divisionless bounded integers); the same generator exists in
//! `vldac-gym-cards` and `vldac-miniworld` (see the README for why it is not shared yet).

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_L: u32 = 0xca01_f9dd;
const MIX_R: u32 = 0x4973_f715;
const PCG_MULT: u128 = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645;

/// `SeedSequence(seed).generate_state(4, uint64)`.
fn seed_sequence_state(seed: u64) -> [u64; 4] {
    let entropy: Vec<u32> = if seed >> 32 == 0 { vec![seed as u32] } else { vec![seed as u32, (seed >> 32) as u32] };
    let mut hash_a = INIT_A;
    let mut hashmix = |v: u32| {
        let mut v = v ^ hash_a;
        hash_a = hash_a.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_a);
        v ^ (v >> 16)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_L.wrapping_mul(x).wrapping_sub(MIX_R.wrapping_mul(y));
        r ^ (r >> 16)
    };
    let mut pool = [0u32; 4];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    let mut hash_b = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % 4] ^ hash_b;
        hash_b = hash_b.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_b);
        *w = v ^ (v >> 16);
    }
    std::array::from_fn(|i| u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32))
}

/// The generator of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpRandom {
    state: u128,
    inc: u128,
    /// The upper half of the last 64-bit output, kept for the next 32-bit draw.
    spare: Option<u32>,
}

impl NpRandom {
    pub fn new(seed: u64) -> Self {
        let w = seed_sequence_state(seed);
        let init_state = (u128::from(w[0]) << 64) | u128::from(w[1]);
        let init_seq = (u128::from(w[2]) << 64) | u128::from(w[3]);
        let mut r = NpRandom { state: 0, inc: (init_seq << 1) | 1, spare: None };
        r.step();
        r.state = r.state.wrapping_add(init_state);
        r.step();
        r
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        (((s >> 64) as u64) ^ (s as u64)).rotate_right((s >> 122) as u32)
    }

    fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let v = self.next_u64();
        self.spare = Some((v >> 32) as u32);
        v as u32
    }

    /// `integers(low, high)`: uniform in `[low, high)`; `high - low` must be in `1..2^32`.
    /// A range of one value draws nothing, as in numpy.
    pub fn integers(&mut self, low: i64, high: i64) -> i64 {
        debug_assert!(high > low, "integers({low}, {high})");
        let rng = (high - low - 1) as u64;
        if rng == 0 {
            return low;
        }
        let excl = rng + 1;
        let mut m = u64::from(self.next_u32()) * excl;
        let mut leftover = m & 0xffff_ffff;
        if leftover < excl {
            let threshold = (0xffff_ffffu64 - rng) % excl;
            while leftover < threshold {
                m = u64::from(self.next_u32()) * excl;
                leftover = m & 0xffff_ffff;
            }
        }
        low + (m >> 32) as i64
    }

    /// `random()`: 53 random bits in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `uniform(low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // SeedSequence(5).generate_state(4, np.uint64)
        assert_eq!(
            seed_sequence_state(5),
            [0xaf4c069d0100b467, 0x3df59fb9887ebd60, 0x57b7bdc649b55a52, 0x278105bd968811a6]
        );
        // np.random.default_rng(5).bit_generator.random_raw(3)
        let mut r = NpRandom::new(5);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [0xce14abeeabb8e5a8, 0xced5352505cc99f5, 0x83ec603f7806adc0]
        );
        // g = np.random.default_rng(123456789012); [int(g.integers(0, 4)) for _ in range(10)]
        let mut r = NpRandom::new(123_456_789_012);
        let v: Vec<i64> = (0..10).map(|_| r.integers(0, 4)).collect();
        assert_eq!(v, [3, 2, 2, 0, 0, 1, 1, 1, 1, 1]);
    }
}

//! The random generators of the Python peers, for environments that must build the same worlds.
//!
//! * [`Mt19937`]: the Mersenne Twister core shared by CPython's `random` and NumPy's legacy
//!   `RandomState`, with both seeding routines (`init_genrand` for one 32-bit word, `init_by_array`
//!   for a key of words).
//! * [`RandomState`]: NumPy's legacy global generator (`np.random.seed(s)`, `np.random.randint`,
//!   `np.random.choice`, `np.random.permutation`), which minigrid-era environments such as
//!   Baba Is AI draw from.
//!
//! Written from the published algorithms (Matsumoto & Nishimura's MT19937 reference code) and
//! NumPy's documented legacy sampling (masked rejection for bounded integers, Fisher–Yates with
//! a masked interval draw for shuffles).

const N: usize = 624;
const M: usize = 397;

/// MT19937 state and 32-bit output.
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937(index {})", self.index)
    }
}

impl Mt19937 {
    /// `init_genrand(seed)`: the state NumPy's `np.random.seed(int)` sets.
    pub fn init_genrand(seed: u32) -> Mt19937 {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1] ^ (mt[i - 1] >> 30);
            mt[i] = 1_812_433_253u32.wrapping_mul(prev).wrapping_add(i as u32);
        }
        Mt19937 { mt, index: N }
    }

    /// `init_by_array(key)`: CPython's `random.seed(int)` (the int's 32-bit words, least
    /// significant first) and NumPy's `np.random.seed([w0, w1, ...])`.
    pub fn init_by_array(key: &[u32]) -> Mt19937 {
        let mut r = Mt19937::init_genrand(19_650_218);
        let key: &[u32] = if key.is_empty() { &[0] } else { key };
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_664_525)).wrapping_add(key[j]).wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
        }
        r.mt[0] = 0x8000_0000;
        r
    }

    /// The next tempered 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Two outputs as one 64-bit word (high word first), as NumPy's MT19937 `next_uint64`.
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }
}

/// NumPy's legacy `RandomState` (the generator behind `np.random.*`).
#[derive(Clone, Debug)]
pub struct RandomState {
    mt: Mt19937,
}

impl RandomState {
    /// `np.random.seed(seed)`. NumPy accepts ints below 2^32 only; a larger seed is taken as the
    /// array of its two 32-bit words (`np.random.seed([seed & 0xffffffff, seed >> 32])`).
    pub fn new(seed: u64) -> RandomState {
        let mt = match u32::try_from(seed) {
            Ok(s) => Mt19937::init_genrand(s),
            Err(_) => Mt19937::init_by_array(&[seed as u32, (seed >> 32) as u32]),
        };
        RandomState { mt }
    }

    /// The smallest all-ones mask covering `max`.
    fn mask(max: u64) -> u64 {
        if max == 0 { 0 } else { u64::MAX >> max.leading_zeros() }
    }

    /// A value in `0..=max` by masked rejection (NumPy's legacy bounded integers and
    /// `random_interval`); `max == 0` draws nothing.
    fn masked(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = Self::mask(max);
        if max <= u64::from(u32::MAX) {
            loop {
                let v = u64::from(self.mt.next_u32()) & mask;
                if v <= max {
                    return v;
                }
            }
        }
        loop {
            let v = self.mt.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `np.random.randint(low, high)`: an integer in `low..high` (`high > low`).
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        assert!(high > low, "randint: empty range {low}..{high}");
        low + self.masked((high - low - 1) as u64) as i64
    }

    /// `np.random.choice(n)`: an index in `0..n` (`n > 0`).
    pub fn choice(&mut self, n: usize) -> usize {
        self.randint(0, n as i64) as usize
    }

    /// `np.random.choice(n, size=k)` (with replacement): `k` independent indices.
    pub fn choice_n(&mut self, n: usize, k: usize) -> Vec<usize> {
        (0..k).map(|_| self.choice(n)).collect()
    }

    /// `np.random.permutation(n)`: Fisher–Yates from the last element down.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.masked(i as u64) as usize;
            v.swap(i, j);
        }
        v
    }

    /// `np.random.choice(n, size=k, replace=False)`: the first `k` of a permutation.
    pub fn choice_distinct(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "choice_distinct: cannot take {k} of {n} without replacement");
        let mut p = self.permutation(n);
        p.truncate(k);
        p
    }
}

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341u128;

/// numpy's SeedSequence pool for an integer seed (no spawn key).
fn seed_sequence_pool(seed: u64) -> [u32; POOL_SIZE] {
    // The seed as little-endian 32-bit words (0 is one word).
    let mut entropy = vec![seed as u32];
    if seed >> 32 != 0 {
        entropy.push((seed >> 32) as u32);
    }
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| {
        let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };
    let mut pool = [0u32; POOL_SIZE];
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..POOL_SIZE {
        for dst in 0..POOL_SIZE {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    for &e in entropy.iter().skip(POOL_SIZE) {
        for p in pool.iter_mut() {
            let h = hashmix(e);
            *p = mix(*p, h);
        }
    }
    pool
}

/// `SeedSequence.generate_state(4, uint64)`.
fn generate_state_u64x4(pool: &[u32; POOL_SIZE]) -> [u64; 4] {
    let mut hash_const = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % POOL_SIZE] ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_const);
        *w = v ^ (v >> XSHIFT);
    }
    let mut out = [0u64; 4];
    for (k, o) in out.iter_mut().enumerate() {
        *o = u64::from(words[2 * k]) | (u64::from(words[2 * k + 1]) << 32);
    }
    out
}

/// NumPy's `Generator(PCG64(SeedSequence(seed)))` (gymnasium's `np_random(seed)`), with the
/// samplers MiniWorld, Gym-Cards and BabyAI use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generator {
    state: u128,
    inc: u128,
    /// PCG64's buffered upper half for 32-bit draws (`has_uint32` / `uinteger`).
    buffered: Option<u32>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let v = generate_state_u64x4(&seed_sequence_pool(seed));
        let init_state = (u128::from(v[0]) << 64) | u128::from(v[1]);
        let init_seq = (u128::from(v[2]) << 64) | u128::from(v[3]);
        let mut rng = Generator { state: 0, inc: (init_seq << 1) | 1, buffered: None };
        rng.step();
        rng.state = rng.state.wrapping_add(init_state);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        let xored = ((s >> 64) as u64) ^ (s as u64);
        xored.rotate_right((s >> 122) as u32)
    }

    /// `next_uint32`: the low half of a fresh draw, keeping the high half for the next call.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let n = self.next_u64();
        self.buffered = Some((n >> 32) as u32);
        n as u32
    }

    /// `random()`: a double in [0, 1) with 53 random bits.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `uniform(low, high)`: `low + (high - low) * random()`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let range = high - low;
        low + range * self.random()
    }

    /// `choice(len(p), p=p)`: one double, then a search in the normalised CDF (side="right").
    pub fn choice_p(&mut self, p: &[f64]) -> usize {
        let mut cdf = Vec::with_capacity(p.len());
        let mut acc = 0.0;
        for &x in p {
            acc += x;
            cdf.push(acc);
        }
        let last = *cdf.last().unwrap_or(&1.0);
        for c in &mut cdf {
            *c /= last;
        }
        let u = self.random();
        cdf.iter().position(|&c| c > u).unwrap_or(p.len().saturating_sub(1))
    }

    /// `integers(low, high)`: uniform in `[low, high)` (a range of one value draws nothing, as
    /// in numpy).
    pub fn integers(&mut self, low: i64, high: i64) -> i64 {
        debug_assert!(high > low, "integers({low}, {high})");
        low + self.below(high.wrapping_sub(low) as u64) as i64
    }

    /// `integers(0, n)` (and `choice(n)`): Lemire's bounded 32-bit draw on `next_uint32`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let rng = n - 1;
        if rng > 0xFFFF_FFFF {
            // Not used by the environments; a plain masked draw keeps this total.
            let mask = u64::MAX >> rng.leading_zeros();
            loop {
                let v = self.next_u64() & mask;
                if v <= rng {
                    return v;
                }
            }
        }
        let rng_excl = rng + 1;
        let mut m = u64::from(self.next_u32()) * rng_excl;
        let mut leftover = m & 0xFFFF_FFFF;
        if leftover < rng_excl {
            let threshold = (0xFFFF_FFFFu64 - rng) % rng_excl;
            while leftover < threshold {
                m = u64::from(self.next_u32()) * rng_excl;
                leftover = m & 0xFFFF_FFFF;
            }
        }
        m >> 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_legacy() {
        // python -c "import numpy as np; np.random.seed(0); print(np.random.randint(0, 2**31),
        //   np.random.randint(2, 6), np.random.choice(3, size=3, replace=False),
        //   np.random.choice(3, size=3), np.random.choice(12))"
        let mut r = RandomState::new(0);
        assert_eq!(r.randint(0, 1 << 31), 209_652_396);
        assert_eq!(r.randint(2, 6), 5);
        assert_eq!(r.choice_distinct(3, 3), [2, 0, 1]);
        assert_eq!(r.choice_n(3, 3), [1, 1, 2]);
        assert_eq!(r.choice(12), 4);
        // A range of one draws nothing: np.random.seed(0); np.random.randint(4, 5); np.random.randint(0, 2**31)
        let mut r = RandomState::new(0);
        assert_eq!(r.randint(4, 5), 4);
        assert_eq!(r.randint(0, 1 << 31), 209_652_396);
        // Seeds above 2^32: np.random.seed([s & 0xffffffff, s >> 32]) with s = 2**40 + 7.
        let mut r = RandomState::new((1 << 40) + 7);
        assert_eq!(r.randint(0, 1 << 31), 488_354_010);
        assert_eq!(r.permutation(7), [6, 0, 4, 1, 3, 5, 2]);
        // 64-bit ranges: np.random.seed(123); np.random.randint(0, 2**40)
        assert_eq!(RandomState::new(123).randint(0, 1 << 40), 1_093_983_812_973);
    }

    #[test]
    fn matches_reference_mt19937() {
        // MT19937 reference output for init_by_array({0x123, 0x234, 0x345, 0x456}).
        let mut r = Mt19937::init_by_array(&[0x123, 0x234, 0x345, 0x456]);
        assert_eq!([r.next_u32(), r.next_u32(), r.next_u32()], [1_067_595_299, 955_945_823, 477_289_528]);
        // The 10000th output after init_genrand(5489) (C++ std::mt19937's default) is 4123659995.
        let mut r = Mt19937::init_genrand(5489);
        let v = (0..10_000).map(|_| r.next_u32()).last();
        assert_eq!(v, Some(4_123_659_995));
    }

    #[test]
    fn matches_numpy_pcg64() {
        // SeedSequence(5).generate_state(4, np.uint64)
        assert_eq!(
            generate_state_u64x4(&seed_sequence_pool(5)),
            [0xaf4c069d0100b467, 0x3df59fb9887ebd60, 0x57b7bdc649b55a52, 0x278105bd968811a6]
        );
        // PCG64(SeedSequence(5)).random_raw(3)
        let mut r = Generator::new(5);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [0xce14abeeabb8e5a8, 0xced5352505cc99f5, 0x83ec603f7806adc0]
        );
        // np.random.default_rng(123456789012).integers(0, 4, 10)
        let mut r = Generator::new(123_456_789_012);
        let v: Vec<u64> = (0..10).map(|_| r.below(4)).collect();
        assert_eq!(v, [3, 2, 2, 0, 0, 1, 1, 1, 1, 1]);
    }
}

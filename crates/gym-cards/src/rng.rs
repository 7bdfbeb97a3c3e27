//! Deal generators.
//!
//! By default every game uses its own ChaCha8 stream, reseeded by `reset(Some(seed))`.
//! In compat mode NumberLine, EZPoints and Points24 instead use a re-implementation of Python's
//! `random` module (MT19937 with CPython's `seed(int)`, `randint`, `choice` and `random()`), so
//! `Options { compat: true, seed: s }` deals exactly what the peer deals after
//! `random.seed(s)`: the parity tests check the first deal for every recorded episode.
//! Compat Blackjack uses NumPy's `Generator(PCG64(SeedSequence(seed)))` as gymnasium seeds it,
//! so `reset(Some(s))` deals and draws the peer's cards for `reset(seed=s)`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vldac_core::rng::{Generator, Mt19937};

/// Python's `random.Random`: MT19937 ([`vldac_core::rng::Mt19937`]) seeded by CPython's
/// `init_by_array`, with `random.py`'s samplers.
#[derive(Clone)]
pub struct PyRandom {
    mt: Mt19937,
}

impl PyRandom {
    /// `random.seed(seed)` for a non-negative int seed.
    pub fn new(seed: u64) -> PyRandom {
        // The key is the seed's 32-bit words, least significant first (at least one word).
        let key: Vec<u32> = if seed >> 32 == 0 { vec![seed as u32] } else { vec![seed as u32, (seed >> 32) as u32] };
        PyRandom { mt: Mt19937::init_by_array(&key) }
    }

    /// MT19937's next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// `_randbelow(n)` for 1 ≤ n < 2^32: rejection sampling on `getrandbits(n.bit_length())`.
    pub fn below(&mut self, n: u32) -> u32 {
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.next_u32() >> (32 - k);
            if r < n {
                return r;
            }
        }
    }

    /// `random()`: 53 random bits in [0, 1).
    pub fn random(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// The generator of one environment.
#[derive(Clone)]
pub enum DealRng {
    ChaCha(Box<ChaCha8Rng>),
    Python(Box<PyRandom>),
    Numpy(Box<NumpyRandom>),
}

impl DealRng {
    pub fn chacha(seed: u64) -> DealRng {
        DealRng::ChaCha(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    pub fn python(seed: u64) -> DealRng {
        DealRng::Python(Box::new(PyRandom::new(seed)))
    }

    pub fn numpy(seed: u64) -> DealRng {
        DealRng::Numpy(Box::new(NumpyRandom::new(seed)))
    }

    /// `randint(lo, hi)`, both ends included (`hi - lo < 2^32`).
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        match self {
            DealRng::ChaCha(r) => r.random_range(lo..=hi),
            DealRng::Python(r) => lo + i64::from(r.below((hi - lo + 1) as u32)),
            DealRng::Numpy(r) => lo + i64::from(r.below((hi - lo + 1) as u32)),
        }
    }

    /// `choice` of an index below `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.int_in(0, n as i64 - 1) as usize
    }

    /// `random()` in [0, 1).
    pub fn unit(&mut self) -> f64 {
        match self {
            DealRng::ChaCha(r) => r.random::<f64>(),
            DealRng::Python(r) => r.random(),
            DealRng::Numpy(r) => (r.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython_random() {
        // python3 -c "import random; random.seed(0); print([random.getrandbits(32) for _ in range(3)])"
        let mut r = PyRandom::new(0);
        assert_eq!([r.next_u32(), r.next_u32(), r.next_u32()], [3626764237, 1654615998, 3255389356]);
        // random.seed(42); random.random()
        assert_eq!(PyRandom::new(42).random(), 0.6394267984578837);
        // random.seed(1); [random.randint(0, 5) for _ in range(6)]
        let mut r = DealRng::python(1);
        let v: Vec<i64> = (0..6).map(|_| r.int_in(0, 5)).collect();
        assert_eq!(v, [1, 4, 0, 2, 0, 3]);
        // random.seed(2**40 + 7); random.getrandbits(32)
        assert_eq!(PyRandom::new((1 << 40) + 7).next_u32(), 2_635_837_658);
    }
}

/// NumPy's `Generator(PCG64(SeedSequence(seed)))`, as gymnasium's `np_random(seed)` builds it
/// ([`vldac_core::rng::Generator`]), with the draw the peer's Blackjack uses (`choice` of a
/// list = `integers(0, n)`, Lemire's method on buffered 32-bit outputs).
#[derive(Clone)]
pub struct NumpyRandom(Generator);

impl NumpyRandom {
    pub fn new(seed: u64) -> NumpyRandom {
        NumpyRandom(Generator::new(seed))
    }

    /// PCG64 (XSL-RR) 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// `integers(0, n)` for 1 ≤ n ≤ 2^32 − 1.
    pub fn below(&mut self, n: u32) -> u32 {
        self.0.below(u64::from(n)) as u32
    }
}

#[cfg(test)]
mod numpy_tests {
    use super::*;

    #[test]
    fn matches_gymnasium_blackjack_draws() {
        // gymnasium np_random(5): [choice(deck) for _ in range(10)]
        let deck = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10];
        let mut r = NumpyRandom::new(5);
        let v: Vec<u32> = (0..10).map(|_| deck[r.below(13) as usize]).collect();
        assert_eq!(v, [9, 10, 1, 10, 7, 7, 9, 4, 10, 1]);
        let mut r = NumpyRandom::new(123_456_789_012);
        let v: Vec<u32> = (0..10).map(|_| r.below(4)).collect();
        assert_eq!(v, [3, 2, 2, 0, 0, 1, 1, 1, 1, 1]);
    }
}

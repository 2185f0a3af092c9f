//! The keys the workloads use and the orders they visit them in: deterministic, so every
//! engine sees the same operations, and computed on the fly, so no workload holds a key list
//! in memory (its peak RSS would be charged to the engine). Self-contained so a test
//! (`tests/bench_key_orders.rs`) can include it.

/// Key length: keys are 16 decimal digits.
pub const KEY_LEN: usize = 16;

/// Key number `n`: 16 ASCII digits, so key order is numeric order.
pub fn key(n: u64) -> [u8; KEY_LEN] {
    let mut k = [b'0'; KEY_LEN];
    let mut n = n;
    for b in k.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A key that is never written but sorts among the written ones: key `n` with its last digit
/// turned into a letter (`...123` -> `...12D`).
pub fn missing_key(n: u64) -> [u8; KEY_LEN] {
    let mut k = key(n);
    k[KEY_LEN - 1] = k[KEY_LEN - 1] - b'0' + b'A';
    k
}

/// SplitMix64: a tiny deterministic generator, so every engine sees the same operations.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// 0..n in a pseudo-random order, the same for every engine, without holding it in memory: a
/// six-round Feistel network permutes the smallest even-width power of two that holds n, and
/// cycle-walking (apply it again until the result is below n) keeps each step inside 0..n
/// while staying one-to-one. A shuffled `Vec<u64>` of 10,000,000 keys would add 76 MiB to the
/// peak RSS the report charges to the engine.
#[derive(Clone)]
pub struct Permutation {
    n: u64,
    next: u64,
    half_bits: u32,
    round_keys: [u64; 6],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let mut rng = Rng::new(seed);
        Permutation {
            n,
            next: 0,
            half_bits: bits.div_ceil(2).max(1),
            round_keys: std::array::from_fn(|_| rng.next_u64()),
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.round_keys {
            let mixed = Rng::new(right ^ key).next_u64() & mask;
            (left, right) = (right, left ^ mixed);
        }
        (left << self.half_bits) | right
    }

    /// Element `i` (< n) of the order.
    pub fn at(&self, i: u64) -> u64 {
        // Cycle-walking ends only if some element of i's cycle is below n, as i itself is.
        assert!(i < self.n, "index {i} outside the order of {}", self.n);
        let mut x = self.feistel(i);
        while x >= self.n {
            x = self.feistel(x);
        }
        x
    }
}

impl Iterator for Permutation {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.next >= self.n {
            return None;
        }
        let x = self.at(self.next);
        self.next += 1;
        Some(x)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.n - self.next) as usize;
        (left, Some(left))
    }
}

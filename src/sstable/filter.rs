//! The bloom filter: one per table, over the user keys of all its entries (like RocksDB's
//! "full filter"), so a point lookup skips tables that cannot hold the key without reading a
//! data block.
//!
//! ```text
//! filter_block := bits[nbytes] k: u8
//!                 nbytes = ceil(n * bits_per_key / 8), n = number of distinct user keys
//!                 k      = clamp(floor(bits_per_key * 0.69), 1, 30)
//! probes       := h  = xxh3_64(user_key)
//!                 h1 = h & 0xffff_ffff, h2 = h >> 32
//!                 bit(i) = (h1 + i * h2) mod (8 * nbytes), for i in 0..k (computed in u64)
//!                 bit b is bit (b mod 8) of bits[b / 8]
//! ```
//!
//! A key may be present only if all its k bits are set. With 10 bits per key the false-positive
//! rate is about 1%; there are never false negatives. A filter with no bits (a table with no
//! keys) contains nothing. `bits_per_key = 0` writes no filter block at all.
//!
//! Versions of one user key are adjacent in a table, so the builder hashes each user key once.

use std::path::Path;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};

/// Largest number of probes a filter may ask for; more would cost lookups without helping.
pub const MAX_PROBES: u8 = 30;

/// The number of probes for `bits_per_key` (ln 2 per bit, the optimum for a bloom filter).
pub fn num_probes(bits_per_key: usize) -> u8 {
    let k = (bits_per_key as f64 * 0.69) as usize;
    k.clamp(1, MAX_PROBES as usize) as u8
}

/// The bits probed for a key hashing to `h`; `nbits` must not be 0.
fn probes(h: u64, k: u8, nbits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, h >> 32);
    // h1 + 30 * h2 < 2^37: no overflow.
    (0..u64::from(k)).map(move |i| (h1 + i * h2) % nbits)
}

/// Collects the user keys of a table and builds its filter.
#[derive(Debug)]
pub struct FilterBuilder {
    bits_per_key: usize,
    hashes: Vec<u64>,
    last_key: Option<Vec<u8>>,
}

impl FilterBuilder {
    /// A builder; `bits_per_key` must be at least 1.
    pub fn new(bits_per_key: usize) -> Self {
        FilterBuilder {
            bits_per_key: bits_per_key.max(1),
            hashes: Vec::new(),
            last_key: None,
        }
    }

    /// Add a user key; a repeat of the previous key is ignored.
    pub fn add_key(&mut self, user_key: &[u8]) {
        if self.last_key.as_deref() == Some(user_key) {
            return;
        }
        self.hashes.push(xxh3_64(user_key));
        let last = self.last_key.get_or_insert_with(Vec::new);
        last.clear();
        last.extend_from_slice(user_key);
    }

    /// Distinct user keys added so far.
    pub fn num_keys(&self) -> usize {
        self.hashes.len()
    }

    /// The filter block contents.
    pub fn finish(&self) -> Vec<u8> {
        let nbytes = self
            .hashes
            .len()
            .saturating_mul(self.bits_per_key)
            .div_ceil(8);
        let k = num_probes(self.bits_per_key);
        let mut out = vec![0u8; nbytes + 1];
        let nbits = 8 * nbytes as u64;
        if nbits > 0 {
            for &h in &self.hashes {
                for bit in probes(h, k, nbits) {
                    // bit < 8 * nbytes, so the index is in bounds.
                    out[(bit / 8) as usize] |= 1 << (bit % 8);
                }
            }
        }
        out[nbytes] = k;
        out
    }
}

/// A decoded filter block.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    /// The bit array (without the trailing k byte).
    bits: Bytes,
    k: u8,
}

impl BloomFilter {
    /// Decode the filter block read from `offset` of `path`.
    pub fn decode(mut contents: Bytes, path: &Path, offset: u64) -> Result<BloomFilter> {
        let Some(&k) = contents.last() else {
            return Err(Error::corruption(path, offset, "empty filter block"));
        };
        if k == 0 || k > MAX_PROBES {
            return Err(Error::corruption(
                path,
                offset + contents.len() as u64 - 1,
                format!("filter asks for {k} probes (expected 1 to {MAX_PROBES})"),
            ));
        }
        contents.truncate(contents.len() - 1);
        Ok(BloomFilter { bits: contents, k })
    }

    /// False if `user_key` is certainly absent.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        let nbits = 8 * self.bits.len() as u64;
        if nbits == 0 {
            return false;
        }
        probes(xxh3_64(user_key), self.k, nbits).all(|bit| {
            self.bits
                .get((bit / 8) as usize)
                .is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
        })
    }

    /// Size of the bit array in bytes.
    pub fn size(&self) -> usize {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: impl Iterator<Item = Vec<u8>>, bits_per_key: usize) -> BloomFilter {
        let mut b = FilterBuilder::new(bits_per_key);
        for k in keys {
            b.add_key(&k);
        }
        BloomFilter::decode(Bytes::from(b.finish()), Path::new("t.sst"), 0).unwrap()
    }

    #[test]
    fn false_positive_rate_is_about_one_percent_at_ten_bits_per_key() {
        let n = 20_000u32;
        let filter = build((0..n).map(|i| format!("user-key-{i}").into_bytes()), 10);
        assert_eq!(filter.size(), (n as usize * 10).div_ceil(8));
        for i in 0..n {
            assert!(
                filter.may_contain(format!("user-key-{i}").as_bytes()),
                "false negative {i}"
            );
        }
        let trials = 100_000u32;
        let fp = (0..trials)
            .filter(|i| filter.may_contain(format!("absent-{i}").as_bytes()))
            .count();
        let rate = fp as f64 / f64::from(trials);
        assert!(rate > 0.002 && rate < 0.02, "false-positive rate {rate}");
    }

    #[test]
    fn probe_count_follows_bits_per_key() {
        assert_eq!(num_probes(1), 1);
        assert_eq!(num_probes(10), 6);
        assert_eq!(num_probes(1000), 30);
    }

    #[test]
    fn repeated_user_keys_are_hashed_once_and_empty_filters_contain_nothing() {
        let mut b = FilterBuilder::new(10);
        for _ in 0..5 {
            b.add_key(b"same");
        }
        assert_eq!(b.num_keys(), 1);
        let empty = build(std::iter::empty(), 10);
        assert!(!empty.may_contain(b"x"));
    }

    #[test]
    fn bad_probe_counts_are_corruption() {
        for data in [vec![], vec![0xff, 0], vec![0xff, 31]] {
            let r = BloomFilter::decode(Bytes::from(data), Path::new("t.sst"), 0);
            assert!(r.unwrap_err().is_corruption());
        }
    }
}

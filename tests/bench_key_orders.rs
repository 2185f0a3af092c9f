//! The benchmark's key orders (`benches/compare/keys.rs`) must visit every key exactly once:
//! a repeated or skipped key would make every engine's fill, overwrite and delete figures
//! measure something other than what the report says.

#[allow(dead_code)]
#[path = "../benches/compare/keys.rs"]
mod keys;

use keys::{key, missing_key, Permutation};

#[test]
fn every_order_visits_each_key_exactly_once() {
    for n in [0u64, 1, 2, 3, 5, 64, 1000, 4097, 100_000] {
        for seed in [1, 2, 9] {
            let mut seen = vec![false; n as usize];
            let mut count = 0;
            for i in Permutation::new(n, seed) {
                assert!(i < n, "n={n} seed={seed}: {i} out of range");
                assert!(!seen[i as usize], "n={n} seed={seed}: {i} visited twice");
                seen[i as usize] = true;
                count += 1;
            }
            assert_eq!(count, n, "n={n} seed={seed}");
        }
    }
}

#[test]
fn orders_are_shuffled_and_differ_by_seed() {
    let n = 100_000;
    let a: Vec<u64> = Permutation::new(n, 1).collect();
    let b: Vec<u64> = Permutation::new(n, 2).collect();
    // Same seed, same order (every engine gets the same operations).
    assert_eq!(a, Permutation::new(n, 1).collect::<Vec<_>>());
    assert_ne!(a, b);
    // Not ascending or nearly so: about half of neighbouring pairs ascend in a random order.
    let ascending = a.windows(2).filter(|w| w[0] < w[1]).count() as f64 / (n - 1) as f64;
    assert!((0.45..0.55).contains(&ascending), "{ascending}");
    // Spread: the first tenth of the order touches keys all over the range.
    let mut deciles = [0u32; 10];
    for &i in &a[..(n / 10) as usize] {
        deciles[(i * 10 / n) as usize] += 1;
    }
    assert!(
        deciles.iter().all(|&d| (800..1200).contains(&d)),
        "{deciles:?}"
    );
}

#[test]
fn keys_sort_numerically_and_missing_keys_fall_between() {
    assert_eq!(&key(42), b"0000000000000042");
    assert!(key(9) < key(10));
    let missing = missing_key(42);
    assert_eq!(&missing, b"000000000000004C");
    // Past the keys that share its prefix, before the next ten.
    assert!(key(49) < missing && missing < key(50));
}

//! The order in which an epoch visits the cases.

use rand::Rng as _;

use crate::rng::{self, Rng};

/// The cases `0..len` in the epoch's seeded random order: a Fisher–Yates shuffle
/// drawing from `rng::stream(seed, &[epoch])`. The bounded draws are written here
/// (Lemire's multiply-and-reject on raw ChaCha8 output) rather than taken from `rand`'s
/// `shuffle`, whose algorithm may change between releases, so an order is reproducible
/// from the seed alone.
pub(super) fn shuffled(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = rng::stream(seed, &[epoch]);
    for i in (1..len).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// A uniform integer in `[0, bound)`, `bound >= 1`, without modulo bias.
fn below(rng: &mut Rng, bound: u64) -> u64 {
    let reject_below = bound.wrapping_neg() % bound;
    loop {
        let wide = u128::from(rng.next_u64()) * u128::from(bound);
        if wide as u64 >= reject_below {
            return (wide >> 64) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Every ordering of 4 cases is equally likely: Pearson's chi-square over 24,000
    /// seeds stays below the 0.999 quantile of chi-square with 23 degrees of freedom
    /// (49.73). The classic off-by-one shuffle (`j` drawn from all of `0..len`) scores
    /// in the hundreds here.
    #[test]
    fn orders_are_uniform_over_permutations() {
        let trials = 24_000u64;
        let mut counts: HashMap<Vec<usize>, u64> = HashMap::new();
        for seed in 0..trials {
            *counts.entry(shuffled(4, seed, 3)).or_default() += 1;
        }
        assert_eq!(counts.len(), 24);
        let expected = trials as f64 / 24.0;
        let chi2: f64 = counts
            .values()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 49.73, "chi-square {chi2}");
    }

    #[test]
    fn bounded_draws_are_uniform() {
        let mut rng = rng::stream(1, &[]);
        let mut counts = [0u64; 3];
        for _ in 0..30_000 {
            counts[below(&mut rng, 3) as usize] += 1;
        }
        // 0.999 quantile of chi-square with 2 degrees of freedom: 13.82.
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - 10_000.0).powi(2) / 10_000.0)
            .sum();
        assert!(chi2 < 13.82, "counts {counts:?}");
    }

    #[test]
    fn an_order_depends_on_seed_and_epoch_only() {
        let order = shuffled(50, 9, 2);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(order, shuffled(50, 9, 2));
        assert_ne!(order, shuffled(50, 9, 3));
        assert_ne!(order, shuffled(50, 10, 2));
        assert!(shuffled(0, 9, 2).is_empty());
    }
}

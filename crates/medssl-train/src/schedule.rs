//! Learning-rate schedules stepped once per optimiser iteration. A schedule is a pure
//! function of the iteration, so a resumed run needs only the iteration count.

use serde::{Deserialize, Serialize};

/// Linear warm-up from `warmup_start_lr` to `lr` over `warmup_iters`, then cosine
/// annealing to `min_lr` at `total_iters` — the `LinearWarmupCosineAnnealingLR` of the
/// SwinUNETR/SMIT fine-tuning recipes, stepped per iteration instead of per epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupCosine {
    /// Peak learning rate, reached at the end of warm-up.
    pub lr: f64,
    /// Learning rate at iteration 0.
    pub warmup_start_lr: f64,
    /// Learning rate at `total_iters` and after.
    pub min_lr: f64,
    /// Iterations of linear warm-up.
    pub warmup_iters: u64,
    /// Length of the whole schedule.
    pub total_iters: u64,
}

impl WarmupCosine {
    /// The learning rate of iteration `iter` (0-based).
    ///
    /// Warm-up: `start + (lr - start) · iter / warmup`; then
    /// `min + (lr - min) · (1 + cos(π · (iter - warmup) / (total - warmup))) / 2`.
    pub fn at(&self, iter: u64) -> f64 {
        if iter < self.warmup_iters {
            let t = iter as f64 / self.warmup_iters as f64;
            return self.warmup_start_lr + (self.lr - self.warmup_start_lr) * t;
        }
        let span = self.total_iters.saturating_sub(self.warmup_iters);
        if span == 0 || iter >= self.total_iters {
            return if span == 0 { self.lr } else { self.min_lr };
        }
        let t = (iter - self.warmup_iters) as f64 / span as f64;
        self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = WarmupCosine {
            lr: 1e-3,
            warmup_start_lr: 1e-5,
            min_lr: 1e-6,
            warmup_iters: 10,
            total_iters: 110,
        };
        assert_eq!(s.at(0), 1e-5);
        assert!((s.at(5) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-15);
        assert_eq!(s.at(10), 1e-3);
        // Half-way through the cosine the rate is the mean of peak and floor.
        assert!((s.at(60) - (1e-3 + 1e-6) / 2.0).abs() < 1e-15);
        assert!((s.at(109) - 1e-6).abs() < 1e-6 * 1e-2 + 1e-3 * 2.5e-4);
        assert_eq!(s.at(110), 1e-6);
        assert_eq!(s.at(500), 1e-6);
        let values: Vec<f64> = (10..=110).map(|i| s.at(i)).collect();
        assert!(values.windows(2).all(|w| w[1] <= w[0]), "monotone decay");
    }

    #[test]
    fn no_warmup_and_degenerate_lengths() {
        let s = WarmupCosine {
            lr: 2.0,
            warmup_start_lr: 0.0,
            min_lr: 0.0,
            warmup_iters: 0,
            total_iters: 4,
        };
        assert_eq!(s.at(0), 2.0);
        assert!((s.at(2) - 1.0).abs() < 1e-15);
        let flat = WarmupCosine {
            total_iters: 0,
            ..s
        };
        assert_eq!(flat.at(3), 2.0);
    }
}

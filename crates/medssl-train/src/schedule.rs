//! Schedules stepped once per optimiser iteration (learning rate, EMA momentum, weight
//! decay) or once per epoch (teacher temperature). A schedule is a pure function of the
//! step, so a resumed run needs only the step count.

use serde::{Deserialize, Serialize};

pub use medssl_ssl::temperature::LinearWarmup;

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

/// The `cosine_scheduler` of the DINO / iBOT / SMIT code, for any value stepped per
/// iteration (learning rate, teacher EMA momentum 0.996 to 1, weight decay 0.04 to 0.4):
/// `np.linspace(warmup_start, base, warmup_iters)` (both ends included), then
/// `final + (base - final) · (1 + cos(π · i / n)) / 2` for `i` in `0..n`,
/// `n = total_iters - warmup_iters`; `final` itself is reached only after the end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineSchedule {
    pub base: f64,
    #[serde(rename = "final")]
    pub final_value: f64,
    pub warmup_start: f64,
    pub warmup_iters: u64,
    pub total_iters: u64,
}

impl CosineSchedule {
    /// The value at iteration `iter` (0-based); `final` from `total_iters` on.
    pub fn at(&self, iter: u64) -> f64 {
        if iter < self.warmup_iters {
            if self.warmup_iters == 1 {
                return self.warmup_start;
            }
            let t = iter as f64 / (self.warmup_iters - 1) as f64;
            return self.warmup_start + (self.base - self.warmup_start) * t;
        }
        let n = self.total_iters.saturating_sub(self.warmup_iters);
        if iter >= self.total_iters || n == 0 {
            return self.final_value;
        }
        let t = (iter - self.warmup_iters) as f64 / n as f64;
        self.final_value
            + 0.5 * (self.base - self.final_value) * (1.0 + (std::f64::consts::PI * t).cos())
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

    /// DINO's momentum schedule (0.996 to 1 over 3 epochs of 4 iterations, no warm-up):
    /// the values numpy's `cosine_scheduler(0.996, 1, 3, 4)` gives.
    #[test]
    fn cosine_schedule_matches_the_dino_code() {
        let momentum = CosineSchedule {
            base: 0.996,
            final_value: 1.0,
            warmup_start: 0.0,
            warmup_iters: 0,
            total_iters: 12,
        };
        for (i, want) in [
            (0, 0.996),
            (3, 0.996_585_786_437_626_9),
            (6, 0.998),
            (11, 0.999_931_851_652_578_1),
        ] {
            assert!(
                (momentum.at(i) - want).abs() < 1e-15,
                "{i}: {}",
                momentum.at(i)
            );
        }
        assert_eq!(momentum.at(12), 1.0);
        // With warm-up, cosine_scheduler(5e-4, 1e-6, 5, 2, warmup_epochs=2): np.linspace(0,
        // 5e-4, 4), then the cosine from 5e-4 towards 1e-6 over 6 iterations.
        let lr = CosineSchedule {
            base: 5e-4,
            final_value: 1e-6,
            warmup_start: 0.0,
            warmup_iters: 4,
            total_iters: 10,
        };
        assert_eq!(lr.at(0), 0.0);
        assert!((lr.at(1) - 5e-4 / 3.0).abs() < 1e-18);
        assert_eq!(lr.at(3), 5e-4);
        assert_eq!(lr.at(4), 5e-4);
        for (i, want) in [
            (5, 0.000_466_573_338_244_217_5),
            (7, 0.000_250_5),
            (9, 3.442_666_175_578_254e-5),
        ] {
            assert!((lr.at(i) - want).abs() < 1e-18, "{i}: {}", lr.at(i));
        }
    }
}

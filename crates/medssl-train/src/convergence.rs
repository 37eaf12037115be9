//! The convergence figures of a fine-tuning run, computed from its validation curve.
//! They are the study's measure of how fast an initialisation learns, so each is
//! defined here exactly:
//!
//! - `best_dice`: the highest validation mean foreground Dice; `best_epoch`: the first
//!   epoch at which it was reached.
//! - `epoch_to_90` / `epoch_to_95`: the first validation epoch whose Dice is at least
//!   90 % / 95 % of `best_dice`.
//! - `normalised_auc`: the area under the validation curve (trapezoids between the
//!   validation points, Dice against epoch) divided by the epoch span it covers, i.e.
//!   the time-averaged Dice between the first and the last validation; in `[0, 1]`,
//!   higher when a run is both good and early. A single validation gives its Dice.
//!
//! Validations whose Dice is NaN (no foreground anywhere in the validation set) are
//! skipped by every figure.

use serde::{Deserialize, Serialize};

/// One validation: the epoch (1-based, counted when the epoch is complete) and its
/// mean foreground Dice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    /// Epochs completed when validating.
    pub epoch: u64,
    /// Mean over validation cases of the mean foreground-class Dice.
    pub dice: f64,
}

/// The figures defined in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// Highest validation Dice.
    pub best_dice: f64,
    /// First epoch reaching `best_dice`.
    pub best_epoch: u64,
    /// First epoch reaching 90 % of `best_dice`.
    pub epoch_to_90: u64,
    /// First epoch reaching 95 % of `best_dice`.
    pub epoch_to_95: u64,
    /// Time-averaged validation Dice between the first and last validation.
    pub normalised_auc: f64,
}

impl Convergence {
    /// The figures of a validation curve; `None` when it has no finite point.
    pub fn of(curve: &[ValidationPoint]) -> Option<Convergence> {
        let points: Vec<ValidationPoint> = curve
            .iter()
            .copied()
            .filter(|p| p.dice.is_finite())
            .collect();
        let best = points
            .iter()
            .copied()
            .reduce(|best, p| if p.dice > best.dice { p } else { best })?;
        let first_reaching = |fraction: f64| {
            points
                .iter()
                .find(|p| p.dice >= fraction * best.dice)
                .map_or(best.epoch, |p| p.epoch)
        };
        let (first, last) = (points[0], points[points.len() - 1]);
        let normalised_auc = if last.epoch > first.epoch {
            let area: f64 = points
                .windows(2)
                .map(|w| (w[1].epoch - w[0].epoch) as f64 * (w[0].dice + w[1].dice) / 2.0)
                .sum();
            area / (last.epoch - first.epoch) as f64
        } else {
            first.dice
        };
        Some(Convergence {
            best_dice: best.dice,
            best_epoch: best.epoch,
            epoch_to_90: first_reaching(0.9),
            epoch_to_95: first_reaching(0.95),
            normalised_auc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[(u64, f64)]) -> Vec<ValidationPoint> {
        points
            .iter()
            .map(|&(epoch, dice)| ValidationPoint { epoch, dice })
            .collect()
    }

    #[test]
    fn figures_of_a_rising_curve() {
        let c = Convergence::of(&curve(&[
            (2, 0.2),
            (4, 0.73),
            (6, 0.77),
            (8, 0.8),
            (10, 0.79),
            (12, 0.8),
        ]))
        .unwrap();
        assert_eq!(c.best_dice, 0.8);
        assert_eq!(c.best_epoch, 8, "first epoch reaching the best");
        assert_eq!(c.epoch_to_90, 4, "0.73 >= 0.9 * 0.8");
        assert_eq!(c.epoch_to_95, 6, "0.77 >= 0.76");
        // Trapezoids: 2·(0.2+0.73)/2 + 2·(0.73+0.77)/2 + 2·(0.77+0.8)/2
        // + 2·(0.8+0.79)/2 + 2·(0.79+0.8)/2 = 7.18 over 10 epochs.
        assert!(
            (c.normalised_auc - 0.718).abs() < 1e-12,
            "{}",
            c.normalised_auc
        );
    }

    #[test]
    fn nan_points_are_skipped_and_empty_curves_have_none() {
        let c = Convergence::of(&curve(&[(1, f64::NAN), (3, 0.5)])).unwrap();
        assert_eq!((c.best_epoch, c.epoch_to_90, c.normalised_auc), (3, 3, 0.5));
        assert!(Convergence::of(&curve(&[(1, f64::NAN)])).is_none());
        assert!(Convergence::of(&[]).is_none());
    }
}

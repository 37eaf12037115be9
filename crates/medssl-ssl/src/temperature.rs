//! Temperatures that change over training, stepped per epoch (DINO, iBOT and SMIT warm
//! the teacher temperature up over the first epochs).

use serde::{Deserialize, Serialize};

/// The teacher temperature of DINO / iBOT / SMIT, stepped per epoch:
/// `np.linspace(start, end, warmup_epochs)` (both ends included), then `end`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearWarmup {
    pub start: f64,
    pub end: f64,
    pub warmup_epochs: u64,
}

impl LinearWarmup {
    /// The value in epoch `epoch` (0-based).
    pub fn at(&self, epoch: u64) -> f64 {
        match self.warmup_epochs {
            0 => self.end,
            1 if epoch == 0 => self.start,
            w if epoch < w => self.start + (self.end - self.start) * epoch as f64 / (w - 1) as f64,
            _ => self.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DINO's teacher temperature: np.linspace(0.04, 0.07, 30), then 0.07.
    #[test]
    fn teacher_temperature_warms_up_linearly_then_holds() {
        let t = LinearWarmup {
            start: 0.04,
            end: 0.07,
            warmup_epochs: 30,
        };
        assert_eq!(t.at(0), 0.04);
        assert!((t.at(10) - (0.04 + 0.03 * 10.0 / 29.0)).abs() < 1e-17);
        assert!((t.at(29) - 0.07).abs() < 1e-17);
        assert_eq!(t.at(30), 0.07);
        assert_eq!(t.at(1000), 0.07);
        let none = LinearWarmup {
            start: 0.04,
            end: 0.07,
            warmup_epochs: 0,
        };
        assert_eq!(none.at(0), 0.07);
    }
}

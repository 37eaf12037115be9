//! Temperatures that change over training, stepped per epoch (DINO, iBOT and SMIT warm
//! the teacher temperature up over the first epochs).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::losses::distillation::Distill;

/// How a self-distillation method sharpens and centres (DINO, iBOT, SMIT): the
/// student's softmax temperature, the teacher's warmed up linearly per epoch, and the
/// momentum of the centre of the teacher outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sharpening {
    /// Student temperature.
    pub student_temp: f64,
    /// Teacher temperature after warm-up.
    pub teacher_temp: f64,
    /// Teacher temperature at the first epoch.
    pub warmup_teacher_temp: f64,
    /// Epochs of linear warm-up.
    pub warmup_teacher_temp_epochs: u64,
    /// Momentum of the centre.
    pub center_momentum: f64,
}

impl Sharpening {
    /// The published values: 0.1 for the student, 0.04 warmed to 0.07 for the teacher,
    /// centre momentum 0.9; warm-up over `warmup_epochs`.
    pub fn recipe(warmup_epochs: u64) -> Sharpening {
        Sharpening {
            student_temp: 0.1,
            teacher_temp: 0.07,
            warmup_teacher_temp: 0.04,
            warmup_teacher_temp_epochs: warmup_epochs,
            center_momentum: 0.9,
        }
    }

    /// Temperatures must be positive and the momentum in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        for (name, value) in [
            ("student_temp", self.student_temp),
            ("teacher_temp", self.teacher_temp),
            ("warmup_teacher_temp", self.warmup_teacher_temp),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(SslError::Invalid(format!(
                    "sharpening.{name} must be positive, got {value}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.center_momentum) {
            return Err(SslError::Invalid(format!(
                "sharpening.center_momentum must be in [0, 1), got {}",
                self.center_momentum
            )));
        }
        Ok(())
    }

    /// The distillation loss settings of epoch `epoch` (0-based).
    pub fn at(&self, epoch: u64) -> Distill {
        Distill {
            teacher_temp: LinearWarmup {
                start: self.warmup_teacher_temp,
                end: self.teacher_temp,
                warmup_epochs: self.warmup_teacher_temp_epochs,
            }
            .at(epoch),
            student_temp: self.student_temp,
            center_momentum: self.center_momentum,
        }
    }
}

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

//! Temperatures that change over training, stepped per epoch (DINO, iBOT and SMIT warm
//! the teacher temperature up over the first epochs; iBOT and SMIT can hold a
//! temperature for some epochs before its warm-up begins).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SslError};
use crate::losses::distillation::Distill;

/// How a self-distillation method sharpens and centres (DINO, iBOT, SMIT): the
/// student's softmax temperature, the teacher's warmed up linearly per epoch (after an
/// optional delay), and the momentum of the centre of the teacher outputs.
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
    /// Epochs the teacher temperature is held at `warmup_teacher_temp` before its
    /// warm-up begins (iBOT's `teacher_temp2_schedule` with `pred_start_epoch` > 0,
    /// SMIT's patch temperature until `mim_start_epoch`); 0: the warm-up starts at the
    /// first epoch.
    pub delay_epochs: u64,
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
            delay_epochs: 0,
        }
    }

    /// The teacher temperature per epoch: `warmup_teacher_temp` for `delay_epochs`,
    /// then warmed linearly to `teacher_temp` over `warmup_teacher_temp_epochs`, then
    /// `teacher_temp`.
    pub fn teacher_schedule(&self) -> LinearWarmup {
        LinearWarmup::new(
            self.warmup_teacher_temp,
            self.teacher_temp,
            self.warmup_teacher_temp_epochs,
        )
        .delayed(self.delay_epochs)
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
            teacher_temp: self.teacher_schedule().at(epoch),
            student_temp: self.student_temp,
            center_momentum: self.center_momentum,
        }
    }
}

/// The teacher temperature of DINO / iBOT / SMIT, stepped per epoch: `start` for
/// `delay_epochs` epochs, then `np.linspace(start, end, warmup_epochs)` (both ends
/// included), then `end` — iBOT's schedule, `np.concatenate((np.ones(delay) * start,
/// np.linspace(start, end, warmup), np.ones(rest) * end))`, which is DINO's when
/// `delay_epochs` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearWarmup {
    /// The value during the delay and at the first epoch of the warm-up.
    pub start: f64,
    /// The value at the last epoch of the warm-up and after it.
    pub end: f64,
    /// Epochs of the warm-up (0: `end` as soon as the delay is over).
    pub warmup_epochs: u64,
    /// Epochs `start` is held before the warm-up begins.
    pub delay_epochs: u64,
}

impl LinearWarmup {
    /// A warm-up from `start` to `end` over `warmup_epochs`, starting at the first epoch.
    pub fn new(start: f64, end: f64, warmup_epochs: u64) -> LinearWarmup {
        LinearWarmup {
            start,
            end,
            warmup_epochs,
            delay_epochs: 0,
        }
    }

    /// The same warm-up, begun after `delay_epochs` epochs at `start`.
    pub fn delayed(self, delay_epochs: u64) -> LinearWarmup {
        LinearWarmup {
            delay_epochs,
            ..self
        }
    }

    /// The value in epoch `epoch` (0-based).
    pub fn at(&self, epoch: u64) -> f64 {
        let Some(epoch) = epoch.checked_sub(self.delay_epochs) else {
            return self.start;
        };
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
        let t = LinearWarmup::new(0.04, 0.07, 30);
        assert_eq!(t.at(0), 0.04);
        assert!((t.at(10) - (0.04 + 0.03 * 10.0 / 29.0)).abs() < 1e-17);
        assert!((t.at(29) - 0.07).abs() < 1e-17);
        assert_eq!(t.at(30), 0.07);
        assert_eq!(t.at(1000), 0.07);
        let none = LinearWarmup::new(0.04, 0.07, 0);
        assert_eq!(none.at(0), 0.07);
    }

    /// iBOT's `teacher_temp2_schedule` with `pred_start_epoch = 3`, warm-up 4 epochs
    /// from 0.04 to 0.07: `[0.04] * 3 + np.linspace(0.04, 0.07, 4) + [0.07] * ...`, i.e.
    /// 0.04, 0.04, 0.04, 0.04, 0.05, 0.06, 0.07, 0.07.
    #[test]
    fn a_delayed_warm_up_holds_the_start_then_warms_then_holds_the_end() {
        let t = LinearWarmup::new(0.04, 0.07, 4).delayed(3);
        let expected = [0.04, 0.04, 0.04, 0.04, 0.05, 0.06, 0.07, 0.07, 0.07];
        for (epoch, want) in expected.iter().enumerate() {
            let got = t.at(epoch as u64);
            assert!((got - want).abs() < 1e-15, "epoch {epoch}: {got} != {want}");
        }
        // Before the delay ends (epoch 2), at its end (3: the warm-up's first value),
        // one epoch into the warm-up (4).
        assert_eq!(t.at(2), 0.04);
        assert_eq!(t.at(3), 0.04);
        assert!((t.at(4) - 0.05).abs() < 1e-15);
        assert_eq!(t.at(1000), 0.07);
        // A delay without warm-up: the start for the delay, then the end (SMIT's patch
        // temperature held at 0.04 until `mim_start_epoch`, then its final value).
        let jump = LinearWarmup::new(0.04, 0.07, 0).delayed(2);
        assert_eq!([jump.at(0), jump.at(1), jump.at(2)], [0.04, 0.04, 0.07]);
        // No delay is DINO's schedule.
        let dino = LinearWarmup::new(0.04, 0.07, 4);
        assert_eq!(dino.delayed(0), dino);
        assert_eq!(dino.at(0), 0.04);
        assert_eq!(dino.at(3), 0.07);
    }

    #[test]
    fn sharpening_delays_the_teacher_warm_up() {
        let sharpening = Sharpening {
            delay_epochs: 2,
            ..Sharpening::recipe(3)
        };
        let temps: Vec<f64> = (0..6).map(|e| sharpening.at(e).teacher_temp).collect();
        let expected = [0.04, 0.04, 0.04, 0.055, 0.07, 0.07];
        for (got, want) in temps.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{temps:?}");
        }
        assert_eq!(sharpening.at(4).student_temp, 0.1);
        // The recipe has no delay; a file without the setting is refused, naming it.
        assert_eq!(Sharpening::recipe(3).delay_epochs, 0);
        let err = serde_json::from_str::<Sharpening>(
            r#"{"student_temp": 0.1, "teacher_temp": 0.07, "warmup_teacher_temp": 0.04,
                "warmup_teacher_temp_epochs": 3, "center_momentum": 0.9}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("delay_epochs"), "{err}");
        let err = serde_json::from_str::<LinearWarmup>(
            r#"{"start": 0.04, "end": 0.07, "warmup_epochs": 2}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("delay_epochs"), "{err}");
    }
}

//! Random gamma contrast, nnU-Net's strongest intensity augmentation.

use serde::Deserialize;

use super::params::{Numbers, check_prob, coin, default_prob, invalid, uniform};
use super::stats::{Moments, extremes};
use super::{count_non_finite, map_voxels, non_finite_error, require_finite, voxels, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `RandAdjustContrastd`: with probability `prob`, the gamma transform
/// [`adjust_contrast`] with `gamma` uniform in the configured range (a number `g` means
/// `(0.5, g)` and must exceed 0.5; default `(0.5, 4.5)`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandAdjustContrast {
    #[serde(default = "default_prob")]
    prob: f64,
    #[serde(default = "default_gamma")]
    gamma: Numbers,
    #[serde(default)]
    invert_image: bool,
    #[serde(default)]
    retain_stats: bool,
}

fn default_gamma() -> Numbers {
    Numbers::Many(vec![0.5, 4.5])
}

impl FromParams for RandAdjustContrast {
    const NAME: &'static str = "rand_adjust_contrast";
    const MONAI: &'static str = "RandAdjustContrastd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        check_prob(Self::NAME, params.prob)?;
        params.gamma.check_range(Self::NAME, "gamma")?;
        match &params.gamma {
            Numbers::One(g) if *g <= 0.5 => Err(invalid(
                Self::NAME,
                "gamma",
                format!(
                    "as one number is the upper end of (0.5, gamma) and must exceed 0.5, got {g}"
                ),
            )),
            Numbers::Many(range) if range.iter().any(|&g| g as f32 <= 0.0) => Err(invalid(
                Self::NAME,
                "gamma",
                format!("values must be positive, got {range:?}"),
            )),
            _ => Ok(params),
        }
    }
}

impl RandAdjustContrast {
    /// The drawn gamma, or `None` when the step is skipped.
    pub fn draw(&self, rng: &mut Rng) -> Option<f64> {
        if !coin(rng, self.prob) {
            return None;
        }
        let range = match &self.gamma {
            Numbers::One(g) => [0.5, *g],
            Numbers::Many(range) => Numbers::span(range),
        };
        Some(uniform(rng, range))
    }
}

impl Transform for RandAdjustContrast {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        match self.draw(rng) {
            Some(gamma) => {
                adjust_contrast(&mut sample, gamma, self.invert_image, self.retain_stats)?
            }
            None => require_finite(&sample, Self::NAME)?,
        }
        Ok(vec![sample])
    }
}

/// MONAI's `AdjustContrast` over the whole image, in f32:
/// `((v - min) / (range + 1e-7))^gamma * range + min`. With `invert_image` the image is
/// negated before and after (nnU-Net's inverted gamma); with `retain_stats` the result
/// is shifted and scaled back to the input's mean and (unbiased) standard deviation.
/// Fails on NaN or infinite voxels.
pub fn adjust_contrast(
    sample: &mut Sample,
    gamma: f64,
    invert_image: bool,
    retain_stats: bool,
) -> Result<()> {
    let input = Moments::of(voxels(sample), false);
    if !input.is_finite() {
        let bad = count_non_finite(voxels(sample));
        return Err(non_finite_error(sample, RandAdjustContrast::NAME, bad));
    }
    if input.count == 0 {
        return Ok(());
    }
    let sign: f32 = if invert_image { -1.0 } else { 1.0 };
    let (lo, hi) = extremes(voxels(sample));
    let (min, max) = if invert_image { (-hi, -lo) } else { (lo, hi) };
    let range = max - min;
    let denom = range + 1e-7;
    let gamma = gamma as f32;
    let curve = move |v: f32| ((sign * v - min) / denom).powf(gamma) * range + min;
    let values = voxels_mut(sample);
    if !retain_stats {
        map_voxels(values, |v| sign * curve(v));
        return Ok(());
    }
    map_voxels(values, curve);
    let mean = (f64::from(sign) * input.mean) as f32;
    let std = input.std_unbiased() as f32;
    let curved = Moments::of(values, false);
    let curved_mean = curved.mean as f32;
    let curved_std = curved.std_unbiased() as f32 + 1e-8;
    map_voxels(values, |v| {
        sign * (std * ((v - curved_mean) / curved_std) + mean)
    });
    Ok(())
}

//! Random intensity scaling and shifting, the cheapest appearance augmentations: they
//! make a model robust to scanner gain and offset differences.

use serde::Deserialize;

use super::params::{Numbers, check_prob, coin, default_prob, uniform};
use super::{channel_len, map_voxels, non_finite_error, require_finite, voxels, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `RandScaleIntensityd`: with probability `prob`, `v * (1 + factor)` with
/// `factor` uniform in `factors` (a number `x` means `(-x, x)`), one per channel when
/// `channel_wise`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandScaleIntensity {
    factors: Numbers,
    #[serde(default = "default_prob")]
    prob: f64,
    #[serde(default)]
    channel_wise: bool,
}

/// MONAI's `RandShiftIntensityd`: with probability `prob`, `v + offset` with `offset`
/// uniform in `offsets` (a number `x` means `(-x, x)`), one per channel when
/// `channel_wise`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandShiftIntensity {
    offsets: Numbers,
    #[serde(default = "default_prob")]
    prob: f64,
    #[serde(default)]
    channel_wise: bool,
}

impl FromParams for RandScaleIntensity {
    const NAME: &'static str = "rand_scale_intensity";
    const MONAI: &'static str = "RandScaleIntensityd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        params.factors.check_range(Self::NAME, "factors")?;
        check_prob(Self::NAME, params.prob)?;
        Ok(params)
    }
}

impl FromParams for RandShiftIntensity {
    const NAME: &'static str = "rand_shift_intensity";
    const MONAI: &'static str = "RandShiftIntensityd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        params.offsets.check_range(Self::NAME, "offsets")?;
        check_prob(Self::NAME, params.prob)?;
        Ok(params)
    }
}

impl RandScaleIntensity {
    /// The drawn factors (one, or one per channel), or `None` when the step is skipped.
    pub fn draw(&self, rng: &mut Rng, channels: usize) -> Option<Vec<f64>> {
        draw_per_channel(rng, self.prob, &self.factors, self.channel_wise, channels)
    }
}

impl RandShiftIntensity {
    /// The drawn offsets (one, or one per channel), or `None` when the step is skipped.
    pub fn draw(&self, rng: &mut Rng, channels: usize) -> Option<Vec<f64>> {
        draw_per_channel(rng, self.prob, &self.offsets, self.channel_wise, channels)
    }
}

/// MONAI's draw order: the coin, then one uniform value (or one per channel).
fn draw_per_channel(
    rng: &mut Rng,
    prob: f64,
    range: &Numbers,
    channel_wise: bool,
    channels: usize,
) -> Option<Vec<f64>> {
    if !coin(rng, prob) {
        return None;
    }
    let range = range.symmetric_range();
    let n = if channel_wise { channels } else { 1 };
    Some((0..n).map(|_| uniform(rng, range)).collect())
}

impl Transform for RandScaleIntensity {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        match self.draw(rng, sample.image.channels()) {
            Some(factors) => scale_intensity(&mut sample, &factors)?,
            None => require_finite(&sample, Self::NAME)?,
        }
        Ok(vec![sample])
    }
}

impl Transform for RandShiftIntensity {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, mut sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        match self.draw(rng, sample.image.channels()) {
            Some(offsets) => shift_intensity(&mut sample, &offsets)?,
            None => require_finite(&sample, Self::NAME)?,
        }
        Ok(vec![sample])
    }
}

/// `v * (1 + factor)` (MONAI's `ScaleIntensity(factor=...)`), with one factor for the
/// whole image or one per channel. Fails on NaN or infinite voxels.
pub fn scale_intensity(sample: &mut Sample, factors: &[f64]) -> Result<()> {
    let scales: Vec<f64> = factors.iter().map(|f| 1.0 + f).collect();
    per_channel(sample, RandScaleIntensity::NAME, &scales, |v, s| v * s)
}

/// `v + offset` (MONAI's `ShiftIntensity`), with one offset for the whole image or one
/// per channel. Fails on NaN or infinite voxels.
pub fn shift_intensity(sample: &mut Sample, offsets: &[f64]) -> Result<()> {
    per_channel(sample, RandShiftIntensity::NAME, offsets, |v, o| v + o)
}

/// Applies `op(voxel, value as f32)` with one value for the whole image or one value
/// per channel.
fn per_channel(
    sample: &mut Sample,
    transform: &str,
    values: &[f64],
    op: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    let channels = sample.image.channels();
    let group = match values.len() {
        1 => voxels(sample).len().max(1),
        n if n == channels => channel_len(sample),
        n => {
            return Err(sample.error(format!(
                "`{transform}` got {n} values for an image with {channels} channels"
            )));
        }
    };
    let mut bad = 0;
    for (voxels, &value) in voxels_mut(sample).chunks_mut(group).zip(values) {
        let value = value as f32;
        bad += map_voxels(voxels, |v| op(v, value));
    }
    if bad > 0 {
        return Err(non_finite_error(sample, transform, bad));
    }
    Ok(())
}

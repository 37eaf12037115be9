//! Clipping at intensity percentiles: removes outliers (metal, air, bright vessels)
//! before normalisation, hard or with MONAI's soft (softplus) clip.

use serde::Deserialize;

use super::params::{check_finite, check_percentile, invalid};
use super::window::{group_len, percentile_pairs};
use super::{map_voxels, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `ClipIntensityPercentilesd`: clips to the `lower` and `upper` percentiles of
/// the image (or of each channel when `channel_wise`); a missing bound does not clip.
/// With `sharpness_factor` `c` the clip is soft:
/// `v + softplus(-c (v - lo)) / c - softplus(c (v - hi)) / c`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipIntensityPercentiles {
    #[serde(default)]
    lower: Option<f64>,
    #[serde(default)]
    upper: Option<f64>,
    #[serde(default)]
    sharpness_factor: Option<f64>,
    #[serde(default)]
    channel_wise: bool,
}

impl FromParams for ClipIntensityPercentiles {
    const NAME: &'static str = "clip_intensity_percentiles";
    const MONAI: &'static str = "ClipIntensityPercentilesd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        if params.lower.is_none() && params.upper.is_none() {
            return Err(invalid(
                Self::NAME,
                "lower",
                "or `upper` is needed (or both)",
            ));
        }
        for (name, value) in [("lower", params.lower), ("upper", params.upper)] {
            if let Some(v) = value {
                check_percentile(Self::NAME, name, v)?;
            }
        }
        if let (Some(lower), Some(upper)) = (params.lower, params.upper) {
            if upper < lower {
                return Err(invalid(
                    Self::NAME,
                    "upper",
                    format!("({upper}) must not be below `lower` ({lower})"),
                ));
            }
        }
        if let Some(c) = params.sharpness_factor {
            check_finite(Self::NAME, "sharpness_factor", &[c])?;
            if c as f32 <= 0.0 {
                return Err(invalid(
                    Self::NAME,
                    "sharpness_factor",
                    format!("must be positive, got {c}"),
                ));
            }
        }
        Ok(params)
    }
}

impl Transform for ClipIntensityPercentiles {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, mut sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let group = group_len(&sample, self.channel_wise);
        let (lower, upper) = (self.lower.unwrap_or(0.0), self.upper.unwrap_or(100.0));
        let bounds = percentile_pairs(&sample, Self::NAME, group, lower, upper)?;
        for (values, [lo, hi]) in voxels_mut(&mut sample).chunks_mut(group).zip(bounds) {
            let lo = self.lower.map(|_| lo);
            let hi = self.upper.map(|_| hi);
            match self.sharpness_factor {
                None => {
                    let (lo, hi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
                    map_voxels(values, |v| v.max(lo).min(hi))
                }
                Some(c) => {
                    let c = c as f32;
                    map_voxels(values, |v| soft_clip(v, c, lo, hi))
                }
            };
        }
        Ok(vec![sample])
    }
}

/// MONAI's `soft_clip` of one voxel, in f32 and in its order of operations.
fn soft_clip(v: f32, c: f32, lo: Option<f32>, hi: Option<f32>) -> f32 {
    let mut out = v;
    if let Some(lo) = lo {
        out += softplus(-c * (v - lo)) / c;
    }
    if let Some(hi) = hi {
        out -= softplus(c * (v - hi)) / c;
    }
    out
}

/// `log(1 + e^x)` as torch's `logaddexp(0, x)` computes it, stable for large `|x|`.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

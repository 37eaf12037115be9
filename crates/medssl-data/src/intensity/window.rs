//! Windowing: mapping an input intensity range `[a_min, a_max]` linearly onto
//! `[b_min, b_max]`, with the range fixed (a CT window in HU) or taken from percentiles
//! of the image (MRI, whose intensities have no absolute scale).

use serde::Deserialize;

use super::params::{check_finite, check_percentile, invalid};
use super::stats::percentiles;
use super::{channel_len, count_non_finite, map_voxels, non_finite_error, voxels, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `ScaleIntensityRanged`: `(v - a_min) / (a_max - a_min) * (b_max - b_min) +
/// b_min`, then clipped to `[b_min, b_max]` when `clip`. Without `b_min`/`b_max` the
/// output is the unit-range value; `clip` then clips only at the bound given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleIntensityRange {
    a_min: f64,
    a_max: f64,
    #[serde(default)]
    b_min: Option<f64>,
    #[serde(default)]
    b_max: Option<f64>,
    #[serde(default)]
    clip: bool,
}

impl FromParams for ScaleIntensityRange {
    const NAME: &'static str = "scale_intensity_range";
    const MONAI: &'static str = "ScaleIntensityRanged";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        check_finite(Self::NAME, "a_min", &[params.a_min])?;
        check_finite(Self::NAME, "a_max", &[params.a_max])?;
        check_target(Self::NAME, params.b_min, params.b_max, params.clip)?;
        Ok(params)
    }
}

impl Transform for ScaleIntensityRange {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, mut sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let window = Window::new(
            self.a_min,
            self.a_max - self.a_min,
            self.b_min,
            self.b_max,
            self.clip,
        );
        let bad = window.apply(voxels_mut(&mut sample));
        if bad > 0 {
            return Err(non_finite_error(&sample, Self::NAME, bad));
        }
        Ok(vec![sample])
    }
}

/// MONAI's `ScaleIntensityRangePercentilesd`: [`ScaleIntensityRange`] from the image's
/// `lower` and `upper` percentiles (numpy's linear interpolation), over the whole image
/// or each channel. With `relative`, the target is the same percentiles of
/// `[b_min, b_max]` instead of the whole range.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleIntensityRangePercentiles {
    lower: f64,
    upper: f64,
    #[serde(default)]
    b_min: Option<f64>,
    #[serde(default)]
    b_max: Option<f64>,
    #[serde(default)]
    clip: bool,
    #[serde(default)]
    relative: bool,
    #[serde(default)]
    channel_wise: bool,
}

impl FromParams for ScaleIntensityRangePercentiles {
    const NAME: &'static str = "scale_intensity_range_percentiles";
    const MONAI: &'static str = "ScaleIntensityRangePercentilesd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        check_percentile(Self::NAME, "lower", params.lower)?;
        check_percentile(Self::NAME, "upper", params.upper)?;
        if params.relative && (params.b_min.is_none() || params.b_max.is_none()) {
            return Err(invalid(
                Self::NAME,
                "relative",
                "= true needs `b_min` and `b_max`",
            ));
        }
        check_target(Self::NAME, params.b_min, params.b_max, params.clip)?;
        Ok(params)
    }
}

impl ScaleIntensityRangePercentiles {
    /// The target range, moved to the percentiles of `[b_min, b_max]` when `relative`.
    fn target(&self) -> (Option<f64>, Option<f64>) {
        match (self.relative, self.b_min, self.b_max) {
            (true, Some(lo), Some(hi)) => (
                Some((hi - lo) * (self.lower / 100.0) + lo),
                Some((hi - lo) * (self.upper / 100.0) + lo),
            ),
            _ => (self.b_min, self.b_max),
        }
    }
}

impl Transform for ScaleIntensityRangePercentiles {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, mut sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let group = group_len(&sample, self.channel_wise);
        let (b_min, b_max) = self.target();
        let windows = percentile_pairs(&sample, Self::NAME, group, self.lower, self.upper)?
            .into_iter()
            .map(|[lo, hi]| Window::new(f64::from(lo), f64::from(hi - lo), b_min, b_max, self.clip))
            .collect::<Vec<_>>();
        for (values, window) in voxels_mut(&mut sample).chunks_mut(group).zip(windows) {
            window.apply(values);
        }
        Ok(vec![sample])
    }
}

/// Voxels per statistics group: one channel when `channel_wise`, else the whole image
/// (at least 1, so `chunks` of an empty image yield nothing).
pub(super) fn group_len(sample: &Sample, channel_wise: bool) -> usize {
    if channel_wise {
        channel_len(sample)
    } else {
        voxels(sample).len().max(1)
    }
}

/// The `lower` and `upper` percentiles of each group of `group` voxels, rounded to f32
/// as MONAI's percentiles of a float32 tensor are; fails on NaN or infinite voxels.
pub(super) fn percentile_pairs(
    sample: &Sample,
    transform: &str,
    group: usize,
    lower: f64,
    upper: f64,
) -> Result<Vec<[f32; 2]>> {
    let mut scratch = Vec::with_capacity(group);
    voxels(sample)
        .chunks(group)
        .map(|values| {
            scratch.clear();
            scratch.extend_from_slice(values);
            if scratch.iter().any(|v| !v.is_finite()) {
                let bad = count_non_finite(voxels(sample));
                return Err(non_finite_error(sample, transform, bad));
            }
            let p = percentiles(&mut scratch, &[lower, upper]);
            Ok([p[0] as f32, p[1] as f32])
        })
        .collect()
}

/// Checks the target bounds; MONAI's clip without either bound is an error (torch's
/// `clamp` needs one).
fn check_target(transform: &str, b_min: Option<f64>, b_max: Option<f64>, clip: bool) -> Result<()> {
    for (name, value) in [("b_min", b_min), ("b_max", b_max)] {
        if let Some(v) = value {
            check_finite(transform, name, &[v])?;
        }
    }
    if clip && b_min.is_none() && b_max.is_none() {
        return Err(invalid(
            transform,
            "clip",
            "= true needs `b_min` or `b_max`",
        ));
    }
    Ok(())
}

/// The map MONAI's `ScaleIntensityRange` applies, in f32 with its constants rounded to
/// f32 as torch rounds a Python float meeting a float32 tensor.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// `a_min == a_max`: MONAI subtracts `a_min` (and adds `b_min` when given) instead
    /// of dividing by zero, and does not clip.
    Shift { a_min: f32, b_min: Option<f32> },
    /// `((v - a_min) / a_range * b_range + b_min)` clamped to `[lo, hi]` (infinite
    /// bounds when not clipping; `b_range = 1`, `b_min = 0` without a target).
    Scale {
        a_min: f32,
        a_range: f32,
        b_min: f32,
        b_range: f32,
        lo: f32,
        hi: f32,
    },
}

impl Window {
    fn new(a_min: f64, a_range: f64, b_min: Option<f64>, b_max: Option<f64>, clip: bool) -> Window {
        let a_min = a_min as f32;
        if a_range as f32 == 0.0 {
            return Window::Shift {
                a_min,
                b_min: b_min.map(|b| b as f32),
            };
        }
        let (offset, b_range) = match (b_min, b_max) {
            (Some(lo), Some(hi)) => (lo as f32, (hi - lo) as f32),
            _ => (0.0, 1.0),
        };
        let bound = |b: Option<f64>, none: f32| match b {
            Some(b) if clip => b as f32,
            _ => none,
        };
        Window::Scale {
            a_min,
            a_range: a_range as f32,
            b_min: offset,
            b_range,
            lo: bound(b_min, f32::NEG_INFINITY),
            hi: bound(b_max, f32::INFINITY),
        }
    }

    /// Maps `values` in place; returns how many input voxels were NaN or infinite.
    fn apply(self, values: &mut [f32]) -> usize {
        match self {
            Window::Shift { a_min, b_min: None } => map_voxels(values, |v| v - a_min),
            Window::Shift {
                a_min,
                b_min: Some(b_min),
            } => map_voxels(values, |v| v - a_min + b_min),
            // torch's clamp: max with the lower bound first, then min with the upper
            // (so an upper bound below the lower one wins, as in MONAI).
            Window::Scale {
                a_min,
                a_range,
                b_min,
                b_range,
                lo,
                hi,
            } => map_voxels(values, |v| {
                ((v - a_min) / a_range * b_range + b_min).max(lo).min(hi)
            }),
        }
    }
}

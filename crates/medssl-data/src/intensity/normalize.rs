//! Z-score normalisation, the usual MRI intensity step (and CT's after windowing).

use serde::Deserialize;

use super::params::{Numbers, check_finite, invalid};
use super::stats::Moments;
use super::window::group_len;
use super::{count_non_finite, map_voxels, non_finite_error, voxels, voxels_mut};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::transform::FromParams;
use crate::transform::Transform;

/// MONAI's `NormalizeIntensityd`: `(v - subtrahend) / divisor`, with the mean and the
/// population standard deviation (torch's `unbiased=False`) of the image, or of each
/// channel when `channel_wise`, where `subtrahend`/`divisor` are not given. With
/// `nonzero`, statistics and output cover the non-zero voxels only (zeros stay zero, a
/// group without non-zero voxels is left as it is). A standard deviation of 0 divides
/// by 1, as in MONAI.
///
/// `subtrahend` and `divisor` are one number, or with `channel_wise` a list with one
/// value per channel (a single number then serves every channel). A configured divisor
/// of 0 is an error rather than MONAI's silent 1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeIntensity {
    #[serde(default)]
    subtrahend: Option<Numbers>,
    #[serde(default)]
    divisor: Option<Numbers>,
    #[serde(default)]
    nonzero: bool,
    #[serde(default)]
    channel_wise: bool,
}

impl FromParams for NormalizeIntensity {
    const NAME: &'static str = "normalize_intensity";
    const MONAI: &'static str = "NormalizeIntensityd";

    type Params = Self;

    fn from_params(params: Self) -> Result<Self> {
        for (name, param) in [
            ("subtrahend", &params.subtrahend),
            ("divisor", &params.divisor),
        ] {
            let Some(numbers) = param else { continue };
            check_finite(Self::NAME, name, numbers.values())?;
            if let Numbers::Many(values) = numbers {
                if !params.channel_wise {
                    return Err(invalid(
                        Self::NAME,
                        name,
                        "as a list (one value per channel) needs `channel_wise = true`",
                    ));
                }
                if values.is_empty() {
                    return Err(invalid(Self::NAME, name, "is an empty list"));
                }
            }
        }
        let divisors = params.divisor.as_ref().map_or(&[][..], Numbers::values);
        if divisors.iter().any(|&d| d as f32 == 0.0) {
            return Err(invalid(Self::NAME, "divisor", "must not be 0"));
        }
        Ok(params)
    }
}

impl NormalizeIntensity {
    /// The configured value of `param` for group `g` of `groups`, or an error when a
    /// per-channel list does not match the channel count.
    fn given(
        &self,
        sample: &Sample,
        name: &str,
        param: &Option<Numbers>,
        g: usize,
        groups: usize,
    ) -> Result<Option<f64>> {
        match param {
            None => Ok(None),
            Some(Numbers::One(v)) => Ok(Some(*v)),
            Some(Numbers::Many(values)) if values.len() == groups => Ok(Some(values[g])),
            Some(Numbers::Many(values)) => Err(sample.error(format!(
                "`{}` has {} `{name}` values for an image with {groups} channels",
                Self::NAME,
                values.len()
            ))),
        }
    }

    /// `(subtrahend, divisor)` in f32 for each group, `None` for a group left unchanged.
    fn plan(&self, sample: &Sample, group: usize) -> Result<Vec<Option<(f32, f32)>>> {
        let groups = voxels(sample).len().div_ceil(group);
        voxels(sample)
            .chunks(group)
            .enumerate()
            .map(|(g, values)| {
                let sub = self.given(sample, "subtrahend", &self.subtrahend, g, groups)?;
                let div = self.given(sample, "divisor", &self.divisor, g, groups)?;
                let (sub, div) = match (sub, div) {
                    (Some(sub), Some(div)) => (sub, div),
                    _ => {
                        let m = Moments::of(values, self.nonzero);
                        if !m.is_finite() {
                            let bad = count_non_finite(voxels(sample));
                            return Err(non_finite_error(sample, Self::NAME, bad));
                        }
                        if m.count == 0 {
                            return Ok(None);
                        }
                        (sub.unwrap_or(m.mean), div.unwrap_or_else(|| m.std()))
                    }
                };
                let div = match div as f32 {
                    0.0 => 1.0,
                    d => d,
                };
                Ok(Some((sub as f32, div)))
            })
            .collect()
    }
}

impl Transform for NormalizeIntensity {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, mut sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let group = group_len(&sample, self.channel_wise);
        let plan = self.plan(&sample, group)?;
        let mut bad = 0;
        for (values, step) in voxels_mut(&mut sample).chunks_mut(group).zip(plan) {
            let Some((sub, div)) = step else { continue };
            bad += if self.nonzero {
                map_voxels(values, |v| if v != 0.0 { (v - sub) / div } else { v })
            } else {
                map_voxels(values, |v| (v - sub) / div)
            };
        }
        if bad > 0 {
            return Err(non_finite_error(&sample, Self::NAME, bad));
        }
        Ok(vec![sample])
    }
}

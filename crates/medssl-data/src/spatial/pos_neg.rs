//! `rand_crop_by_pos_neg_label`: `num_samples` crops per volume, each centred on a
//! label-foreground voxel with probability `pos / (pos + neg)` and on a background voxel
//! otherwise (MONAI's `RandCropByPosNegLabeld`). With `image_threshold` set, background
//! centres are restricted to voxels where the image exceeds it in some channel (MONAI's
//! `image_key` + `image_threshold`), which keeps crops off the air around a scan.
//!
//! Centres are moved inwards so every crop lies inside the volume (MONAI's
//! `correct_crop_centers`). Differences from MONAI, both to keep training running:
//! a volume smaller than the crop is first padded with 0 (symmetrically) to the crop
//! size, where MONAI raises an error; a volume without foreground draws every centre from
//! the background, as MONAI does after its warning.
//!
//! Candidates are never listed: one parallel pass counts foreground and background per
//! slice, and each drawn rank is found by scanning a single slice.

use rand::RngExt;
use rayon::prelude::*;
use serde::Deserialize;

use crate::checks::{check_sizes, invalid};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::crop::{PadMethod, pad_to};
use crate::spatial::params::Triple;
use crate::spatial::region::extract_sample;
use crate::transform::Transform;

/// Parameters of `rand_crop_by_pos_neg_label`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandCropByPosNegLabelParams {
    /// Crop size.
    pub spatial_size: Triple<usize>,
    /// Weight of foreground centres.
    #[serde(default = "one")]
    pub pos: f64,
    /// Weight of background centres.
    #[serde(default = "one")]
    pub neg: f64,
    /// Crops returned per volume.
    #[serde(default = "one_sample")]
    pub num_samples: usize,
    /// When set, background centres need an image value above this in some channel.
    #[serde(default)]
    pub image_threshold: Option<f32>,
}

fn one() -> f64 {
    1.0
}

fn one_sample() -> usize {
    1
}

/// Crops around foreground and background voxels in a set ratio.
#[derive(Debug, Clone)]
pub struct RandCropByPosNegLabel {
    size: [usize; 3],
    pos_ratio: f64,
    num_samples: usize,
    image_threshold: Option<f32>,
}

impl FromParams for RandCropByPosNegLabel {
    const NAME: &'static str = "rand_crop_by_pos_neg_label";
    const MONAI: &'static str = "RandCropByPosNegLabeld";
    type Params = RandCropByPosNegLabelParams;

    fn from_params(p: RandCropByPosNegLabelParams) -> Result<RandCropByPosNegLabel> {
        check_sizes(Self::NAME, "spatial_size", p.spatial_size.0)?;
        for (name, value) in [("pos", p.pos), ("neg", p.neg)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(invalid(
                    Self::NAME,
                    name,
                    format!("must be a finite number >= 0, got {value}"),
                ));
            }
        }
        if p.pos + p.neg == 0.0 {
            return Err(invalid(
                Self::NAME,
                "pos",
                "and `neg` are both 0; at least one must be positive",
            ));
        }
        if p.num_samples == 0 {
            return Err(invalid(Self::NAME, "num_samples", "must be at least 1"));
        }
        if p.image_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(invalid(Self::NAME, "image_threshold", "must be finite"));
        }
        Ok(RandCropByPosNegLabel {
            size: p.spatial_size.0,
            pos_ratio: p.pos / (p.pos + p.neg),
            num_samples: p.num_samples,
            image_threshold: p.image_threshold,
        })
    }
}

/// MONAI's `correct_crop_centers` for a crop of `size` in a volume of `shape`: each
/// centre coordinate is clamped to `[size / 2, shape - ceil(size / 2)]`, so the crop
/// starting at `centre - size / 2` lies inside the volume (when `size <= shape`; callers
/// pad first).
pub fn correct_crop_center(center: [usize; 3], size: [usize; 3], shape: [usize; 3]) -> [usize; 3] {
    std::array::from_fn(|a| {
        let low = size[a] / 2;
        let high = (shape[a] + 1)
            .saturating_sub(size[a].div_ceil(2))
            .max(low + 1)
            - 1;
        center[a].clamp(low, high)
    })
}

/// The voxels a centre may be drawn from, counted per slice along the first axis.
struct Candidates<'a> {
    label: &'a [f32],
    image: &'a [f32],
    voxels: usize,
    plane: usize,
    threshold: Option<f32>,
    /// `before[class][i]`: candidates of `class` (0 background, 1 foreground) in slices
    /// before `i`; the last entry is the total.
    before: [Vec<usize>; 2],
}

impl<'a> Candidates<'a> {
    fn count(sample: &'a Sample, label: &'a medssl_io::Volume, threshold: Option<f32>) -> Self {
        let [n0, n1, n2] = sample.spatial_shape();
        let mut c = Candidates {
            label: label
                .data()
                .as_slice()
                .expect("Volume keeps its voxels in standard layout"),
            image: sample
                .image
                .data()
                .as_slice()
                .expect("Volume keeps its voxels in standard layout"),
            voxels: n0 * n1 * n2,
            plane: n1 * n2,
            threshold,
            before: [vec![0], vec![0]],
        };
        let per_slice: Vec<[usize; 2]> = (0..n0)
            .into_par_iter()
            .map(|i| {
                let mut counts = [0usize; 2];
                for v in i * c.plane..(i + 1) * c.plane {
                    if c.is(true, v) {
                        counts[1] += 1;
                    } else if c.is(false, v) {
                        counts[0] += 1;
                    }
                }
                counts
            })
            .collect();
        for counts in per_slice {
            for (before, count) in c.before.iter_mut().zip(counts) {
                let total = before.last().copied().unwrap_or(0);
                before.push(total + count);
            }
        }
        c
    }

    fn total(&self, foreground: bool) -> usize {
        self.before[usize::from(foreground)]
            .last()
            .copied()
            .unwrap_or(0)
    }

    /// Whether voxel `v` (flat spatial index) is a foreground / background candidate.
    fn is(&self, foreground: bool, v: usize) -> bool {
        let labelled = self.label[v] != 0.0;
        if foreground || labelled {
            return foreground && labelled;
        }
        self.threshold
            .is_none_or(|t| self.image[v..].iter().step_by(self.voxels).any(|&x| x > t))
    }

    /// The flat index of the `rank`-th candidate of the class (`rank < total`).
    fn nth(&self, foreground: bool, rank: usize) -> usize {
        let before = &self.before[usize::from(foreground)];
        let slice = before.partition_point(|&b| b <= rank) - 1;
        let mut left = rank - before[slice];
        for v in slice * self.plane..(slice + 1) * self.plane {
            if self.is(foreground, v) {
                if left == 0 {
                    return v;
                }
                left -= 1;
            }
        }
        unreachable!("slice {slice} holds fewer candidates than counted")
    }
}

impl Transform for RandCropByPosNegLabel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn fan_out(&self) -> usize {
        self.num_samples
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let sample = pad_to(sample, self.size, PadMethod::Symmetric);
        let label = sample.label.as_ref().ok_or_else(|| {
            sample.error(format!(
                "{}: the case has no label map to choose crop centres from",
                Self::NAME
            ))
        })?;
        let shape = sample.spatial_shape();
        let candidates = Candidates::count(&sample, label, self.image_threshold);
        let (fg, bg) = (candidates.total(true), candidates.total(false));
        if fg + bg == 0 {
            return Err(sample.error(format!(
                "{}: the label is empty and no image voxel exceeds image_threshold {:?}, so \
                 there is no voxel to centre a crop on",
                Self::NAME,
                self.image_threshold
            )));
        }
        let ratio = match (fg, bg) {
            (0, _) => 0.0,
            (_, 0) => 1.0,
            _ => self.pos_ratio,
        };
        Ok((0..self.num_samples)
            .map(|_| {
                let foreground = rng.random::<f64>() < ratio;
                let rank = rng.random_range(0..candidates.total(foreground));
                let v = candidates.nth(foreground, rank);
                let center = [
                    v / candidates.plane,
                    (v / shape[2]) % shape[1],
                    v % shape[2],
                ];
                let center = correct_crop_center(center, self.size, shape);
                let start = std::array::from_fn(|a| (center[a] - self.size[a] / 2) as isize);
                extract_sample(&sample, start, self.size, 0.0)
            })
            .collect())
    }
}

//! Crops and pads on the voxel grid (no interpolation): `crop_foreground`
//! (MONAI's `CropForegroundd`), `spatial_pad` (`SpatialPadd`), `center_spatial_crop`
//! (`CenterSpatialCropd`) and `rand_spatial_crop` (`RandSpatialCropd`). Padding is the
//! constant 0 for image and label, MONAI's default. Every box goes through
//! [`extract_sample`], which keeps world positions in the affine.

use rand::RngExt;
use rayon::prelude::*;
use serde::Deserialize;

use crate::checks::{check_sizes, invalid};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::params::Triple;
use crate::spatial::region::extract_sample;
use crate::transform::Transform;
use medssl_io::Volume;

/// Parameters of `crop_foreground`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropForegroundParams {
    /// Image voxels above this value (in any channel) are foreground (MONAI's
    /// `select_fn=lambda x: x > threshold`).
    #[serde(default)]
    pub threshold: f32,
    /// Voxels added around the foreground box on each side.
    #[serde(default = "zero_triple")]
    pub margin: Triple<usize>,
    /// Keep the box inside the image when the margin reaches past it; when false
    /// (MONAI 1.6's default) the box keeps its size and the outside is padded with 0.
    #[serde(default)]
    pub allow_smaller: bool,
    /// Grow the box (about its centre) to a multiple of this on each axis.
    #[serde(default = "one_triple")]
    pub k_divisible: Triple<usize>,
}

fn zero_triple() -> Triple<usize> {
    Triple([0; 3])
}

fn one_triple() -> Triple<usize> {
    Triple([1; 3])
}

/// Crops image and label to the box around the image's foreground.
#[derive(Debug, Clone)]
pub struct CropForeground {
    params: CropForegroundParams,
}

impl FromParams for CropForeground {
    const NAME: &'static str = "crop_foreground";
    const MONAI: &'static str = "CropForegroundd";
    type Params = CropForegroundParams;

    fn from_params(params: CropForegroundParams) -> Result<CropForeground> {
        check_sizes(Self::NAME, "k_divisible", params.k_divisible.0)?;
        if !params.threshold.is_finite() {
            return Err(invalid(Self::NAME, "threshold", "must be finite"));
        }
        Ok(CropForeground { params })
    }
}

/// Inclusive `[first, last]` voxel range along each axis of the voxels above
/// `threshold` in any channel; `None` when there are none.
pub fn foreground_bounds(volume: &Volume, threshold: f32) -> Option<[[usize; 2]; 3]> {
    let [n0, n1, n2] = volume.spatial_shape();
    if n0 * n1 * n2 == 0 {
        return None;
    }
    let data = volume
        .data()
        .as_slice()
        .expect("Volume keeps its voxels in standard layout");
    let plane = n1 * n2;
    // Per channel and plane i: the (j, k) bounds of that plane's foreground.
    data.par_chunks(plane)
        .enumerate()
        .filter_map(|(index, plane)| {
            let i = index % n0;
            let mut bounds: Option<[[usize; 2]; 3]> = None;
            for (j, row) in plane.chunks(n2).enumerate() {
                let Some(first) = row.iter().position(|&v| v > threshold) else {
                    continue;
                };
                let last = row.iter().rposition(|&v| v > threshold).unwrap_or(first);
                let found = [[i, i], [j, j], [first, last]];
                bounds = Some(bounds.map_or(found, |b| union(b, found)));
            }
            bounds
        })
        .reduce_with(union)
}

fn union(a: [[usize; 2]; 3], b: [[usize; 2]; 3]) -> [[usize; 2]; 3] {
    std::array::from_fn(|d| [a[d][0].min(b[d][0]), a[d][1].max(b[d][1])])
}

impl CropForeground {
    /// MONAI's box: the foreground bounds plus margin (clipped to the image when
    /// `allow_smaller`), grown about its centre to a multiple of `k_divisible`.
    fn bounding_box(&self, bounds: [[usize; 2]; 3], shape: [usize; 3]) -> ([isize; 3], [usize; 3]) {
        let p = &self.params;
        let mut start = [0isize; 3];
        let mut size = [0usize; 3];
        for a in 0..3 {
            let mut lo = bounds[a][0] as isize - p.margin.0[a] as isize;
            let mut hi = (bounds[a][1] + 1 + p.margin.0[a]) as isize;
            if p.allow_smaller {
                lo = lo.max(0);
                hi = hi.min(shape[a] as isize);
            }
            let extent = (hi - lo) as usize;
            size[a] = extent.div_ceil(p.k_divisible.0[a]) * p.k_divisible.0[a];
            start[a] = lo - ((size[a] - extent) / 2) as isize;
        }
        (start, size)
    }
}

impl Transform for CropForeground {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let bounds = foreground_bounds(&sample.image, self.params.threshold).ok_or_else(|| {
            sample.error(format!(
                "crop_foreground: no image voxel is above the threshold {}, so there is no \
                 foreground to crop to",
                self.params.threshold
            ))
        })?;
        let (start, size) = self.bounding_box(bounds, sample.spatial_shape());
        Ok(vec![extract_sample(&sample, start, size, 0.0)])
    }
}

/// Where padding goes (MONAI's `Method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMethod {
    /// Half before, half (the larger half when odd) after.
    #[default]
    Symmetric,
    /// All after the last voxel.
    End,
}

/// Parameters of `spatial_pad`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpatialPadParams {
    /// Minimum output size; axes already this large are left as they are.
    pub spatial_size: Triple<usize>,
    #[serde(default)]
    pub method: PadMethod,
}

/// Pads image and label with 0 up to a minimum size.
#[derive(Debug, Clone)]
pub struct SpatialPad {
    params: SpatialPadParams,
}

impl FromParams for SpatialPad {
    const NAME: &'static str = "spatial_pad";
    const MONAI: &'static str = "SpatialPadd";
    type Params = SpatialPadParams;

    fn from_params(params: SpatialPadParams) -> Result<SpatialPad> {
        check_sizes(Self::NAME, "spatial_size", params.spatial_size.0)?;
        Ok(SpatialPad { params })
    }
}

/// Pads `sample` with 0 to at least `size` voxels per axis.
pub fn pad_to(sample: Sample, size: [usize; 3], method: PadMethod) -> Sample {
    let shape = sample.spatial_shape();
    if (0..3).all(|a| shape[a] >= size[a]) {
        return sample;
    }
    let out: [usize; 3] = std::array::from_fn(|a| shape[a].max(size[a]));
    let start: [isize; 3] = std::array::from_fn(|a| match method {
        PadMethod::Symmetric => -(((out[a] - shape[a]) / 2) as isize),
        PadMethod::End => 0,
    });
    extract_sample(&sample, start, out, 0.0)
}

impl Transform for SpatialPad {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        Ok(vec![pad_to(
            sample,
            self.params.spatial_size.0,
            self.params.method,
        )])
    }
}

/// MONAI's centred box of `roi` in `shape`: it starts at `shape / 2 - roi / 2` and is
/// cut to the image on axes where the image is smaller (the crop never pads).
fn center_box(shape: [usize; 3], roi: [usize; 3]) -> ([isize; 3], [usize; 3]) {
    let start: [usize; 3] = std::array::from_fn(|a| (shape[a] / 2).saturating_sub(roi[a] / 2));
    let size = std::array::from_fn(|a| (start[a] + roi[a]).min(shape[a]) - start[a]);
    (start.map(|s| s as isize), size)
}

/// Parameters of `center_spatial_crop`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterSpatialCropParams {
    /// Box size; an image smaller than it on an axis keeps its whole extent there.
    pub roi_size: Triple<usize>,
}

/// Crops image and label to a centred box.
#[derive(Debug, Clone)]
pub struct CenterSpatialCrop {
    params: CenterSpatialCropParams,
}

impl FromParams for CenterSpatialCrop {
    const NAME: &'static str = "center_spatial_crop";
    const MONAI: &'static str = "CenterSpatialCropd";
    type Params = CenterSpatialCropParams;

    fn from_params(params: CenterSpatialCropParams) -> Result<CenterSpatialCrop> {
        check_sizes(Self::NAME, "roi_size", params.roi_size.0)?;
        Ok(CenterSpatialCrop { params })
    }
}

impl Transform for CenterSpatialCrop {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let (start, size) = center_box(sample.spatial_shape(), self.params.roi_size.0);
        Ok(vec![extract_sample(&sample, start, size, 0.0)])
    }
}

/// Parameters of `rand_spatial_crop`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandSpatialCropParams {
    /// Box size; an image smaller than it on an axis keeps its whole extent there
    /// (put `spatial_pad` first for a fixed output size).
    pub roi_size: Triple<usize>,
    /// Place the box uniformly at random; when false it is centred (and the step is
    /// deterministic).
    #[serde(default = "yes")]
    pub random_center: bool,
}

fn yes() -> bool {
    true
}

/// Crops image and label to a box at a uniformly random position.
#[derive(Debug, Clone)]
pub struct RandSpatialCrop {
    params: RandSpatialCropParams,
}

impl FromParams for RandSpatialCrop {
    const NAME: &'static str = "rand_spatial_crop";
    const MONAI: &'static str = "RandSpatialCropd";
    type Params = RandSpatialCropParams;

    fn from_params(params: RandSpatialCropParams) -> Result<RandSpatialCrop> {
        check_sizes(Self::NAME, "roi_size", params.roi_size.0)?;
        Ok(RandSpatialCrop { params })
    }
}

impl Transform for RandSpatialCrop {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        self.params.random_center
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let shape = sample.spatial_shape();
        let roi = self.params.roi_size.0;
        let (start, size) = if self.params.random_center {
            let size: [usize; 3] = std::array::from_fn(|a| roi[a].min(shape[a]));
            let start = std::array::from_fn(|a| rng.random_range(0..=shape[a] - size[a]) as isize);
            (start, size)
        } else {
            center_box(shape, roi)
        };
        Ok(vec![extract_sample(&sample, start, size, 0.0)])
    }
}

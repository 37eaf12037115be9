//! `rand_affine`: a random rotation, translation and scaling about the volume centre
//! (MONAI's `RandAffined`), sampled trilinearly (image) and nearest (label).
//!
//! As in MONAI, the matrix maps *output* voxel coordinates, centred on the output grid,
//! to input coordinates centred on the input grid: `A = R * T * S` with `R` the
//! rotations about axes 0, 1, 2 composed intrinsically (`Rx * Ry * Rz`), `T` the
//! translation in voxels and `S` the scaling. So a scale above 1 shrinks the content and
//! a positive translation moves it towards lower indices (MONAI's backward mapping).
//! The new affine is `affine * index_map`, keeping world positions consistent.

use medssl_io::Affine;
use medssl_io::nalgebra::{Matrix4, Vector3};
use rand::RngExt;
use serde::Deserialize;

use crate::checks::{check_prob, check_sizes, invalid};
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::params::{AxisRange, Triple};
use crate::spatial::resample::{Interpolation, Padding, resample_sample};
use crate::transform::Transform;

/// Parameters of `rand_affine`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandAffineParams {
    /// Probability of transforming (otherwise the sample passes unchanged, or is only
    /// cropped/padded to `spatial_size`).
    #[serde(default = "default_prob")]
    pub prob: f64,
    /// Rotation angle in radians about each axis: a list of 3 ranges, each `x` (for
    /// `[-x, x]`) or `[low, high]`.
    #[serde(default)]
    pub rotate_range: Option<[AxisRange; 3]>,
    /// Translation in voxels per axis, ranges as for `rotate_range`.
    #[serde(default)]
    pub translate_range: Option<[AxisRange; 3]>,
    /// Scale factor minus one per axis (0 is no change), ranges as for `rotate_range`.
    #[serde(default)]
    pub scale_range: Option<[AxisRange; 3]>,
    /// Output size (default: the input's), centred on the input.
    #[serde(default)]
    pub spatial_size: Option<Triple<usize>>,
    /// Image interpolation; the label is always read nearest.
    #[serde(default)]
    pub mode: Interpolation,
    /// What positions outside the input read (MONAI's default: `reflection`).
    #[serde(default = "default_padding")]
    pub padding_mode: Padding,
}

fn default_prob() -> f64 {
    0.1
}

fn default_padding() -> Padding {
    Padding::Reflection
}

/// Random affine augmentation of image and label.
#[derive(Debug, Clone)]
pub struct RandAffine {
    params: RandAffineParams,
}

impl FromParams for RandAffine {
    const NAME: &'static str = "rand_affine";
    const MONAI: &'static str = "RandAffined";
    type Params = RandAffineParams;

    fn from_params(params: RandAffineParams) -> Result<RandAffine> {
        check_prob(Self::NAME, params.prob)?;
        for (name, ranges) in [
            ("rotate_range", &params.rotate_range),
            ("translate_range", &params.translate_range),
            ("scale_range", &params.scale_range),
        ] {
            for r in ranges.iter().flatten() {
                if !(r.low.is_finite() && r.high.is_finite() && r.low <= r.high) {
                    return Err(invalid(
                        Self::NAME,
                        name,
                        format!(
                            "needs finite ranges with low <= high, got [{}, {}]",
                            r.low, r.high
                        ),
                    ));
                }
            }
        }
        if let Some(r) = params.scale_range.iter().flatten().find(|r| r.low <= -1.0) {
            return Err(invalid(
                Self::NAME,
                "scale_range",
                format!(
                    "ranges must stay above -1 (a scale factor of 1 + {} is not positive)",
                    r.low
                ),
            ));
        }
        if let Some(size) = params.spatial_size {
            check_sizes(Self::NAME, "spatial_size", size.0)?;
        }
        Ok(RandAffine { params })
    }
}

/// MONAI's `AffineGrid` matrix `R * T * S` for rotation angles (radians, about axes 0,
/// 1, 2, composed intrinsically), translation (voxels) and scale factors. It maps
/// centred output coordinates to centred input coordinates.
pub fn affine_matrix(rotate: [f64; 3], translate: [f64; 3], scale: [f64; 3]) -> Affine {
    let axis_rotation = |axis: usize, angle: f64| {
        let (s, c) = angle.sin_cos();
        let (p, q) = ((axis + 1) % 3, (axis + 2) % 3);
        let mut m = Matrix4::identity();
        m[(p, p)] = c;
        m[(p, q)] = -s;
        m[(q, p)] = s;
        m[(q, q)] = c;
        m
    };
    let r = axis_rotation(0, rotate[0]) * axis_rotation(1, rotate[1]) * axis_rotation(2, rotate[2]);
    let t = Matrix4::new_translation(&Vector3::from(translate));
    let s = Matrix4::new_nonuniform_scaling(&Vector3::from(scale));
    r * t * s
}

/// The index map of `matrix` (centred coordinates) between grids of `input` and
/// `output` shape.
fn centred_index_map(matrix: &Affine, input: [usize; 3], output: [usize; 3]) -> Affine {
    let centre = |shape: [usize; 3]| Vector3::from(shape.map(|n| (n as f64 - 1.0) / 2.0));
    Matrix4::new_translation(&centre(input)) * matrix * Matrix4::new_translation(&-centre(output))
}

impl RandAffine {
    fn draw(&self, rng: &mut Rng) -> Affine {
        let mut draw = |ranges: &Option<[AxisRange; 3]>| -> [f64; 3] {
            match ranges {
                Some(r) => std::array::from_fn(|a| r[a].sample(rng)),
                None => [0.0; 3],
            }
        };
        let rotate = draw(&self.params.rotate_range);
        let translate = draw(&self.params.translate_range);
        let scale = draw(&self.params.scale_range).map(|s| 1.0 + s);
        affine_matrix(rotate, translate, scale)
    }
}

impl Transform for RandAffine {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<Sample>> {
        let shape = sample.spatial_shape();
        let out_shape = self.params.spatial_size.map_or(shape, |s| s.0);
        let matrix = if rng.random::<f64>() < self.params.prob {
            self.draw(rng)
        } else if out_shape == shape {
            return Ok(vec![sample]);
        } else {
            Affine::identity()
        };
        let index_map = centred_index_map(&matrix, shape, out_shape);
        Ok(vec![resample_sample(
            &sample,
            &index_map,
            out_shape,
            self.params.mode,
            self.params.padding_mode,
        )])
    }
}

//! `spacing`: resample to a target voxel spacing in mm (MONAI's `Spacingd`). The output
//! grid is the one MONAI computes: `zoom_affine` keeps the axes' directions (or, with
//! `diagonal`, resets them to the world axes) and sets the new spacing, and
//! `compute_shape_offset` sizes the grid to cover the input's voxel centres and anchors it
//! at the input's lowest corner. The image is interpolated (trilinear by default), the
//! label read nearest, positions past the border use `padding_mode` (MONAI's default
//! `border`).

use medssl_io::nalgebra::{Matrix3, Vector3};
use medssl_io::{Affine, geometry};
use serde::Deserialize;

use crate::checks::check_finite;
use crate::error::Result;
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::FromParams;
use crate::spatial::params::Triple;
use crate::spatial::resample::{Interpolation, Padding, resample_sample};
use crate::transform::Transform;

/// MONAI's `AFFINE_TOL`: spacings this close to the target are kept, and grids this
/// close to the input's are not resampled.
const AFFINE_TOL: f64 = 1e-3;

/// The largest output a `spacing` step may create (voxels per channel); a larger one
/// comes from a wrong `pixdim` or header, not a real scan.
const MAX_VOXELS: usize = 1 << 30;

/// Parameters of `spacing`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpacingParams {
    /// Target spacing in mm along the array axes; an axis given as 0 or less keeps its
    /// spacing (MONAI's rule).
    pub pixdim: Triple<f64>,
    /// Resample onto a grid aligned with the world axes (`diag(pixdim)` directions)
    /// instead of keeping the input's axis directions.
    #[serde(default)]
    pub diagonal: bool,
    /// Image interpolation; the label is always read nearest.
    #[serde(default)]
    pub mode: Interpolation,
    /// What positions past the border read.
    #[serde(default = "default_padding")]
    pub padding_mode: Padding,
}

fn default_padding() -> Padding {
    Padding::Border
}

/// Resamples image and label to a target spacing.
#[derive(Debug, Clone)]
pub struct Spacing {
    params: SpacingParams,
}

impl FromParams for Spacing {
    const NAME: &'static str = "spacing";
    const MONAI: &'static str = "Spacingd";
    type Params = SpacingParams;

    fn from_params(params: SpacingParams) -> Result<Spacing> {
        check_finite(Self::NAME, "pixdim", &params.pixdim.0)?;
        Ok(Spacing { params })
    }
}

/// The grid a volume is resampled onto.
#[derive(Debug, Clone, PartialEq)]
pub struct SpacingGrid {
    /// Output `[I, J, K]`.
    pub shape: [usize; 3],
    /// Output affine.
    pub affine: Affine,
    /// Output voxel index to input voxel index.
    pub index_map: Affine,
}

/// MONAI's output grid for an input of `shape` and `affine` resampled to `pixdim`;
/// `None` when the affine is degenerate or not finite.
pub fn spacing_grid(
    affine: &Affine,
    shape: [usize; 3],
    pixdim: [f64; 3],
    diagonal: bool,
) -> Option<SpacingGrid> {
    if affine.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let current = geometry::spacing(affine);
    let target: [f64; 3] = std::array::from_fn(|a| {
        if pixdim[a] <= 0.0 || (current[a] - pixdim[a]).abs() <= AFFINE_TOL {
            current[a]
        } else {
            pixdim[a]
        }
    });
    let rzs: Matrix3<f64> = affine.fixed_view::<3, 3>(0, 0).into_owned();
    let directions = if diagonal {
        Matrix3::identity()
    } else {
        // zoom_affine: rzs = rotation * zs with zs the upper Cholesky factor of rzs'rzs.
        let zs = (rzs.transpose() * rzs).cholesky()?.l().transpose();
        rzs * zs.try_inverse()?
    };
    let mut new_affine = Affine::identity();
    new_affine
        .fixed_view_mut::<3, 3>(0, 0)
        .copy_from(&(directions * Matrix3::from_diagonal(&Vector3::from(target))));

    // compute_shape_offset: the input's corner voxel centres in output voxel units.
    let to_output = new_affine.try_inverse()? * affine;
    let corners: Vec<[f64; 4]> = (0..8)
        .map(|c| {
            let at = |a: usize, bit: usize| {
                if c & bit != 0 {
                    shape[a] as f64 - 1.0
                } else {
                    0.0
                }
            };
            [at(0, 4), at(1, 2), at(2, 1), 1.0]
        })
        .collect();
    let project = |m: &Affine, p: &[f64; 4]| -> [f64; 3] {
        std::array::from_fn(|r| (0..4).map(|c| m[(r, c)] * p[c]).sum())
    };
    let out_corners: Vec<[f64; 3]> = corners.iter().map(|p| project(&to_output, p)).collect();
    let mut out_shape = [0usize; 3];
    for a in 0..3 {
        let (lo, hi) = out_corners
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p[a]), hi.max(p[a]))
            });
        out_shape[a] = (hi - lo + 1.0).round_ties_even() as usize;
    }
    // The input corner that is lowest along every output axis anchors the grid; for
    // oblique grids without one, the centres of input and output are aligned.
    let lowest = out_corners.iter().position(|p| {
        out_corners
            .iter()
            .all(|q| (0..3).all(|a| q[a] - p[a] >= -1e-8))
    });
    let offset: [f64; 3] = match lowest {
        Some(i) => project(affine, &corners[i]),
        None => std::array::from_fn(|r| {
            affine[(r, 3)]
                + (0..3)
                    .map(|c| {
                        affine[(r, c)] * shape[c] as f64 / 2.0
                            - new_affine[(r, c)] * out_shape[c] as f64 / 2.0
                    })
                    .sum::<f64>()
        }),
    };
    for (r, v) in offset.iter().enumerate() {
        new_affine[(r, 3)] = *v;
    }
    let index_map = affine.try_inverse()? * new_affine;
    Some(SpacingGrid {
        shape: out_shape,
        affine: new_affine,
        index_map,
    })
}

/// MONAI skips resampling when the new grid matches the input's within `AFFINE_TOL`.
fn unchanged(grid: &SpacingGrid, affine: &Affine, shape: [usize; 3]) -> bool {
    let close = |a: &Affine, b: &Affine| {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x - y).abs() <= AFFINE_TOL + 1e-5 * y.abs())
    };
    grid.shape == shape
        && (close(affine, &grid.affine) || close(&grid.index_map, &Affine::identity()))
}

impl Transform for Spacing {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(&self, sample: Sample, _rng: &mut Rng) -> Result<Vec<Sample>> {
        let shape = sample.spatial_shape();
        let affine = sample.image.affine();
        let grid = spacing_grid(affine, shape, self.params.pixdim.0, self.params.diagonal)
            .ok_or_else(|| {
                sample.error(format!(
                    "spacing: the image affine is degenerate or not finite: {affine}"
                ))
            })?;
        if unchanged(&grid, affine, shape) {
            return Ok(vec![sample]);
        }
        if grid.shape.iter().product::<usize>() > MAX_VOXELS {
            return Err(sample.error(format!(
                "spacing: resampling {shape:?} voxels of {:?} mm to {:?} mm would make a \
                 {:?} grid; check `pixdim` and the image header",
                sample.image.spacing(),
                self.params.pixdim.0,
                grid.shape
            )));
        }
        Ok(vec![resample_sample(
            &sample,
            &grid.index_map,
            grid.shape,
            self.params.mode,
            self.params.padding_mode,
        )])
    }
}

//! Intensity transforms: windowing, normalisation, clipping and random intensity changes.
//!
//! Each step matches a MONAI 1.6.1 dictionary transform applied to the image key only
//! (the label map is never touched), computing voxels in f32 in the order MONAI does so
//! outputs agree to float rounding. Random steps draw their parameters first and then
//! call a public application function ([`scale_shift::scale_intensity`],
//! [`contrast::adjust_contrast`], ...), so an application can be checked against MONAI
//! with the value MONAI drew.
//!
//! An image with NaN or infinite voxels is an error naming the case and the step, from
//! every step here (also when a random step's draw leaves the image unchanged, so the
//! outcome does not depend on the draw): a non-finite voxel would otherwise turn
//! windowing statistics, percentiles and smoothing into silent garbage.

pub mod clip;
pub mod contrast;
pub mod noise;
pub mod normalize;
mod params;
pub mod scale_shift;
pub mod smooth;
mod stats;
pub mod window;

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::sample::Sample;
pub use crate::transform::FromParams;
use crate::transform::{TransformSpec, spec};

/// Voxels per parallel work item: large enough to amortise scheduling, small enough
/// (256 kB) to stay in L2 for the two passes of the statistics.
const CHUNK: usize = 1 << 16;

/// The intensity transforms a configuration may name.
pub fn catalogue() -> Vec<TransformSpec> {
    vec![
        spec::<window::ScaleIntensityRange>(),
        spec::<normalize::NormalizeIntensity>(),
        spec::<window::ScaleIntensityRangePercentiles>(),
        spec::<clip::ClipIntensityPercentiles>(),
        spec::<scale_shift::RandScaleIntensity>(),
        spec::<scale_shift::RandShiftIntensity>(),
        spec::<noise::RandGaussianNoise>(),
        spec::<contrast::RandAdjustContrast>(),
        spec::<smooth::RandGaussianSmooth>(),
    ]
}

/// The image voxels of `sample` as one slice, `[C, I, J, K]` row-major.
fn voxels(sample: &Sample) -> &[f32] {
    sample
        .image
        .data()
        .as_slice()
        .expect("Volume keeps its voxels in standard layout")
}

/// Mutable image voxels, `[C, I, J, K]` row-major.
fn voxels_mut(sample: &mut Sample) -> &mut [f32] {
    sample
        .image
        .data_mut()
        .as_slice_mut()
        .expect("Volume keeps its voxels in standard layout")
}

/// Voxels per channel (at least 1, so `chunks` of an empty image yield nothing instead
/// of panicking).
fn channel_len(sample: &Sample) -> usize {
    sample.spatial_shape().iter().product::<usize>().max(1)
}

/// Applies `f` to every voxel in place, in parallel, and returns how many input voxels
/// were NaN or infinite (counted in the same pass, so the check costs no extra read).
fn map_voxels(values: &mut [f32], f: impl Fn(f32) -> f32 + Sync) -> usize {
    values
        .par_chunks_mut(CHUNK)
        .map(|chunk| {
            // u32 lanes vectorise better than usize; a chunk cannot overflow them.
            let mut bad = 0u32;
            for v in chunk {
                bad += u32::from(!v.is_finite());
                *v = f(*v);
            }
            bad as usize
        })
        .sum()
}

/// How many voxels are NaN or infinite.
fn count_non_finite(values: &[f32]) -> usize {
    values
        .par_chunks(CHUNK)
        .map(|chunk| chunk.iter().filter(|v| !v.is_finite()).count())
        .sum()
}

/// The error for an image with `count` NaN or infinite voxels.
fn non_finite_error(sample: &Sample, transform: &str, count: usize) -> DataError {
    sample.error(format!(
        "image has {count} NaN or infinite voxel(s); `{transform}` needs finite intensities"
    ))
}

/// Fails when the image has NaN or infinite voxels.
fn require_finite(sample: &Sample, transform: &str) -> Result<()> {
    match count_non_finite(voxels(sample)) {
        0 => Ok(()),
        count => Err(non_finite_error(sample, transform, count)),
    }
}

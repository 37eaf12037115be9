//! Self-supervised inputs: several augmented views of one volume (SimCLR/MoCo/DINO),
//! multi-crop (DINO/iBOT), SMIT's nested crops, random resized crops of one shared region
//! (so positive views share content), rotation labels, in-painting corruption and CPC
//! grids.
//!
//! Every generator takes the sample (or volume) and a random stream and returns plain
//! samples and volumes. Views are cut with [`crate::spatial::region::extract_sample`],
//! so each view's affine still maps its voxels to their world position, and are then
//! augmented by a caller-supplied [`Pipeline`], which keeps this module independent of
//! which transforms exist.
//!
//! Crop positions are uniform over the positions that keep the box inside the volume,
//! independently per axis (MONAI's `RandSpatialCrop`). On an axis where the volume is
//! smaller than the box, the volume is centred in it and the rest is padded (with the
//! generator's `fill` for images and background for labels): `⌊(size − shape) / 2⌋`
//! voxels before and the rest after, as MONAI's `SpatialPad(method="symmetric")` followed
//! by the crop.
//!
//! Randomness: a generator draws one 64-bit key from the caller's stream and gives each
//! view its own stream derived from that key and the view's index ([`rng::stream`]). A
//! view's crop position and augmentation therefore depend only on the caller's stream
//! and the view's index, never on how many draws another view's augmentation made.

mod crops;
mod grid;
mod inpainting;
mod plan;
mod rotation;

pub use crops::{
    MultiCrop, MultiCropViews, NestedCrops, NestedViews, RandomCrops, RegionCrops, RegionViews,
    ScaledViews,
};
pub use grid::{CpcGrid, GridCell};
pub use inpainting::{Corruption, CutBox, Cutout, Inpainting};
pub use plan::{Crops, MaskPlan, ViewBatch, ViewPlan, ViewSet, check_rotation_augment};
pub use rotation::{Rotation, RotationSet, rotate};

use rand::RngExt;

use crate::error::{DataError, Result};
use crate::rng::{self, Rng};
use crate::sample::Sample;
use crate::transform::Pipeline;

/// One view: the augmented sample and the box it was cut from, `[start, start + size)` in
/// voxels of the source volume (a negative start or an end past the border means the
/// crop was padded there).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The view after augmentation.
    pub sample: Sample,
    /// First voxel of the crop box in the source volume.
    pub start: [isize; 3],
    /// Size of the crop box in source voxels (before any resize).
    pub size: [usize; 3],
}

/// The per-view streams of one generator call: a key drawn once from the caller's
/// stream, and one derived stream per (role, index).
struct ViewStreams {
    key: u64,
}

impl ViewStreams {
    fn new(rng: &mut Rng) -> ViewStreams {
        ViewStreams { key: rng.random() }
    }

    fn stream(&self, role: u64, index: usize) -> Rng {
        rng::stream(self.key, &[role, index as u64])
    }
}

/// A crop start for a box of `size` in a volume of `shape` (see the module docs).
fn random_start(shape: [usize; 3], size: [usize; 3], rng: &mut Rng) -> [isize; 3] {
    std::array::from_fn(|a| {
        if shape[a] >= size[a] {
            rng.random_range(0..=shape[a] - size[a]) as isize
        } else {
            -(((size[a] - shape[a]) / 2) as isize)
        }
    })
}

/// Rejects an empty image or a crop size with a zero side, naming the case.
fn check_crop(sample: &Sample, what: &str, size: [usize; 3]) -> Result<()> {
    if sample.image.data().is_empty() {
        return Err(sample.error(format!(
            "image of shape {:?} is empty, cannot cut {what}",
            sample.image.data().shape()
        )));
    }
    if size.contains(&0) {
        return Err(DataError::Config(format!(
            "{what}: size {size:?} has a zero side"
        )));
    }
    Ok(())
}

/// Runs a view's augmentation, which must turn one sample into exactly one.
fn augment(view: Sample, pipeline: &Pipeline, rng: &mut Rng) -> Result<Sample> {
    let id = view.id.clone();
    let mut out = pipeline.run(view, rng)?;
    if out.len() != 1 {
        return Err(DataError::case(
            id,
            format!(
                "a view's augmentation returned {} samples instead of one (a step with \
                 several samples per volume cannot augment a view)",
                out.len()
            ),
        ));
    }
    Ok(out.swap_remove(0))
}

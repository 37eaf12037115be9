//! Random-crop views: N independently augmented crops (SimCLR, MoCo v3), global and
//! local crops (DINO, iBOT multi-crop) and SMIT's crops nested inside one larger crop.

use medssl_io::Affine;
use serde::{Deserialize, Serialize};

use super::{View, ViewStreams, augment, check_crop, random_start};
use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::region::extract_sample;
use crate::spatial::resample::{Interpolation, Padding, resample_sample};
use crate::transform::Pipeline;

/// Stream roles, so views of different kinds never share a stream.
const ROLE_VIEW: u64 = 0;
const ROLE_GLOBAL: u64 = 1;
const ROLE_LOCAL: u64 = 2;
const ROLE_OUTER: u64 = 3;
const ROLE_INNER: u64 = 4;

/// `count` crops of `size` voxels at independent uniformly random positions (they may
/// overlap), each augmented by the same pipeline with its own stream: the two views of
/// SimCLR and MoCo v3. Volumes smaller than `size` are padded with `fill` (see the
/// [module docs](super) for where).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomCrops {
    /// Number of views.
    pub count: usize,
    /// Crop size in voxels.
    pub size: [usize; 3],
    /// Image value of padded voxels (labels pad with background).
    pub fill: f32,
}

impl Default for RandomCrops {
    /// Two 96³ views (the study's pretraining input size), padding with 0.
    fn default() -> RandomCrops {
        RandomCrops {
            count: 2,
            size: [96; 3],
            fill: 0.0,
        }
    }
}

impl RandomCrops {
    /// The views of `sample`, in order.
    pub fn generate(
        &self,
        sample: &Sample,
        augment: &Pipeline,
        rng: &mut Rng,
    ) -> Result<Vec<View>> {
        check_crop(sample, "random crops", self.size)?;
        if self.count == 0 {
            return Err(DataError::Config(
                "random crops: count must be at least 1".into(),
            ));
        }
        let streams = ViewStreams::new(rng);
        (0..self.count)
            .map(|v| {
                let mut rng = streams.stream(ROLE_VIEW, v);
                let start = random_start(sample.spatial_shape(), self.size, &mut rng);
                crop_view(sample, start, self.size, None, self.fill, augment, &mut rng)
            })
            .collect()
    }
}

/// DINO/iBOT multi-crop: `global_count` crops of `global_size` and `local_count` smaller
/// crops of `local_size`, all at independent uniformly random positions in the volume.
/// Local crops are optionally resized to `local_resize`, the 3-D counterpart of DINO's
/// `RandomResizedCrop` to 96 px: trilinear with PyTorch's `align_corners=False` source
/// positions as MONAI's `Resize` (output voxel `d` reads `(d + ½)·n_in/n_out − ½`,
/// clamped to the crop), labels nearest at the same positions. Globals and locals have their
/// own augmentation pipelines (DINO augments them differently).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiCrop {
    /// Number of global views (DINO: 2).
    pub global_count: usize,
    /// Global crop size in voxels.
    pub global_size: [usize; 3],
    /// Number of local views (0 turns multi-crop off).
    pub local_count: usize,
    /// Local crop size in voxels, no larger than `global_size` on any axis.
    pub local_size: [usize; 3],
    /// Size local crops are resized to, if any.
    pub local_resize: Option<[usize; 3]>,
    /// Image value of padded voxels (labels pad with background).
    pub fill: f32,
}

impl Default for MultiCrop {
    /// Two 96³ global views and four 64³ local views (sides divisible by 32, as the Swin
    /// encoder needs), not resized, padding with 0.
    fn default() -> MultiCrop {
        MultiCrop {
            global_count: 2,
            global_size: [96; 3],
            local_count: 4,
            local_size: [64; 3],
            local_resize: None,
            fill: 0.0,
        }
    }
}

/// The views of one multi-crop call.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiCropViews {
    /// Global views (the teacher sees these).
    pub global: Vec<View>,
    /// Local views (the student sees these and the globals).
    pub local: Vec<View>,
}

impl MultiCrop {
    /// The global and local views of `sample`.
    pub fn generate(
        &self,
        sample: &Sample,
        global_augment: &Pipeline,
        local_augment: &Pipeline,
        rng: &mut Rng,
    ) -> Result<MultiCropViews> {
        check_crop(sample, "multi-crop global views", self.global_size)?;
        check_crop(sample, "multi-crop local views", self.local_size)?;
        if self.global_count == 0 {
            return Err(DataError::Config(
                "multi-crop: global_count must be at least 1".into(),
            ));
        }
        if (0..3).any(|a| self.local_size[a] > self.global_size[a]) {
            return Err(DataError::Config(format!(
                "multi-crop: local_size {:?} is larger than global_size {:?}",
                self.local_size, self.global_size
            )));
        }
        if let Some(out) = self.local_resize.filter(|out| out.contains(&0)) {
            return Err(DataError::Config(format!(
                "multi-crop: local_resize {out:?} has a zero side"
            )));
        }
        let streams = ViewStreams::new(rng);
        let shape = sample.spatial_shape();
        let views = |role, count, size, resize, pipeline| {
            (0..count)
                .map(|v| {
                    let mut rng = streams.stream(role, v);
                    let start = random_start(shape, size, &mut rng);
                    crop_view(sample, start, size, resize, self.fill, pipeline, &mut rng)
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(MultiCropViews {
            global: views(
                ROLE_GLOBAL,
                self.global_count,
                self.global_size,
                None,
                global_augment,
            )?,
            local: views(
                ROLE_LOCAL,
                self.local_count,
                self.local_size,
                self.local_resize,
                local_augment,
            )?,
        })
    }
}

/// SMIT's views: one crop of `outer_size` at a uniformly random position, then `count`
/// crops of `inner_size` at independent uniformly random positions inside it, each
/// augmented with its own stream. Sizes default to SMIT's 128³ and 96³.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NestedCrops {
    /// Size of the first crop.
    pub outer_size: [usize; 3],
    /// Size of the views, no larger than `outer_size` on any axis.
    pub inner_size: [usize; 3],
    /// Number of views (SMIT: 2).
    pub count: usize,
    /// Image value of padded voxels (labels pad with background).
    pub fill: f32,
}

impl Default for NestedCrops {
    fn default() -> NestedCrops {
        NestedCrops {
            outer_size: [128; 3],
            inner_size: [96; 3],
            count: 2,
            fill: 0.0,
        }
    }
}

/// The views of one nested-crop call.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedViews {
    /// First voxel of the outer crop in the source volume.
    pub outer_start: [isize; 3],
    /// The views; their boxes are in source-volume voxels and lie inside the outer box.
    pub views: Vec<View>,
}

impl NestedCrops {
    /// The views of `sample`. The outer crop is never materialised: a view cut from the
    /// padded outer crop equals the same box cut (and padded) from the source.
    pub fn generate(
        &self,
        sample: &Sample,
        augment: &Pipeline,
        rng: &mut Rng,
    ) -> Result<NestedViews> {
        check_crop(sample, "nested crops (outer)", self.outer_size)?;
        check_crop(sample, "nested crops (inner)", self.inner_size)?;
        if self.count == 0 {
            return Err(DataError::Config(
                "nested crops: count must be at least 1".into(),
            ));
        }
        if (0..3).any(|a| self.inner_size[a] > self.outer_size[a]) {
            return Err(DataError::Config(format!(
                "nested crops: inner_size {:?} is larger than outer_size {:?}",
                self.inner_size, self.outer_size
            )));
        }
        let streams = ViewStreams::new(rng);
        let outer_start = random_start(
            sample.spatial_shape(),
            self.outer_size,
            &mut streams.stream(ROLE_OUTER, 0),
        );
        let views = (0..self.count)
            .map(|v| {
                let mut rng = streams.stream(ROLE_INNER, v);
                let offset = random_start(self.outer_size, self.inner_size, &mut rng);
                let start = std::array::from_fn(|a| outer_start[a] + offset[a]);
                crop_view(
                    sample,
                    start,
                    self.inner_size,
                    None,
                    self.fill,
                    augment,
                    &mut rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(NestedViews { outer_start, views })
    }
}

/// Cuts the box, resizes it if asked, and augments it.
fn crop_view(
    sample: &Sample,
    start: [isize; 3],
    size: [usize; 3],
    resize: Option<[usize; 3]>,
    fill: f32,
    pipeline: &Pipeline,
    rng: &mut Rng,
) -> Result<View> {
    let mut view = extract_sample(sample, start, size, fill);
    if let Some(out) = resize {
        view = resample_sample(
            &view,
            &resize_map(size, out),
            out,
            Interpolation::Bilinear,
            Padding::Border,
        );
    }
    Ok(View {
        sample: augment(view, pipeline, rng)?,
        start,
        size,
    })
}

/// The index map of a resize from `size` to `out` voxels covering the same field of view:
/// output voxel `d` reads input index `(d + ½)·s − ½` with `s = size / out` per axis.
fn resize_map(size: [usize; 3], out: [usize; 3]) -> Affine {
    let mut map = Affine::identity();
    for a in 0..3 {
        let scale = size[a] as f64 / out[a] as f64;
        map[(a, a)] = scale;
        map[(a, 3)] = 0.5 * scale - 0.5;
    }
    map
}

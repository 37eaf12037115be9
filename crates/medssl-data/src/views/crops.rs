//! Random-crop views: N independently augmented crops (SimCLR, MoCo v3), global and
//! local crops (DINO, iBOT multi-crop), SMIT's crops nested inside one larger crop, and
//! random resized crops of one shared region ([`RegionCrops`]), which is how SimCLR, MoCo
//! v3, DINO and iBOT cut their views in their papers.

use medssl_io::Affine;
use rand::RngExt;
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
// 5 and 6 (masks, rotations) and 10 (in-painting) are plan.rs's, 7-9 grid.rs's.
const ROLE_REGION: u64 = 11;
const ROLE_REGION_GLOBAL: u64 = 12;
const ROLE_REGION_LOCAL: u64 = 13;

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

/// Random resized crops of one shared region, in 3-D: torchvision's `RandomResizedCrop`
/// as SimCLR, MoCo v3, DINO and iBOT apply it to one image.
///
/// Why: the positive views of a contrastive or self-distillation method must show the
/// same content, or there is nothing for their embeddings to agree on. SimCLR takes two
/// random resized crops of one image (scale 0.08–1 of its area); DINO and iBOT take
/// global crops covering 40–100% of the image and local crops covering 5–40%. Two crops
/// cut at independent positions of a whole CT volume (as [`RandomCrops`] and
/// [`MultiCrop`] do) almost never overlap; crops drawn as large fractions of one region
/// always do.
///
/// How: the region (`region`, or the whole volume when `None`) is placed once at a
/// uniformly random position on its own stream; a region larger than the volume on an
/// axis is centred and padded there (see the [module docs](super)). Then each view, on
/// its own stream, draws a volume fraction `s` uniformly from its group's `scale`, takes
/// the box of side `clamp(round(region_a · s^(1/3)), 1, region_a)` on each axis `a`, places
/// it uniformly inside the region, and resizes it to the group's `size` (trilinear with
/// PyTorch's `align_corners=False` positions, labels nearest, as [`MultiCrop`]'s
/// `local_resize`; no resize when the box already has that size). The box is isotropic:
/// it keeps the region's proportions, with no aspect-ratio jitter (torchvision draws an
/// aspect ratio in 3/4–4/3 as well), because stretching anatomy along one axis changes
/// what it looks like more than it does for photographs. `scale` is a fraction of the
/// region's *volume*, the 3-D counterpart of torchvision's fraction of the area, so a
/// view at scale `s` covers the same share of the region as a 2-D crop at `s` of the
/// image.
///
/// Global views are augmented by the plan's `augment` pipeline, local views by its
/// `local_augment` (DINO augments them differently), each with its own stream; the
/// returned [`View`]s carry the source box (before the resize).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionCrops {
    /// Size of the shared region in voxels; `None` is the whole volume.
    pub region: Option<[usize; 3]>,
    /// The global views (SimCLR/MoCo: the two views).
    pub global: ScaledViews,
    /// The local views (DINO/iBOT multi-crop), if any.
    pub local: Option<ScaledViews>,
    /// Image value of padded voxels (labels pad with background).
    pub fill: f32,
}

impl Default for RegionCrops {
    /// Two 96³ views at 40–100% of the whole volume (DINO's global crops), no local
    /// views, padding with 0.
    fn default() -> RegionCrops {
        RegionCrops {
            region: None,
            global: ScaledViews::default(),
            local: None,
            fill: 0.0,
        }
    }
}

/// One group of views of [`RegionCrops`]: `count` views whose source boxes cover a
/// fraction of the region's volume drawn uniformly from `scale`, resized to `size`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaledViews {
    /// Number of views.
    pub count: usize,
    /// Output size of each view in voxels.
    pub size: [usize; 3],
    /// Range `[low, high]` of the fraction of the region's volume a view's box covers,
    /// `0 < low ≤ high ≤ 1` (torchvision's `RandomResizedCrop(scale=..)`: SimCLR
    /// 0.08–1, DINO globals 0.4–1, DINO locals 0.05–0.4).
    pub scale: [f64; 2],
}

impl Default for ScaledViews {
    /// Two 96³ views at 40–100% of the region (DINO's global crops).
    fn default() -> ScaledViews {
        ScaledViews {
            count: 2,
            size: [96; 3],
            scale: [0.4, 1.0],
        }
    }
}

impl ScaledViews {
    /// Rejects a zero-sided output or a scale range outside `(0, 1]`.
    fn check(&self, sample: &Sample, what: &str) -> Result<()> {
        check_crop(sample, what, self.size)?;
        let [low, high] = self.scale;
        if !(low.is_finite() && high.is_finite() && 0.0 < low && low <= high && high <= 1.0) {
            return Err(DataError::Config(format!(
                "{what}: scale {:?} must be a range [low, high] with 0 < low <= high <= 1 \
                 (fractions of the region's volume)",
                self.scale
            )));
        }
        Ok(())
    }

    /// The source box of a view covering the fraction `s` of `region`'s volume.
    fn side(region: [usize; 3], s: f64) -> [usize; 3] {
        let t = s.cbrt();
        region.map(|r| ((r as f64 * t).round() as usize).clamp(1, r))
    }
}

/// The views of one [`RegionCrops`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionViews {
    /// First voxel of the shared region in the source volume.
    pub region_start: [isize; 3],
    /// Size of the shared region (the volume's shape when `region` is `None`).
    pub region_size: [usize; 3],
    /// Global views; their boxes are in source-volume voxels and lie inside the region.
    pub global: Vec<View>,
    /// Local views, likewise (empty without local views).
    pub local: Vec<View>,
}

impl RegionCrops {
    /// The global and local views of `sample`. The region is never materialised: a box
    /// cut from the padded region equals the same box cut (and padded) from the source.
    pub fn generate(
        &self,
        sample: &Sample,
        global_augment: &Pipeline,
        local_augment: &Pipeline,
        rng: &mut Rng,
    ) -> Result<RegionViews> {
        self.global.check(sample, "region crops (global views)")?;
        if let Some(local) = &self.local {
            local.check(sample, "region crops (local views)")?;
        }
        if self.global.count == 0 {
            return Err(DataError::Config(
                "region crops: global count must be at least 1".into(),
            ));
        }
        let shape = sample.spatial_shape();
        let region_size = self.region.unwrap_or(shape);
        if region_size.contains(&0) {
            return Err(DataError::Config(format!(
                "region crops: region {region_size:?} has a zero side"
            )));
        }
        let streams = ViewStreams::new(rng);
        let region_start = random_start(shape, region_size, &mut streams.stream(ROLE_REGION, 0));
        let views = |role, group: &ScaledViews, pipeline| {
            (0..group.count)
                .map(|v| {
                    let mut rng = streams.stream(role, v);
                    let s = rng.random_range(group.scale[0]..=group.scale[1]);
                    let side = ScaledViews::side(region_size, s);
                    let offset = random_start(region_size, side, &mut rng);
                    let start = std::array::from_fn(|a| region_start[a] + offset[a]);
                    let resize = (side != group.size).then_some(group.size);
                    crop_view(sample, start, side, resize, self.fill, pipeline, &mut rng)
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(RegionViews {
            region_start,
            region_size,
            global: views(ROLE_REGION_GLOBAL, &self.global, global_augment)?,
            local: match &self.local {
                Some(local) => views(ROLE_REGION_LOCAL, local, local_augment)?,
                None => Vec::new(),
            },
        })
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

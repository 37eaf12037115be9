//! A pretraining method's inputs as the loader makes them: a [`ViewPlan`] cuts the views
//! of each volume (and masks some of them), and the loader stacks the view sets of a
//! batch view by view into a [`ViewBatch`].

use ndarray::{Array3, Array4, Array5};
use rand::RngExt;

use super::{
    CpcGrid, Inpainting, MultiCrop, NestedCrops, RandomCrops, RegionCrops, RotationSet, View,
};
use crate::error::{DataError, Result};
use crate::loader::CaseWork;
use crate::loader::stack;
use crate::masks::{MaskGrid, MaskRatio};
use crate::rng::{self, Rng};
use crate::sample::Sample;
use crate::transform::Pipeline;
use medssl_io::{Affine, Volume};

/// How the views of one volume are cut.
#[derive(Debug, Clone, PartialEq)]
pub enum Crops {
    /// Independent random crops of one size (SimMIM: one; SimCLR/MoCo: two).
    Random(RandomCrops),
    /// Global crops, then local crops (DINO/iBOT); the globals come first in the set.
    Multi(MultiCrop),
    /// Crops nested in one larger crop (SMIT).
    Nested(NestedCrops),
    /// Random resized crops of one shared region, so positive views share content
    /// (SimCLR, MoCo v3, DINO and iBOT as their papers cut them); the globals come first
    /// in the set, then the locals.
    Region(RegionCrops),
    /// The cells of a grid of sub-volumes, in raster order (CPC).
    Grid(CpcGrid),
    /// Each random crop (augmented once) repeated `copies` times in a row: SwinUNETR's
    /// pretraining rotates and corrupts two copies of the same crop.
    Copies {
        /// The crops.
        crops: RandomCrops,
        /// Copies of each.
        copies: usize,
    },
}

impl Crops {
    /// Voxels of all the views of one volume: what the encoder sees of it per step
    /// (teachers and decoders not counted), the unit of a job's cost estimate.
    pub fn voxels(&self) -> usize {
        let cube = |s: [usize; 3]| s.iter().product::<usize>();
        match self {
            Crops::Random(c) => c.count * cube(c.size),
            Crops::Multi(c) => {
                c.global_count * cube(c.global_size)
                    + c.local_count * cube(c.local_resize.unwrap_or(c.local_size))
            }
            Crops::Nested(c) => c.count * cube(c.inner_size),
            Crops::Region(c) => {
                c.global.count * cube(c.global.size)
                    + c.local.as_ref().map_or(0, |l| l.count * cube(l.size))
            }
            Crops::Grid(g) => g.grid.pow(3) * cube(g.cell),
            Crops::Copies { crops, copies } => crops.count * copies * cube(crops.size),
        }
    }
}

/// Block-wise token masks for the first `views` views of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskPlan {
    /// How many of the leading views get a mask.
    pub views: usize,
    /// The masking ratio (fixed, or drawn per view).
    pub ratio: MaskRatio,
    /// The patch embedding's patch size (a token's side in voxels).
    pub patch_size: usize,
    /// Side of a mask block in voxels.
    pub block_size: usize,
}

/// The inputs one pretraining method needs from each volume.
#[derive(Debug)]
pub struct ViewPlan {
    /// How views are cut.
    pub crops: Crops,
    /// Augmentation of every view (of the global views, for multi-crop).
    pub augment: Pipeline,
    /// Augmentation of multi-crop's local views.
    pub local_augment: Pipeline,
    /// Token masks, if the method masks.
    pub masks: Option<MaskPlan>,
    /// Rotate every view by a rotation drawn from this set (rotation prediction); the
    /// labels come with the views.
    pub rotations: Option<RotationSet>,
    /// In-paint every view across the batch (SwinUNETR pretraining): see
    /// [`ViewBatch`] for where the corrupted and the clean views go.
    pub inpainting: Option<Inpainting>,
}

/// The views of one volume: images `[C, D, H, W]`, and the token masks `[D/p, H/p, W/p]`
/// of the masked leading views.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSet {
    /// The volume's case id.
    pub id: String,
    /// The views, in the plan's order.
    pub views: Vec<Array4<f32>>,
    /// Token masks of the first `masks.len()` views (`true` = masked).
    pub masks: Vec<Array3<bool>>,
    /// The rotation label of each view (empty without rotations).
    pub labels: Vec<usize>,
    /// The key of the volume's in-painting streams (0 without in-painting).
    pub key: u64,
}

/// The view sets of a batch, stacked view by view: `views[v]` is `[B, C, D, H, W]` and
/// `masks[v]` is `[B, D/p, H/p, W/p]`. With in-painting, the `V` views of a set become
/// `2V`: the corrupted views `0..V` (the network's inputs) then the clean ones `V..2V`
/// (the reconstruction targets).
#[derive(Debug, Clone, PartialEq)]
pub struct ViewBatch {
    /// The case id of each volume, in batch order.
    pub ids: Vec<String>,
    /// One stacked array per view index.
    pub views: Vec<Array5<f32>>,
    /// One stacked mask per masked view index.
    pub masks: Vec<Array4<bool>>,
    /// `labels[v][b]`: the rotation label of view `v` of volume `b` (empty without
    /// rotations).
    pub labels: Vec<Vec<usize>>,
}

/// Stream roles of the mask, rotation and in-painting draws, apart from the crop streams.
const ROLE_MASK: u64 = 5;
const ROLE_ROTATION: u64 = 6;
const ROLE_INPAINT: u64 = 10;

/// The augmentations that flip or quarter-turn a view, which rotation labels cannot
/// live with (see [`check_rotation_augment`]).
const TURNING_AUGMENTATIONS: [&str; 2] = ["rand_flip", "rand_rotate90"];

/// Refuses rotation labels together with an augmentation that flips or quarter-turns
/// the view (`rand_flip`, `rand_rotate90`): such an augmentation makes the labels
/// ambiguous, so rotation prediction cannot learn them.
///
/// A 180° turn in the plane of two axes is the same array operation as flipping both of
/// them, so a flipped view of one rotation class can be voxel for voxel the view of
/// another class (Tang et al.'s 0° and 180°, or the identity and any 180° turn of the
/// axis-plane set), and a quarter turn by the augmentation is itself one of the rotations
/// to be predicted. The check goes by the step names only, so it refuses every flip, also
/// one that on its own could not fake a label. `rand_affine` is not refused: its
/// rotations are meant to be small, and one whose `rotate_range` reaches ±90° would blur
/// the labels the same way, so a configuration with rotation labels should keep it small.
pub fn check_rotation_augment(rotations: Option<RotationSet>, augment: &Pipeline) -> Result<()> {
    let Some(set) = rotations else {
        return Ok(());
    };
    match augment
        .steps()
        .iter()
        .map(|step| step.name())
        .find(|name| TURNING_AUGMENTATIONS.contains(name))
    {
        None => Ok(()),
        Some(name) => Err(DataError::Config(format!(
            "rotation labels ({set:?}, {} classes) cannot be combined with the `{name}` \
             augmentation: a 180° turn equals flipping the two axes of its plane, and a \
             quarter-turn augmentation is itself one of the rotations to predict, so a \
             flipped or turned view of one rotation class can be exactly the view of \
             another and the labels become ambiguous; remove `{name}` from the \
             augmentation of rotation-prediction methods",
            set.targets().len()
        ))),
    }
}

impl ViewPlan {
    /// Checks that the plan's augmentations leave its labels learnable: with rotation
    /// labels, neither `augment` nor (when the crops make local views) `local_augment`
    /// may flip or quarter-turn the views (see [`check_rotation_augment`]).
    pub fn check(&self) -> Result<()> {
        check_rotation_augment(self.rotations, &self.augment)?;
        let locals = match &self.crops {
            Crops::Multi(c) => c.local_count > 0,
            Crops::Region(c) => c.local.as_ref().is_some_and(|l| l.count > 0),
            _ => false,
        };
        if locals {
            check_rotation_augment(self.rotations, &self.local_augment)?;
        }
        Ok(())
    }

    /// The views of `sample` and their masks.
    pub fn views(&self, sample: &Sample, rng: &mut Rng) -> Result<ViewSet> {
        let mut views: Vec<View> = match &self.crops {
            Crops::Random(crops) => crops.generate(sample, &self.augment, rng)?,
            Crops::Multi(crops) => {
                let set = crops.generate(sample, &self.augment, &self.local_augment, rng)?;
                set.global.into_iter().chain(set.local).collect()
            }
            Crops::Nested(crops) => crops.generate(sample, &self.augment, rng)?.views,
            Crops::Region(crops) => {
                let set = crops.generate(sample, &self.augment, &self.local_augment, rng)?;
                set.global.into_iter().chain(set.local).collect()
            }
            Crops::Grid(grid) => grid.views(sample, &self.augment, rng)?,
            Crops::Copies { crops, copies } => crops
                .generate(sample, &self.augment, rng)?
                .into_iter()
                .flat_map(|view| std::iter::repeat_n(view, *copies))
                .collect(),
        };
        let mut labels = Vec::new();
        if let Some(set) = self.rotations {
            let key: u64 = rng.random();
            for (v, view) in views.iter_mut().enumerate() {
                let mut rng = rng::stream(key, &[ROLE_ROTATION, v as u64]);
                let (rotated, label) = set.random(&view.sample.image, &mut rng);
                view.sample.image = rotated;
                labels.push(label);
            }
        }
        let masks = match &self.masks {
            None => Vec::new(),
            Some(plan) => {
                if plan.views > views.len() {
                    return Err(DataError::Config(format!(
                        "masks for {} views, but the crops make {}",
                        plan.views,
                        views.len()
                    )));
                }
                let key: u64 = rng.random();
                views[..plan.views]
                    .iter()
                    .enumerate()
                    .map(|(v, view)| {
                        let grid = MaskGrid::new(
                            view.sample.spatial_shape(),
                            plan.patch_size,
                            plan.block_size,
                        )?;
                        let mut rng = rng::stream(key, &[ROLE_MASK, v as u64]);
                        Ok(grid.generate(&plan.ratio, &mut rng).into_tokens())
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let key = match self.inpainting {
            Some(_) => rng.random(),
            None => 0,
        };
        Ok(ViewSet {
            id: sample.id.clone(),
            views: views
                .into_iter()
                .map(|v| v.sample.image.into_data())
                .collect(),
            masks,
            labels,
            key,
        })
    }
}

/// Tang et al.'s `aug_rand` on view `v` of every set of a batch (see
/// [`Inpainting::corrupt_batch`]), each volume drawing from its own stream.
fn corrupt(inpainting: &Inpainting, sets: &[ViewSet], v: usize) -> Result<Vec<Array4<f32>>> {
    let mut volumes: Vec<Volume> = sets
        .iter()
        .map(|s| Volume::new(s.views[v].clone(), Affine::identity()))
        .collect();
    let mut rngs: Vec<Rng> = sets
        .iter()
        .map(|s| rng::stream(s.key, &[ROLE_INPAINT, v as u64]))
        .collect();
    inpainting.corrupt_batch(&mut volumes, &mut rngs)?;
    Ok(volumes.into_iter().map(Volume::into_data).collect())
}

impl CaseWork for ViewPlan {
    type Item = ViewSet;
    type Batch = ViewBatch;

    fn run(&self, sample: Sample, rng: &mut Rng) -> Result<Vec<ViewSet>> {
        Ok(vec![self.views(&sample, rng)?])
    }

    fn stack(&self, sets: &[ViewSet]) -> Result<ViewBatch> {
        let first = sets
            .first()
            .ok_or_else(|| DataError::Config("a batch needs at least one volume".into()))?;
        for set in &sets[1..] {
            let same_shapes = set.views.len() == first.views.len()
                && set.masks.len() == first.masks.len()
                && set.labels.len() == first.labels.len()
                && set
                    .views
                    .iter()
                    .zip(&first.views)
                    .all(|(a, b)| a.dim() == b.dim());
            if !same_shapes {
                return Err(DataError::case(
                    &set.id,
                    format!(
                        "its views differ in number or shape from those of case {} in the \
                         same batch",
                        first.id
                    ),
                ));
            }
        }
        let mut views = (0..first.views.len())
            .map(|v| stack(sets.iter().map(|s| s.views[v].view())))
            .collect::<Result<Vec<Array5<f32>>>>()?;
        if let Some(inpainting) = &self.inpainting {
            let corrupted = (0..first.views.len())
                .map(|v| stack(corrupt(inpainting, sets, v)?.iter().map(|a| a.view())))
                .collect::<Result<Vec<Array5<f32>>>>()?;
            views = corrupted.into_iter().chain(views).collect();
        }
        let masks = (0..first.masks.len())
            .map(|v| stack(sets.iter().map(|s| s.masks[v].view())))
            .collect::<Result<Vec<Array4<bool>>>>()?;
        let labels = (0..first.labels.len())
            .map(|v| sets.iter().map(|s| s.labels[v]).collect())
            .collect();
        Ok(ViewBatch {
            ids: sets.iter().map(|s| s.id.clone()).collect(),
            views,
            masks,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_io::Volume;
    use medssl_io::nalgebra::Matrix4;
    use ndarray::Array4;

    /// A whole-volume crop, rotated: the view is the rotated volume and the label says
    /// by which rotation; a batch carries the labels view by view.
    #[test]
    fn rotated_views_carry_their_labels() {
        let image = Array4::from_shape_fn((1, 8, 8, 8), |(_, i, j, k)| (i * 64 + j * 8 + k) as f32);
        let sample = Sample::unlabelled("case", Volume::new(image, Matrix4::identity()));
        let plan = ViewPlan {
            crops: Crops::Random(RandomCrops {
                count: 1,
                size: [8; 3],
                fill: 0.0,
            }),
            augment: Pipeline::default(),
            local_augment: Pipeline::default(),
            masks: None,
            rotations: Some(RotationSet::AxisPlanes),
            inpainting: None,
        };
        let mut sets = Vec::new();
        for seed in 0..6 {
            let set = plan.views(&sample, &mut rng::stream(seed, &[])).unwrap();
            assert_eq!(set.labels.len(), 1);
            let expected = RotationSet::AxisPlanes
                .rotate(&sample.image, set.labels[0])
                .unwrap();
            assert_eq!(&set.views[0], expected.data());
            sets.push(set);
        }
        assert!(
            sets.iter().any(|s| s.labels[0] != sets[0].labels[0]),
            "labels vary with the stream"
        );
        let batch = plan.stack(&sets).unwrap();
        assert_eq!(
            batch.labels,
            vec![sets.iter().map(|s| s.labels[0]).collect::<Vec<_>>()]
        );
        assert_eq!(batch.views[0].shape(), &[6, 1, 8, 8, 8]);
    }

    /// SwinUNETR's inputs: two copies of one crop, each rotated on its own; stacking
    /// puts the in-painted copies first and the clean rotated copies after them.
    #[test]
    fn copies_are_rotated_apart_and_inpainted_across_the_batch() {
        let plan = ViewPlan {
            crops: Crops::Copies {
                crops: RandomCrops {
                    count: 1,
                    size: [16; 3],
                    fill: 0.0,
                },
                copies: 2,
            },
            augment: Pipeline::default(),
            local_augment: Pipeline::default(),
            masks: None,
            rotations: Some(RotationSet::Tang),
            inpainting: Some(Inpainting::default()),
        };
        let sets: Vec<ViewSet> = (0..3)
            .map(|case| {
                let image = Array4::from_shape_fn((1, 20, 20, 20), |(_, i, j, k)| {
                    (case * 10_000 + i * 400 + j * 20 + k) as f32 + 2.0
                });
                let sample = Sample::unlabelled(
                    format!("case{case}"),
                    Volume::new(image, Matrix4::identity()),
                );
                plan.views(&sample, &mut rng::stream(case as u64, &[]))
                    .unwrap()
            })
            .collect();
        for set in &sets {
            assert_eq!(set.views.len(), 2);
            let unrotated: Vec<Volume> = (0..2)
                .map(|v| {
                    let view = Volume::new(set.views[v].clone(), Matrix4::identity());
                    let rotation = RotationSet::Tang.rotation(set.labels[v]).unwrap();
                    super::super::rotate(&view, rotation.inverse())
                })
                .collect();
            assert_eq!(
                unrotated[0].data(),
                unrotated[1].data(),
                "{}: the same crop",
                set.id
            );
        }
        let batch = plan.stack(&sets).unwrap();
        assert_eq!(batch.views.len(), 4);
        assert_eq!(batch.labels.len(), 2);
        for v in 0..2 {
            let clean = stack(sets.iter().map(|s| s.views[v].view())).unwrap();
            assert_eq!(batch.views[2 + v], clean, "clean view {v}");
            let changed = batch.views[v]
                .iter()
                .zip(&clean)
                .filter(|(a, b)| a != b)
                .count();
            assert!(changed > 0, "view {v} not corrupted");
            assert!(
                batch.views[v].iter().all(|&x| x >= 0.0),
                "values are clean, noise in [0, 1] or donors"
            );
        }
        assert_eq!(
            plan.stack(&sets).unwrap(),
            batch,
            "stacking is deterministic"
        );
    }
}

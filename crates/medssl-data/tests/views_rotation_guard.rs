//! Rotation labels and spatial augmentations: without flips every rotation class of a
//! view is identifiable; a flip of two axes is a 180° turn, so with flips some classes
//! show identical views, which is why a plan with rotation labels refuses `rand_flip`
//! and `rand_rotate90`.

mod views_common;

use std::collections::BTreeSet;

use medssl_data::rng::stream;
use medssl_data::views::{
    Crops, MultiCrop, RandomCrops, RotationSet, ViewPlan, check_rotation_augment,
};
use medssl_data::{Pipeline, PipelineConfig, Sample};
use medssl_io::Volume;
use views_common::{encoded, identity};

/// The pipeline of the given steps, each a TOML table with its `name`.
fn pipeline(steps: &[&str]) -> Pipeline {
    let tables: Vec<toml::Table> = steps.iter().map(|s| toml::from_str(s).unwrap()).collect();
    PipelineConfig::from_tables(&tables).unwrap().build()
}

const FLIP: &str = "name = \"rand_flip\"\nprob = 0.5\nspatial_axis = [1, 2]";
const ROTATE90: &str = "name = \"rand_rotate90\"\nprob = 0.5\nspatial_axes = [1, 2]";
const SHIFT: &str = "name = \"rand_shift_intensity\"\noffsets = 0.1\nprob = 0.5";
const SCALE: &str = "name = \"rand_scale_intensity\"\nfactors = 0.1\nprob = 0.5";

fn plan(
    crops: Crops,
    augment: Pipeline,
    local: Pipeline,
    rotations: Option<RotationSet>,
) -> ViewPlan {
    ViewPlan {
        crops,
        augment,
        local_augment: local,
        masks: None,
        rotations,
        inpainting: None,
    }
}

fn whole(size: usize) -> Crops {
    Crops::Random(RandomCrops {
        count: 1,
        size: [size; 3],
        fill: 0.0,
    })
}

#[test]
fn rotation_labels_refuse_flips_and_quarter_turns() {
    for set in [RotationSet::Tang, RotationSet::AxisPlanes] {
        let err = plan(whole(8), pipeline(&[SHIFT, FLIP]), identity(), Some(set))
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`rand_flip`") && err.contains("180°") && err.contains("ambiguous"),
            "{err}"
        );
        let err = plan(whole(8), pipeline(&[ROTATE90]), identity(), Some(set))
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`rand_rotate90`"), "{err}");
        // Intensity augmentations keep the labels identifiable.
        plan(whole(8), pipeline(&[SHIFT, SCALE]), identity(), Some(set))
            .check()
            .unwrap();
        let err = check_rotation_augment(Some(set), &pipeline(&[FLIP]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`rand_flip`"), "{err}");
    }
    // Flips without rotation labels are fine (SimCLR, DINO, ...).
    plan(
        whole(8),
        pipeline(&[FLIP, ROTATE90]),
        pipeline(&[FLIP]),
        None,
    )
    .check()
    .unwrap();
    check_rotation_augment(None, &pipeline(&[FLIP])).unwrap();
    // The local pipeline counts only where the crops make local views.
    let tang = Some(RotationSet::Tang);
    plan(whole(8), identity(), pipeline(&[FLIP]), tang)
        .check()
        .unwrap();
    let multi = |local_count| {
        Crops::Multi(MultiCrop {
            local_count,
            ..MultiCrop::default()
        })
    };
    let err = plan(multi(4), identity(), pipeline(&[FLIP]), tang)
        .check()
        .unwrap_err()
        .to_string();
    assert!(err.contains("`rand_flip`"), "{err}");
    plan(multi(0), identity(), pipeline(&[FLIP]), tang)
        .check()
        .unwrap();
}

/// A cube whose voxels all differ (each holds its own index), so two arrays are equal
/// only if they are the same voxel arrangement.
fn cube() -> Sample {
    encoded([6, 6, 6], 1)
}

/// `sample` flipped along `axes` by `rand_flip` itself (probability 1).
fn flipped(sample: &Sample, axes: &[usize]) -> Sample {
    if axes.is_empty() {
        return sample.clone();
    }
    let step = format!("name = \"rand_flip\"\nprob = 1.0\nspatial_axis = {axes:?}");
    let mut out = pipeline(&[&step])
        .run(sample.clone(), &mut stream(0, &[]))
        .unwrap();
    out.swap_remove(0)
}

/// Every subset of the three spatial axes.
fn flip_subsets() -> Vec<Vec<usize>> {
    (0..8u8)
        .map(|m| (0..3).filter(|a| m & (1 << a) != 0).collect())
        .collect()
}

/// For each pair of classes `i < j` of `set`, the flips (subsets of axes) that turn the
/// view of class `i` into the view of class `j`.
fn collisions(set: RotationSet, sample: &Sample) -> Vec<((usize, usize), Vec<usize>)> {
    let n = set.targets().len();
    let views: Vec<Volume> = (0..n)
        .map(|label| set.rotate(&sample.image, label).unwrap())
        .collect();
    let mut found = Vec::new();
    for i in 0..n {
        let class_i = Sample::unlabelled("case", views[i].clone());
        for axes in flip_subsets() {
            let f = flipped(&class_i, &axes);
            for (j, view) in views.iter().enumerate().skip(i + 1) {
                if f.image.data() == view.data() {
                    found.push(((i, j), axes.clone()));
                }
            }
        }
    }
    found
}

/// Without flips the classes of both sets are pairwise distinct: the label is
/// identifiable from the view. With flips (any subset of the three axes) exactly the
/// classes whose rotations differ by a 180° turn collide, each through the flip of that
/// turn's two axes: Tang's 0°/180° and 90°/270°; in the axis-plane set the identity and
/// the three 180° turns all four together, and 90°/270° in each plane. So a flipped view
/// of one class is voxel for voxel an unflipped view of another, and its label cannot be
/// learned.
#[test]
fn flips_make_rotation_classes_ambiguous() {
    let sample = cube();
    let expected = |set| -> BTreeSet<(usize, usize)> {
        match set {
            RotationSet::Tang => [(0, 2), (1, 3)].into(),
            RotationSet::AxisPlanes => [
                (0, 2),
                (0, 5),
                (0, 8),
                (2, 5),
                (2, 8),
                (5, 8),
                (1, 3),
                (4, 6),
                (7, 9),
            ]
            .into(),
        }
    };
    for set in [RotationSet::Tang, RotationSet::AxisPlanes] {
        let n = set.targets().len();
        for i in 0..n {
            for j in i + 1..n {
                assert_ne!(
                    set.rotate(&sample.image, i).unwrap().data(),
                    set.rotate(&sample.image, j).unwrap().data(),
                    "{set:?}: classes {i} and {j} are distinct without flips"
                );
            }
        }
        let found = collisions(set, &sample);
        let pairs: BTreeSet<_> = found.iter().map(|(pair, _)| *pair).collect();
        assert_eq!(pairs, expected(set), "{set:?}: {found:?}");
        for ((i, j), axes) in &found {
            // R_j = F · R_i with F a flip and R_i⁻¹R_j a rotation: F flips two axes.
            assert_eq!(axes.len(), 2, "{set:?} {i}->{j} by flipping {axes:?}");
            let turned = set.targets()[*j].turns.abs_diff(set.targets()[*i].turns);
            if *i == 0 {
                assert_eq!(turned, 2, "the identity collides with 180° turns only");
                assert_eq!(
                    axes.as_slice(),
                    &set.targets()[*j].plane,
                    "a 180° turn is the flip of its plane"
                );
            }
        }
    }
}

/// Through the loader: with an intensity-only augmentation every view shows its own
/// label's rotation and no other; with `rand_flip` (a plan `check` refuses) views of
/// different labels coincide.
#[test]
fn labels_are_identifiable_without_flips_and_not_with_them() {
    let sample = cube();
    let set = RotationSet::Tang;
    let rotations: Vec<Volume> = (0..4)
        .map(|l| set.rotate(&sample.image, l).unwrap())
        .collect();
    let clean = plan(whole(6), identity(), identity(), Some(set));
    clean.check().unwrap();
    let mut labels = BTreeSet::new();
    for seed in 0..40 {
        let views = clean.views(&sample, &mut stream(seed, &[])).unwrap();
        let label = views.labels[0];
        labels.insert(label);
        for (l, rotated) in rotations.iter().enumerate() {
            assert_eq!(views.views[0] == rotated.data(), l == label, "seed {seed}");
        }
    }
    assert_eq!(labels.len(), 4);
    let flipping = plan(whole(6), pipeline(&[FLIP]), identity(), Some(set));
    assert!(flipping.check().is_err());
    let sets: Vec<_> = (0..60)
        .map(|seed| flipping.views(&sample, &mut stream(seed, &[])).unwrap())
        .collect();
    let ambiguous = sets.iter().any(|a| {
        sets.iter()
            .any(|b| a.labels[0] != b.labels[0] && a.views[0] == b.views[0])
    });
    assert!(
        ambiguous,
        "a flipped view of one label equals a view of another"
    );
}
